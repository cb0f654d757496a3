/*
** codec_scan.c — encoded bytes read without making a value: the check of
** a function's Lua 5.4 bytecode before lua_load (codec_checkdump), and
** whether a value may hold a reference (codec_mayref), for codec_dec.c.
*/
#include <string.h>

#include "codec_int.h"

/*
** Walks a Lua 5.4 binary chunk (lundump.c's order) checking every count
** against the bytes left and the nesting of prototypes, and that counts
** which must match do (lundump 5.4.4 writes as many upvalue names as the
** chunk says, past the end of the upvalue array if it says too many).
*/
typedef struct bc { const uint8_t *p, *e; } bc;

static int skip(bc *s, size_t n) {
  if ((size_t)(s->e - s->p) < n) return -1;
  s->p += n;
  return 0;
}

static int getuv(bc *s, size_t lim, size_t *v) {  /* lundump loadUnsigned */
  size_t x = 0;
  int b;
  lim >>= 7;
  do {
    if (s->p >= s->e || x >= lim) return -1;
    b = *s->p++;
    x = (x << 7) | (size_t)(b & 0x7f);
  } while (!(b & 0x80));
  *v = x;
  return 0;
}

static int getvec(bc *s, size_t *n, size_t w) {  /* count of >= w-byte items */
  return getuv(s, 0x7fffffff, n) || *n > (size_t)(s->e - s->p) / w ? -1 : 0;
}

static int skipstr(bc *s, int need) {
  size_t n;
  if (getuv(s, (size_t)-1, &n) || (need && n == 0)) return -1;
  return n ? skip(s, n - 1) : 0;
}

static int walkproto(bc *s, int depth, size_t *nup) {
  size_t n, i, x, k, ncode;
  if (depth > PLUSH_MAX_DEPTH || skipstr(s, 0) || getuv(s, 0x7fffffff, &x) ||
      getuv(s, 0x7fffffff, &x) || skip(s, 3) || getvec(s, &ncode, 4) ||
      skip(s, 4 * ncode) || getvec(s, &n, 1))
    return -1;
  for (i = 0; i < n; i++) {                  /* constants */
    if (s->p >= s->e) return -1;
    k = *s->p++;
    if (k == 3 || k == 19) { if (skip(s, 8)) return -1; }   /* int, float */
    else if (k == 4 || k == 20) { if (skipstr(s, 1)) return -1; }
    else if (k != 0 && k != 1 && k != 17) return -1;  /* nil, false, true */
  }
  if (getvec(s, nup, 3) || skip(s, 3 * *nup) || getvec(s, &n, 1)) return -1;
  for (i = 0; i < n; i++)
    if (walkproto(s, depth + 1, &x)) return -1;
  if (getvec(s, &n, 1) || (n && n != ncode) || skip(s, n) || getvec(s, &n, 2))
    return -1;                                /* lineinfo: none or 1 per op */
  for (i = 0; i < n; i++)
    if (getuv(s, 0x7fffffff, &x) || getuv(s, 0x7fffffff, &x)) return -1;
  if (getvec(s, &n, 3)) return -1;
  for (i = 0; i < n; i++)
    if (skipstr(s, 0) || getuv(s, 0x7fffffff, &x) || getuv(s, 0x7fffffff, &x)) return -1;
  if (getuv(s, 0x7fffffff, &n) || (n && n != *nup)) return -1;
  for (i = 0; i < n; i++)      /* upvalue names: none or all (5.4.4 trusts n) */
    if (skipstr(s, 0)) return -1;
  return 0;
}

int codec_checkdump(const uint8_t *p, size_t n) {
  static const uint8_t h[] = {0x1b, 'L', 'u', 'a', 0x54, 0, 0x19, 0x93, '\r',
    '\n', 0x1a, '\n', 4, sizeof(lua_Integer), sizeof(lua_Number)};
  bc s = {p, p + n};
  size_t nup, u;
  if (n < sizeof h + 17 || memcmp(p, h, sizeof h)) return -1;
  s.p += sizeof h + 16;                      /* LUAC_INT, LUAC_NUM */
  nup = *s.p++;
  return walkproto(&s, 0, &u) || u != nup || s.p != s.e ? -1 : 0;
}

/*
** Whether the value at p may hold a BACKREF or UPVALUE: a walk of its
** MessagePack heads without making values, which skips strings and
** bytecode whole. A TABLE or FUNCTION payload is read as the two values
** it is made of (get reads them in the same order), the other ext
** payloads are skipped. Anything it cannot read, or more than `budget`
** heads, says "may" (the decode then keeps its ref table, and words any
** error as before).
*/
int codec_mayref(const uint8_t *p, const uint8_t *end, size_t budget) {
  uint64_t left = 1;                     /* values still to walk */
  while (left > 0) {
    uint64_t n = 0, skip;
    uint8_t b;
    int w, kind;
    if (p >= end || budget-- == 0) return 1;
    b = *p++, left--;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) continue;
    if (b <= 0x8f) { left += 2 * (uint64_t)(b & 0x0f); continue; }
    if (b <= 0x9f) { left += b & 0x0f; continue; }
    if (b <= 0xbf) { skip = b & 0x1f; goto bytes; }
    switch (b) {                         /* kind: 0 bytes, 1 ext, 2 container */
      case 0xc4: case 0xc5: case 0xc6: w = 1 << (b - 0xc4), kind = 0; break;
      case 0xd9: case 0xda: case 0xdb: w = 1 << (b - 0xd9), kind = 0; break;
      case 0xc7: case 0xc8: case 0xc9: w = 1 << (b - 0xc7), kind = 1; break;
      case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        w = 0, kind = 1, n = (uint64_t)1 << (b - 0xd4);
        break;
      case 0xca: skip = 4; goto bytes;
      case 0xcb: skip = 8; goto bytes;
      case 0xcc: case 0xcd: case 0xce: case 0xcf: skip = 1u << (b - 0xcc); goto bytes;
      case 0xd0: case 0xd1: case 0xd2: case 0xd3: skip = 1u << (b - 0xd0); goto bytes;
      case 0xdc: case 0xdd: case 0xde: case 0xdf: w = b & 1 ? 4 : 2, kind = 2; break;
      default: return 1;
    }
    if ((size_t)(end - p) < (size_t)w + (kind == 1)) return 1;
    for (int i = 0; i < w; i++) n = n << 8 | *p++;
    if (kind == 2) {                     /* array or map 16, 32 */
      left += b >= 0xde ? 2 * n : n;
      continue;
    }
    skip = n;
    if (kind == 1) {
      switch (*p++) {                    /* the ext type */
        case PLUSH_EXT_FUNCTION: case PLUSH_EXT_TABLE:
          left += 2;                     /* its payload: two values */
          continue;
        case PLUSH_EXT_CFUNC: case PLUSH_EXT_GLOBALS: case PLUSH_EXT_MODULE:
        case PLUSH_EXT_ARRAY: case PLUSH_EXT_BIGSTR:
          break;
        default: return 1;               /* BACKREF, UPVALUE, unknown */
      }
    }
  bytes:
    if ((uint64_t)(end - p) < skip) return 1;
    p += skip;
  }
  return 0;
}

int plush_decode_mayref(const char *data, size_t len) {
  return codec_mayref((const uint8_t *)data, (const uint8_t *)data + len, 4096);
}
