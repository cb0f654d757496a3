/*
** connfile.c — reading and writing the connection file (see connfile.h).
**
** JSON goes through lua-cjson in a private, short-lived lua_State: the
** file is read once per process start, so the state costs nothing that
** matters, and cjson's errors arrive as Lua errors caught by one pcall.
*/
#include "connfile.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <lua-cjson.h>

#include "plush.h"

#define MAXFILE (64 * 1024)

static int failf(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int failf(char *err, size_t errlen, int code, const char *fmt, ...) {
  va_list ap;
  if (err && errlen) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

/*
** A state with nothing but cjson in it: the decoder and encoder are
** looked up as cjson.decode / cjson.encode.
*/
static lua_State *jsonstate(void) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return NULL;
  luaL_requiref(L, "cjson", luaopen_cjson, 0);
  lua_pop(L, 1);
  return L;
}

static void tohex(const uint8_t *key, char *hex) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < PLUSH_KEY_SIZE; i++) {
    hex[2 * i] = digits[key[i] >> 4];
    hex[2 * i + 1] = digits[key[i] & 15];
  }
  hex[2 * PLUSH_KEY_SIZE] = '\0';
}

/*
** Runs inside lua_pcall: builds the table and encodes it, leaving the
** JSON text on the stack.
*/
static int encode(lua_State *L) {
  const plush_connfile *info = lua_touserdata(L, 1);
  char hex[2 * PLUSH_KEY_SIZE + 1];
  luaL_requiref(L, "cjson", luaopen_cjson, 0);
  lua_getfield(L, -1, "encode");
  lua_createtable(L, 0, 6);
  lua_pushstring(L, info->host);
  lua_setfield(L, -2, "host");
  lua_pushinteger(L, info->port);
  lua_setfield(L, -2, "port");
  tohex(info->key, hex);
  lua_pushstring(L, hex);
  lua_setfield(L, -2, "key");
  lua_pushinteger(L, info->pid);
  lua_setfield(L, -2, "pid");
  lua_pushstring(L, info->profile[0] ? info->profile : "default");
  lua_setfield(L, -2, "profile");
  lua_pushinteger(L, info->n);
  lua_setfield(L, -2, "n");
  if (info->encrypt) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "encrypt");
  }
  lua_call(L, 1, 1);
  return 1;
}

static int writeall(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -errno;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/*
** O_EXCL never follows a symlink planted at the temporary's name, and the
** file is 0600 from its first byte (fchmod makes it so whatever the
** umask). A temporary left by a crashed writer is removed once and the
** creation retried. rename() makes the new file appear whole or not at
** all, so a reader never sees half a key.
*/
int plush_connfile_write(const char *path, const plush_connfile *info,
                         char *err, size_t errlen) {
  char tmp[4096];
  const char *json;
  size_t len;
  lua_State *L;
  int fd, r;
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
    return failf(err, errlen, PLUSH_EINVAL, "path too long: %s", path);
  if ((L = jsonstate()) == NULL)
    return failf(err, errlen, PLUSH_ENOMEM, "out of memory");
  lua_pushcfunction(L, encode);
  lua_pushlightuserdata(L, (void *)info);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    r = failf(err, errlen, PLUSH_EINVAL, "cannot encode %s: %s", path,
              lua_tostring(L, -1));
    lua_close(L);
    return r;
  }
  json = lua_tolstring(L, -1, &len);
  fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)
    fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) {
    r = -errno;
    lua_close(L);
    return failf(err, errlen, r, "cannot create %s: %s", tmp, strerror(-r));
  }
  r = fchmod(fd, 0600) < 0 ? -errno : 0;
  if (r == 0) r = writeall(fd, json, len);
  if (r == 0) r = writeall(fd, "\n", 1);
  if (close(fd) < 0 && r == 0) r = -errno;
  lua_close(L);
  if (r == 0 && rename(tmp, path) < 0) r = -errno;
  if (r < 0) {
    unlink(tmp);
    return failf(err, errlen, r, "cannot write %s: %s", path, strerror(-r));
  }
  return 0;
}

/* ---- reading ----------------------------------------------------- */

/* Context of one parse, handed to the protected function. */
typedef struct parse {
  const char *path;
  const char *text;
  size_t len;
  plush_connfile *info;
} parse;

static int getnum(lua_State *L, const parse *p, const char *field,
                  int required, double lo, double hi, double *out) {
  int isnum;
  double v;
  lua_getfield(L, -1, field);
  if (lua_isnil(L, -1) && !required) {
    lua_pop(L, 1);
    return 0;
  }
  v = lua_tonumberx(L, -1, &isnum);
  if (lua_type(L, -1) != LUA_TNUMBER || !isnum || v != floor(v) || v < lo ||
      v > hi)
    return luaL_error(L, "connection file %s: %s field '%s'", p->path,
                      lua_isnil(L, -1) ? "missing" : "bad", field);
  lua_pop(L, 1);
  *out = v;
  return 1;
}

static void getstr(lua_State *L, const parse *p, const char *field,
                   int required, char *out, size_t outlen) {
  size_t len;
  const char *s;
  lua_getfield(L, -1, field);
  if (lua_isnil(L, -1) && !required) {
    lua_pop(L, 1);
    return;
  }
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "connection file %s: %s field '%s'", p->path,
               lua_isnil(L, -1) ? "missing" : "bad", field);
  s = lua_tolstring(L, -1, &len);
  if (len == 0 || len >= outlen || strlen(s) != len)
    luaL_error(L, "connection file %s: bad field '%s'", p->path, field);
  memcpy(out, s, len + 1);
  lua_pop(L, 1);
}

