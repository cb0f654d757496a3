/*
** codec_put.h — the encoder's byte writers, inline for its loops
** (codec_enc.c): big-endian stores, an integer's MessagePack form, the
** room guessed for a long run of numbers.
*/
#ifndef PLUSH_CODEC_PUT_H
#define PLUSH_CODEC_PUT_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "codec_int.h"

/*
** Big-endian, n bytes. Spelled out per width: the compiler turns each
** into one byte-swapped store, where a loop over n stays a loop.
*/
static inline void store(uint8_t *p, uint64_t v, int n) {
  switch (n) {
    case 8:
      p[0] = (uint8_t)(v >> 56), p[1] = (uint8_t)(v >> 48);
      p[2] = (uint8_t)(v >> 40), p[3] = (uint8_t)(v >> 32);
      p += 4;
      /* fall through */
    case 4:
      p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16);
      p += 2;
      /* fall through */
    case 2:
      p[0] = (uint8_t)(v >> 8);
      p++;
      /* fall through */
    default: p[0] = (uint8_t)v;
  }
}

/*
** An integer's MessagePack head: *op, and how many bytes of the value
** follow it (0: a fixint, the value is *op itself).
*/
static inline int inthead(lua_Integer v, uint8_t *op) {
  if (v >= 0) {
    if (v <= 0x7f) return *op = (uint8_t)v, 0;
    *op = v <= 0xff ? 0xcc : v <= 0xffff ? 0xcd : v <= 0xffffffff ? 0xce : 0xcf;
    return 1 << (*op - 0xcc);
  }
  if (v >= -32) return *op = (uint8_t)v, 0;
  *op = v >= INT8_MIN ? 0xd0 : v >= INT16_MIN ? 0xd1 : v >= INT32_MIN ? 0xd2 : 0xd3;
  return 1 << (*op - 0xd0);
}

/*
** An integer's encoding at p (9 bytes of room), as putint writes it;
** returns its length. Inline, for the number loops.
*/
static inline size_t intat(uint8_t *p, lua_Integer v) {
  uint8_t op;
  int n = inthead(v, &op);
  p[0] = op;
  if (n == 0) return 1;
  store(p + 1, (uint64_t)v, n);
  return (size_t)n + 1;
}

/*
** As intat, for a loop that has made 9 bytes of room at p for every item
** it writes: the value goes as one 8-byte big-endian store (its first n
** bytes the n the format wants; the bytes after them are scratch the next
** item overwrites) instead of n byte stores.
*/
static inline size_t intat9(uint8_t *p, lua_Integer v) {
  uint64_t be;
  uint8_t op;
  int n = inthead(v, &op);
  p[0] = op;
  if (n == 0) return 1;
  be = (uint64_t)v << (64 - 8 * n);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  be = __builtin_bswap64(be);
#endif
  memcpy(p + 1, &be, 8);
  return (size_t)n + 1;
}

/*
** The room a long run of numbers will likely take: the mean length of
** SLOTS_SAMPLE slots spread over a[0..n), times n, plus a sixteenth and
** one chunk of putslots's room. Made once, it spares the buffer its
** doublings (a 10^6-number array went 2 → 4 → 8 MiB, each growth fresh
** pages the kernel zeroes: ~20% of the client's CPU per push) and the
** block then fits the one a like frame left behind (mem.h keeps it).
** A short guess only means doublings again, as before.
*/
enum { SLOTS_SAMPLE = 1024 };
static inline size_t slotsguess(const codec_slot *a, lua_Unsigned n) {
  lua_Unsigned step = n / SLOTS_SAMPLE, i, k = 0;
  size_t w = 0;
  uint8_t tmp[9];
  for (i = step / 2; i < n; i += step, k++)
    w += a[i].tt == CODEC_TINT ? intat(tmp, a[i].v.i) : 9;
  w = (size_t)((double)w / (double)k * (double)n);
  return w + w / 16 + 9 * (size_t)65536;
}

#endif
