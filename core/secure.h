/*
** secure.h — sealed frames: what travels instead of a plain frame once a
** handshake chose encryption (auth.h's mode 1).
**
** A sealed record is
**   offset size     field
**   0      4        n: length of what follows (little-endian), >= 40
**   4      n - 16   the frame (24-byte header, then payload), encrypted
**   n - 12 16       Poly1305 tag
** sealed with XChaCha20-Poly1305 (IETF AEAD) under the direction's session
** key; the nonce is the record's number in its direction (0, 1, 2, ...,
** little-endian in the nonce's first 8 bytes) and the 4 length bytes are
** the associated data. A record that was altered anywhere, cut, replayed,
** dropped or moved fails its tag, and the stream cannot resynchronise:
** the opener refuses everything after it.
**
** Loopback connections stay plain by default (conn.h): a frame is then
** forwarded by reference, never copied; sealing needs one copy per write.
*/
#ifndef PLUSH_SECURE_H
#define PLUSH_SECURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "auth.h"
#include "frame.h"

#define PLUSH_SEAL_TAG 16
#define PLUSH_SEAL_PREFIX 4
/* Bytes a sealed record adds to a plain frame. */
#define PLUSH_SEAL_OVERHEAD (PLUSH_SEAL_PREFIX + PLUSH_SEAL_TAG)
/* The largest payload a record can hold (the whole record, prefix
** included, stays within 32 bits: one write buffer). */
#define PLUSH_SEAL_MAX_PAYLOAD \
  ((uint64_t)UINT32_MAX - PLUSH_HDR_SIZE - PLUSH_SEAL_OVERHEAD)

/* One direction's key and the number of the next record. */
typedef struct plush_seal {
  uint8_t key[PLUSH_KEY_SIZE];
  uint64_t seq;
} plush_seal;

/* Takes a copy of key; seq starts at 0. */
void plush_seal_init(plush_seal *s, const uint8_t key[PLUSH_KEY_SIZE]);
/* Wipes the key. */
void plush_seal_wipe(plush_seal *s);

/*
** Seals one frame: hdr (24 packed bytes) and len bytes of payload. *out
** gets a malloc'd record of *outlen = len + 24 + PLUSH_SEAL_OVERHEAD
** bytes, the caller's to free. hdr and payload may be one buffer (a
** frame's raw[]): pass payload = hdr + 24. 0, PLUSH_ETOOBIG (len over
** PLUSH_SEAL_MAX_PAYLOAD), PLUSH_ENOMEM, or PLUSH_EPROTO when the
** direction has used up its 2^64 record numbers.
*/
int plush_seal_frame(plush_seal *s, const unsigned char *hdr,
                     const char *payload, size_t len, char **out,
                     size_t *outlen);
/* The same, the payload given as pieces (frame.h) of len bytes in all. */
int plush_seal_pieces(plush_seal *s, const unsigned char *hdr,
                      const plush_piece *pc, int npc, size_t len, char **out,
                      size_t *outlen);

/*
** The receiving end: an incremental parser like plush_parser (frame.h),
** fed the sealed stream, calling cb with each frame that opened and
** passed the same checks as a plain frame (known type, len within
** max_frame and equal to what the record holds). Errors, with a reason
** in o->err: PLUSH_EAUTH (a record failed its tag: tampered, replayed,
** reordered or not sealed by the peer), PLUSH_ETOOBIG, PLUSH_EPROTO,
** PLUSH_ENOMEM; after one the opener is dead and returns it again.
*/
typedef struct plush_opener {
  plush_seal st;
  uint64_t max_frame;
  unsigned char pre[PLUSH_SEAL_PREFIX];
  size_t prelen;         /* length bytes gathered */
  plush_frame *cur;      /* frame being filled with ciphertext */
  size_t body;           /* ciphertext bytes of cur (24 + payload) */
  size_t got;            /* of those, filled so far */
  unsigned char tag[PLUSH_SEAL_TAG];
  size_t taglen;
  char err[160];
  int rc;
} plush_opener;

void plush_opener_init(plush_opener *o, const uint8_t key[PLUSH_KEY_SIZE],
                       uint64_t max_frame);
/* Drops a partial record and wipes the key. */
void plush_opener_free(plush_opener *o);
int plush_opener_feed(plush_opener *o, const char *data, size_t len,
                      plush_frame_cb cb, void *ud);
/* Where the next read can go straight into the current record's body
** (NULL when none), and the accounting of what a read put there. */
char *plush_opener_direct(plush_opener *o, size_t *room);
int plush_opener_advance(plush_opener *o, size_t n, plush_frame_cb cb,
                         void *ud);

/* 1 when sa is a loopback address (127.0.0.0/8, ::1, ::ffff:127.x.x.x). */
int plush_addr_is_loopback(const struct sockaddr *sa);

#endif