/*
** Runs inside lua_pcall: cjson raises on malformed JSON, and every check
** raises a complete one-line message.
*/
static int decode(lua_State *L) {
  parse *p = lua_touserdata(L, 1);
  plush_connfile *info = p->info;
  double v;
  luaL_requiref(L, "cjson", luaopen_cjson, 0);
  lua_getfield(L, -1, "decode");
  lua_pushlstring(L, p->text, p->len);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK)
    return luaL_error(L, "connection file %s is not JSON: %s", p->path,
                      lua_tostring(L, -1));
  if (!lua_istable(L, -1))
    return luaL_error(L, "connection file %s: not a JSON object", p->path);
  getstr(L, p, "host", 1, info->host, sizeof info->host);
  getnum(L, p, "port", 1, 1, 65535, &v);
  info->port = (int)v;
  getstr(L, p, "key", 1, info->keyhex, sizeof info->keyhex);
  if (strlen(info->keyhex) != 2 * PLUSH_KEY_SIZE ||
      plush_key_parse(info->keyhex, info->key) < 0)
    return luaL_error(L, "connection file %s: bad key (want %d hex digits)",
                      p->path, 2 * PLUSH_KEY_SIZE);
  getnum(L, p, "pid", 1, 0, 2147483647.0, &v);
  info->pid = (long)v;
  getstr(L, p, "profile", 0, info->profile, sizeof info->profile);
  if (getnum(L, p, "n", 0, 0, 1e6, &v)) info->n = (int)v;
  lua_getfield(L, -1, "encrypt");
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
    return luaL_error(L, "connection file %s: bad field 'encrypt'", p->path);
  info->encrypt = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return 0;
}

static int slurp(int fd, char *buf, size_t cap, size_t *len) {
  *len = 0;
  for (;;) {
    ssize_t r = read(fd, buf + *len, cap - *len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) return 0;
    *len += (size_t)r;
    if (*len == cap) return PLUSH_ETOOBIG;
  }
}

/*
** The mode is checked on the open descriptor (fstat), so the file that
** is judged is the file that is read.
*/
int plush_connfile_read(const char *path, plush_connfile *info, char *err,
                        size_t errlen) {
  struct stat st;
  char *buf;
  size_t len;
  lua_State *L;
  parse p;
  int fd, r;
  memset(info, 0, sizeof *info);
  snprintf(info->profile, sizeof info->profile, "default");
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
    r = -errno;
    return failf(err, errlen, r, "cannot open connection file %s: %s", path,
                 strerror(-r));
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return failf(err, errlen, PLUSH_EINVAL,
                 "connection file %s is not a regular file", path);
  }
  if (st.st_mode & 077) {
    close(fd);
    return failf(err, errlen, PLUSH_EINVAL,
                 "connection file %s is %s by others (mode %04o); chmod 600 it",
                 path, (st.st_mode & 044) ? "readable" : "writable",
                 (unsigned)(st.st_mode & 07777));
  }
  if ((buf = malloc(MAXFILE)) == NULL) {
    close(fd);
    return failf(err, errlen, PLUSH_ENOMEM, "out of memory");
  }
  r = slurp(fd, buf, MAXFILE, &len);
  close(fd);
  if (r < 0) {
    free(buf);
    return failf(err, errlen, r, "cannot read connection file %s: %s", path,
                 r == PLUSH_ETOOBIG ? "too large" : strerror(-r));
  }
  if ((L = jsonstate()) == NULL) {
    free(buf);
    return failf(err, errlen, PLUSH_ENOMEM, "out of memory");
  }
  p.path = path;
  p.text = buf;
  p.len = len;
  p.info = info;
  lua_pushcfunction(L, decode);
  lua_pushlightuserdata(L, &p);
  r = lua_pcall(L, 1, 0, 0);
  free(buf);
  if (r != LUA_OK) {
    failf(err, errlen, PLUSH_EINVAL, "%s", lua_tostring(L, -1));
    lua_close(L);
    memset(info->key, 0, sizeof info->key);
    return PLUSH_EINVAL;
  }
  lua_close(L);
  return 0;
}

/* ---- writing ----------------------------------------------------- */

static int mkdirp(char *path) {
  for (char *s = path + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(path, 0700) < 0 && errno != EEXIST) {
      *s = '/';
      return -errno;
    }
    *s = '/';
  }
  if (mkdir(path, 0700) < 0 && errno != EEXIST) return -errno;
  return 0;
}

/*
** XDG_RUNTIME_DIR is per-user, private and cleaned at logout: the right
** place for a secret that lives as long as a cluster. Without it (ssh
** sessions on some systems, batch jobs) the state directory stands in.
*/
int plush_connfile_path(const char *profile, int mkdirs, char *out,
                        size_t outlen) {
  const char *run = getenv("XDG_RUNTIME_DIR");
  const char *home = getenv("HOME");
  char dir[4000];
  int n;
  if (profile == NULL || *profile == '\0') profile = getenv("PLUSH_PROFILE");
  if (profile == NULL || *profile == '\0') profile = "default";
  if (strchr(profile, '/') != NULL) return PLUSH_EINVAL;
  if (run && *run)
    n = snprintf(dir, sizeof dir, "%s/plush", run);
  else if (home && *home)
    n = snprintf(dir, sizeof dir, "%s/.local/state/plush", home);
  else
    return PLUSH_EINVAL;
  if (n < 0 || (size_t)n >= sizeof dir) return PLUSH_EINVAL;
  if (mkdirs && (n = mkdirp(dir)) < 0) return n;
  n = snprintf(out, outlen, "%s/%s.json", dir, profile);
  if (n < 0 || (size_t)n >= outlen) return PLUSH_EINVAL;
  return 0;
}
