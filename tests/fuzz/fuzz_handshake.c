/*
** fuzz_handshake.c — libFuzzer target for the handshake (auth.h) and the
** sealed-frame opener (secure.h): what an unauthenticated or hostile peer
** controls.
**
** Input: byte 0 says what the rest is (low two bits) and carries the
** wishes and role (higher bits); then
**   0  server: the rest is a PROVE answering this server's HELLO (raw,
**      or -- bit 3 -- an XOR mask over a real client's PROVE: refused
**      exactly when the mask is not all zero);
**   1  client: the rest is a HELLO then a PROOF (raw, or -- bit 3 -- an
**      XOR mask over a real server's PROOF: refused exactly when the mask
**      is not all zero);
**   2  opener: byte 1 picks max_frame and the chunking, the rest is the
**      sealed stream (session key fixed: the seed corpus holds records
**      sealed with it);
**   3  seal then open: bytes 1-4 a mutation (position, mask), the rest
**      frames to seal ([len u8][type u8][payload]...); what opens must be
**      exactly the frames before the mutated record, the rest refused.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "buf.h"
#include "frame.h"
#include "plush.h"
#include "secure.h"

#define FH_MAX 256

/* The session key of mode 2 (gen_corpus.c seals its seeds with it). */
#define FH_KEY "plush-fuzz-key-0123456789abcdefg"
static const uint8_t *const fh_key = (const uint8_t *)FH_KEY;

static void fh_check(int ok) {
  if (!ok) abort();
}

/* Copies up to n bytes of input (zero-padded) into out. */
static void fh_take(uint8_t *out, size_t n, const uint8_t **p, size_t *left) {
  size_t k = *left < n ? *left : n;
  memset(out, 0, n);
  memcpy(out, *p, k);
  *p += k;
  *left -= k;
}

