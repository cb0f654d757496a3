/*
** fuzz_frame.c — libFuzzer target for the incremental frame parser.
**
** Input: byte 0 picks max_frame (2^(b % 21) bytes: the parser's limit
** must hold, and allocations stay small); byte 1 seeds the chunking; the
** rest is the byte stream a peer sent.
**
** The stream is parsed twice: once in a single feed, once in chunks of
** pseudo-random sizes, taking the parser's direct pointer (and advance)
** whenever it offers one and the dice say so -- conn.c's way of reading
** big payloads. Both runs must deliver the same frames (headers and
** payload bytes) and end with the same error, if any; every delivered
** frame must be consistent (raw header == hdr, payload within limit).
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "plush.h"

#define FF_MAX 4096

typedef struct ff_got {
  size_t n;
  plush_frame *f[FF_MAX];
  uint64_t limit;
} ff_got;

static void ff_check(int ok) {
  if (!ok) abort();
}

static void ff_collect(void *ud, plush_frame *f) {
  ff_got *g = ud;
  unsigned char packed[PLUSH_HDR_SIZE];
  ff_check(f != NULL && atomic_load(&f->refs) == 1);
  ff_check(f->hdr.len <= g->limit);
  ff_check(f->hdr.type >= 1 && f->hdr.type < PLUSH_T__MAX);
  plush_hdr_pack(&f->hdr, packed);
  ff_check(memcmp(packed, f->raw, PLUSH_HDR_SIZE) == 0);
  if (g->n < FF_MAX) g->f[g->n] = f;
  else plush_frame_unref(f);
  g->n++;
}

static void ff_free(ff_got *g) {
  size_t i;
  for (i = 0; i < g->n && i < FF_MAX; i++) plush_frame_unref(g->f[i]);
  g->n = 0;
}

/* xorshift32: the chunking, reproducible from the input. */
static uint32_t ff_next(uint32_t *s) {
  uint32_t x = *s ? *s : 0x9e3779b9u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static ff_got one, many;
  plush_parser p;
  uint64_t limit;
  uint32_t seed;
  const char *s;
  size_t len, off = 0, i;
  int rc1, rc2 = 0;
  if (size < 2) return 0;
  limit = (uint64_t)1 << (data[0] % 21);
  seed = data[1] * 0x01010101u + 1;
  s = (const char *)data + 2;
  len = size - 2;
  one.limit = many.limit = limit;

  plush_parser_init(&p, limit);
  rc1 = plush_parser_feed(&p, s, len, ff_collect, &one);
  if (rc1) ff_check(plush_parser_feed(&p, "x", 1, ff_collect, &one) == rc1);
  plush_parser_free(&p);

  plush_parser_init(&p, limit);
  while (off < len && rc2 == 0) {
    size_t room = 0, n;
    char *d = plush_parser_direct(&p, &room);
    uint32_t r = ff_next(&seed);
    if (d != NULL && (r & 1)) {
      ff_check(room > 0);
      n = 1 + (size_t)(r >> 8) % room;
      if (n > len - off) n = len - off;
      memcpy(d, s + off, n);
      rc2 = plush_parser_advance(&p, n, ff_collect, &many);
    } else {
      n = 1 + (size_t)(r >> 8) % 64;
      if (n > len - off) n = len - off;
      rc2 = plush_parser_feed(&p, s + off, n, ff_collect, &many);
    }
    off += n;
  }
  /* advancing past the room is refused, the parser unharmed */
  if (rc2 == 0) {
    size_t room = 0;
    plush_parser_direct(&p, &room);
    ff_check(plush_parser_advance(&p, room + 1, ff_collect, &many) ==
             PLUSH_EINVAL);
  }
  plush_parser_free(&p);

  ff_check(rc1 == rc2);
  ff_check(one.n == many.n);
  for (i = 0; i < one.n && i < FF_MAX; i++) {
    plush_frame *a = one.f[i], *b = many.f[i];
    ff_check(a->hdr.len == b->hdr.len);
    ff_check(memcmp(a->raw, b->raw, PLUSH_HDR_SIZE + a->hdr.len) == 0);
  }
  ff_free(&one);
  ff_free(&many);
  return 0;
}
