/*
** connfile.h — the connection file: where a cluster's controller listens
** and the key that opens it. JSON (lua-cjson), mode 0600, e.g.
**   {"host":"127.0.0.1","port":40123,"key":"<64 hex digits>",
**    "pid":4242,"profile":"default","n":4}
** plus "encrypt":true when the cluster seals every connection, loopback
** included (plush-controller --encrypt): engines and clients that read
** the file then ask for it too.
** The key is the cluster's only secret: the file is written atomically
** (a private temporary, then rename) and refused when others can read or
** write it.
*/
#ifndef PLUSH_CONNFILE_H
#define PLUSH_CONNFILE_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"

typedef struct plush_connfile {
  char host[256];                       /* controller's address */
  int port;                             /* controller's port */
  uint8_t key[PLUSH_KEY_SIZE];          /* the shared secret */
  char keyhex[2 * PLUSH_KEY_SIZE + 1];  /* its hex form, as in the file */
  long pid;                             /* controller's pid */
  char profile[64];                     /* profile name ("default") */
  int n;                                /* engines asked for (0: unknown) */
  int encrypt;                          /* 1: "encrypt": true */
} plush_connfile;

/*
** Writes info to path (fields host, port, key, pid, profile, n, and
** encrypt when set): first to
** "path.tmp", created with O_EXCL and mode 0600, then renamed over path.
** The key is taken from info->key (keyhex is ignored). Returns 0 or a
** negative errno / PLUSH_E* code; err (may be NULL) gets a one-line reason.
*/
int plush_connfile_write(const char *path, const plush_connfile *info,
                         char *err, size_t errlen);

/*
** Reads path into info. Refuses (PLUSH_EINVAL, reason in err) a file that
** group or others may read or write, a file that is not a JSON object,
** a missing or mistyped host, port, key or pid, a key that is not 64 hex
** digits, an encrypt that is not a boolean. profile defaults to "default",
** n to 0 and encrypt to 0 when absent.
*/
int plush_connfile_read(const char *path, plush_connfile *info, char *err,
                        size_t errlen);

/*
** The default path of profile's connection file (profile NULL or "":
** $PLUSH_PROFILE, else "default"): $XDG_RUNTIME_DIR/plush/PROFILE.json,
** else ~/.local/state/plush/PROFILE.json. With mkdirs set, the directory
** is created (mode 0700) when missing. 0, or a negative errno / PLUSH_E*.
*/
int plush_connfile_path(const char *profile, int mkdirs, char *out,
                        size_t outlen);

#endif
