/*
** secure.c — sealing and opening frames (format: secure.h).
**
** Why an AEAD with counters rather than crypto_secretstream: the session
** keys are fresh per connection and per direction (auth.c), so a counter
** is a nonce that never repeats, and the receiver that expects record k
** refuses anything else -- replay and reordering protection fall out of
** the nonce, with no stream header to exchange and no state beyond one
** 64-bit number. The record length is authenticated as associated data.
**
** The opener decrypts in place: the ciphertext is read straight into the
** frame that will carry the plaintext, so a large frame costs the read,
** one pass for the tag and one for the cipher -- and nothing is handed on
** before its tag verified.
*/
#include "secure.h"
#include "plush.h"

#include <inttypes.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define BODY_MIN PLUSH_HDR_SIZE
#define RECORD_MIN (PLUSH_HDR_SIZE + PLUSH_SEAL_TAG)

static void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

/* The record number, little-endian, then zeros. */
static void nonce(unsigned char out[NONCE], uint64_t seq) {
  int i;
  memset(out, 0, NONCE);
  for (i = 0; i < 8; i++) out[i] = (unsigned char)(seq >> (8 * i));
}

void plush_seal_init(plush_seal *s, const uint8_t key[PLUSH_KEY_SIZE]) {
  memcpy(s->key, key, PLUSH_KEY_SIZE);
  s->seq = 0;
}

void plush_seal_wipe(plush_seal *s) {
  sodium_memzero(s, sizeof *s);
}

/*
** The plaintext is gathered after the length prefix and encrypted where
** it lies (libsodium allows c == m), so one allocation serves.
*/
int plush_seal_frame(plush_seal *s, const unsigned char *hdr,
                     const char *payload, size_t len, char **out,
                     size_t *outlen) {
  plush_piece one = {payload, len};
  return plush_seal_pieces(s, hdr, &one, len ? 1 : 0, len, out, outlen);
}

int plush_seal_pieces(plush_seal *s, const unsigned char *hdr,
                      const plush_piece *pc, int npc, size_t len, char **out,
                      size_t *outlen) {
  size_t at = 0;
  unsigned char nb[NONCE], *buf, *body;
  size_t total;
  *out = NULL;
  *outlen = 0;
  if ((uint64_t)len > PLUSH_SEAL_MAX_PAYLOAD) return PLUSH_ETOOBIG;
  if (s->seq == UINT64_MAX) return PLUSH_EPROTO;
  total = PLUSH_SEAL_PREFIX + PLUSH_HDR_SIZE + len + PLUSH_SEAL_TAG;
  if ((buf = malloc(total)) == NULL) return PLUSH_ENOMEM;
  put32(buf, (uint32_t)(total - PLUSH_SEAL_PREFIX));
  body = buf + PLUSH_SEAL_PREFIX;
  memcpy(body, hdr, PLUSH_HDR_SIZE);
  for (int i = 0; i < npc; i++) {
    memcpy(body + PLUSH_HDR_SIZE + at, pc[i].p, pc[i].n);
    at += pc[i].n;
  }
  nonce(nb, s->seq);
  crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
      body, body + PLUSH_HDR_SIZE + len, NULL, body, PLUSH_HDR_SIZE + len,
      buf, PLUSH_SEAL_PREFIX, NULL, nb, s->key);
  s->seq++;
  *out = (char *)buf;
  *outlen = total;
  return 0;
}

/* ---- the opener: sealed frames in -------------------------------- */

void plush_opener_init(plush_opener *o, const uint8_t key[PLUSH_KEY_SIZE],
                       uint64_t max_frame) {
  memset(o, 0, sizeof *o);
  plush_seal_init(&o->st, key);
  o->max_frame = max_frame ? max_frame : PLUSH_DEFAULT_MAX_FRAME;
}

static void drop(plush_opener *o) {
  plush_frame_unref(o->cur);
  o->cur = NULL;
  o->prelen = o->got = o->body = o->taglen = 0;
}

void plush_opener_free(plush_opener *o) {
  drop(o);
  plush_seal_wipe(&o->st);
}

static int fail(plush_opener *o, int rc) {
  drop(o);
  o->rc = rc;
  return rc;
}