static int fh_zero(const uint8_t *p, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

static void fh_server(uint8_t sel, const uint8_t *p, size_t left) {
  uint8_t hello[PLUSH_HELLO_SIZE], prove[PLUSH_PROVE_SIZE], mask[PLUSH_PROVE_SIZE];
  uint8_t proof[PLUSH_PROOF_SIZE];
  plush_shake s, before, c;
  int want = (sel >> 2) & 1, rc;
  plush_auth_hello(&s, want, hello);
  before = s;
  fh_take(mask, sizeof mask, &p, &left);
  if (sel & 8) {
    uint8_t role = (uint8_t)((sel >> 4) & 3);
    size_t i;
    if (plush_auth_prove(fh_key, hello, role, (sel >> 6) & 1, &c, prove) != 0) {
      fh_check(role != PLUSH_ROLE_CLIENT && role != PLUSH_ROLE_ENGINE);
      return;
    }
    for (i = 0; i < sizeof prove; i++) prove[i] ^= mask[i];
    rc = plush_auth_check(fh_key, &s, prove, proof);
    if (fh_zero(mask, sizeof mask)) {
      uint8_t a[2][PLUSH_KEY_SIZE], b[2][PLUSH_KEY_SIZE];
      fh_check(rc == 0 && s.mode == c.mode && s.role == role);
      fh_check(c.mode == (want || ((sel >> 6) & 1)));
      fh_check(plush_auth_verify(fh_key, &c, proof) == 0);
      plush_auth_session(fh_key, &s, a[0], a[1]);
      plush_auth_session(fh_key, &c, b[0], b[1]);
      fh_check(memcmp(a, b, sizeof a) == 0);
      return;
    }
  } else {
    memcpy(prove, mask, sizeof prove);
    rc = plush_auth_check(fh_key, &s, prove, proof);
  }
  fh_check(rc == PLUSH_EAUTH);
  fh_check(memcmp(&s, &before, sizeof s) == 0);
}

static void fh_client(uint8_t sel, const uint8_t *p, size_t left) {
  uint8_t hello[PLUSH_HELLO_SIZE], prove[PLUSH_PROVE_SIZE];
  uint8_t proof[PLUSH_PROOF_SIZE], mask[PLUSH_PROOF_SIZE];
  uint8_t role = (sel >> 4) & 1 ? PLUSH_ROLE_ENGINE : PLUSH_ROLE_CLIENT;
  int want = (sel >> 2) & 1, rc;
  plush_shake c, s;
  if (sel & 8) {
    size_t i;
    plush_auth_hello(&s, (sel >> 6) & 1, hello);
    fh_check(plush_auth_prove(fh_key, hello, role, want, &c, prove) == 0);
    fh_check(plush_auth_check(fh_key, &s, prove, proof) == 0);
    fh_take(mask, sizeof mask, &p, &left);
    for (i = 0; i < sizeof proof; i++) proof[i] ^= mask[i];
    rc = plush_auth_verify(fh_key, &c, proof);
    fh_check(rc == (fh_zero(mask, sizeof mask) ? 0 : PLUSH_EAUTH));
    return;
  }
  fh_take(hello, sizeof hello, &p, &left);
  rc = plush_auth_prove(fh_key, hello, role, want, &c, prove);
  fh_check(rc == 0 || rc == PLUSH_EAUTH);
  if (rc) return;
  fh_check(c.mode == (want || (hello[5] & PLUSH_AUTH_ENCRYPT)));
  fh_take(proof, sizeof proof, &p, &left);
  fh_check(plush_auth_verify(fh_key, &c, proof) == PLUSH_EAUTH);
}

/* ---- the opener ---- */

typedef struct fh_got {
  size_t n;
  plush_frame *f[FH_MAX];
  uint64_t limit;
} fh_got;

static void fh_collect(void *ud, plush_frame *f) {
  fh_got *g = ud;
  unsigned char packed[PLUSH_HDR_SIZE];
  fh_check(f->hdr.len <= g->limit);
  fh_check(f->hdr.type >= 1 && f->hdr.type < PLUSH_T__MAX);
  plush_hdr_pack(&f->hdr, packed);
  fh_check(memcmp(packed, f->raw, PLUSH_HDR_SIZE) == 0);
  if (g->n < FH_MAX) g->f[g->n] = f;
  else plush_frame_unref(f);
  g->n++;
}

static void fh_free(fh_got *g) {
  size_t i;
  for (i = 0; i < g->n && i < FH_MAX; i++) plush_frame_unref(g->f[i]);
  g->n = 0;
}

static uint32_t fh_next(uint32_t *s) {
  uint32_t x = *s ? *s : 0x9e3779b9u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

/* Opens stream in pseudo-random chunks, through direct reads when offered. */
static int fh_open(const char *s, size_t len, uint64_t limit, uint32_t seed,
                   fh_got *g) {
  plush_opener o;
  size_t off = 0;
  int rc = 0;
  g->limit = limit;
  plush_opener_init(&o, fh_key, limit);
  while (off < len && rc == 0) {
    size_t room = 0, n;
    char *d = plush_opener_direct(&o, &room);
    uint32_t r = fh_next(&seed);
    if (d != NULL && (r & 1)) {
      n = 1 + (size_t)(r >> 8) % room;
      if (n > len - off) n = len - off;
      memcpy(d, s + off, n);
      rc = plush_opener_advance(&o, n, fh_collect, g);
    } else {
      n = 1 + (size_t)(r >> 8) % 97;
      if (n > len - off) n = len - off;
      rc = plush_opener_feed(&o, s + off, n, fh_collect, g);
    }
    off += n;
  }
  if (rc) fh_check(plush_opener_feed(&o, "x", 1, fh_collect, g) == rc);
  plush_opener_free(&o);
  return rc;
}

static void fh_opener(const uint8_t *p, size_t left) {
  fh_got g = {0};
  uint8_t b;
  int rc;
  if (left < 1) return;
  b = *p++;
  left--;
  rc = fh_open((const char *)p, left, (uint64_t)1 << (b % 21), b * 0x01010101u + 7, &g);
  fh_check(rc == 0 || rc == PLUSH_EAUTH || rc == PLUSH_EPROTO || rc == PLUSH_ETOOBIG);
  fh_free(&g);
}

static void fh_roundtrip(const uint8_t *p, size_t left) {
  static plush_hdr hs[FH_MAX];
  static size_t starts[FH_MAX + 1];
  static const uint8_t *pays[FH_MAX];
  plush_buf out = PLUSH_BUF_INIT;
  plush_seal st;
  fh_got g = {0};
  size_t n = 0, pos, i, good;
  uint8_t mask;
  int rc;
  if (left < 4) return;
  pos = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16;
  mask = p[3];
  p += 4;
  left -= 4;
  plush_seal_init(&st, fh_key);
  while (left >= 2 && n < FH_MAX) {
    unsigned char hb[PLUSH_HDR_SIZE];
    size_t len = p[0] < left - 2 ? p[0] : left - 2;
    char *rec;
    size_t reclen;
    memset(&hs[n], 0, sizeof hs[n]);
    hs[n].len = (uint32_t)len;
    hs[n].type = p[1];
    hs[n].id = n;
    hs[n].aux = (uint32_t)len * 7u;
    pays[n] = p + 2;
    plush_hdr_pack(&hs[n], hb);
    fh_check(plush_seal_frame(&st, hb, (const char *)p + 2, len, &rec, &reclen) == 0);
    fh_check(reclen == len + PLUSH_HDR_SIZE + PLUSH_SEAL_OVERHEAD);
    starts[n] = out.len;
    if (plush_buf_append(&out, rec, reclen)) abort();
    free(rec);
    n++;
    p += 2 + len;
    left -= 2 + len;
  }
  starts[n] = out.len;
  plush_seal_wipe(&st);
  if (n == 0) return;
  /* frames that can open: up to the first unknown type */
  for (good = 0; good < n; good++)
    if (hs[good].type < 1 || hs[good].type >= PLUSH_T__MAX) break;
  pos %= out.len;
  if (mask) out.data[pos] ^= (char)mask;
  rc = fh_open(out.data, out.len, PLUSH_DEFAULT_MAX_FRAME, (uint32_t)pos + mask, &g);
  if (mask) {
    size_t hit = 0; /* the record the mutation fell in */
    while (starts[hit + 1] <= pos) hit++;
    if (hit < good) good = hit;
    /* a record made longer may just wait for bytes that never come */
    fh_check(rc != 0 || g.n == good);
  } else {
    fh_check(rc == (good < n ? PLUSH_EPROTO : 0));
  }
  fh_check(g.n == good);
  for (i = 0; i < g.n && i < FH_MAX; i++) {
    const plush_hdr *h = &g.f[i]->hdr;
    fh_check(h->len == hs[i].len && h->type == hs[i].type && h->id == hs[i].id &&
             h->aux == hs[i].aux);
    fh_check(memcmp(plush_frame_payload(g.f[i]), pays[i], h->len) == 0);
  }
  fh_free(&g);
  plush_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  if (plush_auth_init() != 0) abort();
  switch (data[0] & 3) {
    case 0: fh_server(data[0], data + 1, size - 1); break;
    case 1: fh_client(data[0], data + 1, size - 1); break;
    case 2: fh_opener(data + 1, size - 1); break;
    default: fh_roundtrip(data + 1, size - 1); break;
  }
  return 0;
}