/*
** The length is checked before it is trusted with an allocation; the
** frame gets a provisional header (only len) until the real one opens.
*/
static int start(plush_opener *o) {
  uint32_t n = get32(o->pre);
  plush_hdr h;
  if (n < RECORD_MIN) {
    snprintf(o->err, sizeof o->err,
             "sealed record of %" PRIu32 " bytes, under the %d-byte minimum",
             n, RECORD_MIN);
    return fail(o, PLUSH_EPROTO);
  }
  memset(&h, 0, sizeof h);
  h.len = n - RECORD_MIN;
  if (h.len > o->max_frame) {
    snprintf(o->err, sizeof o->err,
             "sealed frame of %" PRIu32 " bytes over the %" PRIu64
             "-byte limit", h.len, o->max_frame);
    return fail(o, PLUSH_ETOOBIG);
  }
  if ((o->cur = plush_frame_new_lazy(&h)) == NULL) {
    snprintf(o->err, sizeof o->err,
             "no memory for a frame of %" PRIu32 " bytes", h.len);
    return fail(o, PLUSH_ENOMEM);
  }
  o->body = PLUSH_HDR_SIZE + (size_t)h.len;
  o->got = o->taglen = 0;
  return 0;
}

/*
** The whole record is in: verify and decrypt in place, then hold the
** opened header to the rules a plain frame's header meets.
*/
static int finish(plush_opener *o, plush_frame_cb cb, void *ud) {
  unsigned char nb[NONCE];
  plush_frame *f = o->cur;
  plush_hdr h;
  nonce(nb, o->st.seq);
  if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
          f->raw, NULL, f->raw, o->body, o->tag, o->pre, PLUSH_SEAL_PREFIX,
          nb, o->st.key) != 0) {
    snprintf(o->err, sizeof o->err,
             "sealed frame %" PRIu64 " failed authentication (tampered, "
             "replayed, reordered or not sealed by the peer)", o->st.seq);
    return fail(o, PLUSH_EAUTH);
  }
  o->st.seq++;
  plush_hdr_unpack(f->raw, &h);
  if ((size_t)h.len != o->body - PLUSH_HDR_SIZE) {
    snprintf(o->err, sizeof o->err,
             "sealed frame says %" PRIu32 " bytes of payload, holds %zu",
             h.len, o->body - PLUSH_HDR_SIZE);
    return fail(o, PLUSH_EPROTO);
  }
  if (h.type < 1 || h.type >= PLUSH_T__MAX) {
    snprintf(o->err, sizeof o->err, "unknown frame type %u",
             (unsigned)h.type);
    return fail(o, PLUSH_EPROTO);
  }
  f->hdr = h;
  o->cur = NULL;
  o->prelen = o->got = o->body = o->taglen = 0;
  cb(ud, f);
  return 0;
}

int plush_opener_feed(plush_opener *o, const char *data, size_t len,
                      plush_frame_cb cb, void *ud) {
  size_t n;
  int rc;
  if (o->rc) return o->rc;
  while (len > 0) {
    if (o->cur == NULL) {
      n = PLUSH_SEAL_PREFIX - o->prelen;
      if (n > len) n = len;
      memcpy(o->pre + o->prelen, data, n);
      o->prelen += n;
      if (o->prelen == PLUSH_SEAL_PREFIX && (rc = start(o)) != 0) return rc;
    } else if (o->got < o->body) {
      n = o->body - o->got;
      if (n > len) n = len;
      memcpy(o->cur->raw + o->got, data, n);
      o->got += n;
    } else {
      n = PLUSH_SEAL_TAG - o->taglen;
      if (n > len) n = len;
      memcpy(o->tag + o->taglen, data, n);
      o->taglen += n;
      if (o->taglen == PLUSH_SEAL_TAG && (rc = finish(o, cb, ud)) != 0)
        return rc;
    }
    data += n;
    len -= n;
  }
  return 0;
}

char *plush_opener_direct(plush_opener *o, size_t *room) {
  if (o->rc || o->cur == NULL || o->got >= o->body) {
    *room = 0;
    return NULL;
  }
  *room = o->body - o->got;
  return (char *)o->cur->raw + o->got;
}

/*
** Bytes a reader put at plush_opener_direct's pointer. The body cannot
** complete a record (its tag always follows through feed), so cb is
** never called from here; it is taken for symmetry with the parser.
*/
int plush_opener_advance(plush_opener *o, size_t n, plush_frame_cb cb,
                         void *ud) {
  size_t room;
  (void)cb;
  (void)ud;
  if (o->rc) return o->rc;
  if (n == 0) return 0;
  room = o->cur && o->got < o->body ? o->body - o->got : 0;
  if (n > room) {
    snprintf(o->err, sizeof o->err,
             "advance of %zu bytes over the %zu bytes of room", n, room);
    return PLUSH_EINVAL;
  }
  o->got += n;
  return 0;
}

/* ---- addresses --------------------------------------------------- */

int plush_addr_is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a)) return 1;
    return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
  }
  return 0;
}
