/*
** codec_enc.c — Lua values -> MessagePack bytes (format: codec.h; the
** choices it leaves open: codec_int.h). As Lua's ldump.c beside
** lundump.c: the decoder is codec_dec.c.
** Over 600 lines: one recursive walk whose parts (tables, slices,
** functions, upvalues) share its context and writers; apart, they would
** need those writers in a header. (The number loops have their own
** integer writer, intat: with putint using it too, putrun ran 12% slower.)
*/
#include <lauxlib.h>
#include <string.h>

#include "array.h"
#include "codec_int.h"
#include "codec_put.h"

/* ---- encode ------------------------------------------------------ */

static uint8_t *room(ctx *c, size_t n) {
  plush_buf *b = c->b;
  if (b->cap - b->len < n && plush_buf_reserve(b, n)) return NULL;
  return (uint8_t *)b->data + b->len;
}

static int put1(ctx *c, uint8_t x) {
  uint8_t *p = room(c, 1);
  if (!p) return codec_nomem(c);
  *p = x;
  c->b->len++;
  return 0;
}

/* Op byte then an n-byte big-endian value. */
static int putop(ctx *c, uint8_t op, uint64_t v, int n) {
  uint8_t *p = room(c, 9);
  if (!p) return codec_nomem(c);
  p[0] = op;
  store(p + 1, v, n);
  c->b->len += (size_t)n + 1;
  return 0;
}

static int putint(ctx *c, lua_Integer v) {
  if (v >= 0) {
    if (v <= 0x7f) return put1(c, (uint8_t)v);
    if (v <= 0xff) return putop(c, 0xcc, (uint64_t)v, 1);
    if (v <= 0xffff) return putop(c, 0xcd, (uint64_t)v, 2);
    if (v <= 0xffffffff) return putop(c, 0xce, (uint64_t)v, 4);
    return putop(c, 0xcf, (uint64_t)v, 8);
  }
  if (v >= -32) return put1(c, (uint8_t)v);
  if (v >= INT8_MIN) return putop(c, 0xd0, (uint64_t)v, 1);
  if (v >= INT16_MIN) return putop(c, 0xd1, (uint64_t)v, 2);
  if (v >= INT32_MIN) return putop(c, 0xd2, (uint64_t)v, 4);
  return putop(c, 0xd3, (uint64_t)v, 8);
}

/*
** Segments (buf.h): a big string may stay where it is, its bytes counted
** at its offset in the buffer. The places that move or rewind what was
** written, or patch a byte length over it, keep them in step.
*/
static size_t segsafter(const plush_buf *b, size_t at) {
  size_t n = 0;
  for (int i = b->nsegs - 1; i >= 0 && b->segs[i].at > at; i--)
    n += b->segs[i].len;
  return n;
}

/* The bytes after at moved by d (memmove): so do their segments. */
static void shiftsegs(plush_buf *b, size_t at, ptrdiff_t d) {
  for (int i = b->nsegs - 1; i >= 0 && b->segs[i].at > at; i--)
    b->segs[i].at = (size_t)((ptrdiff_t)b->segs[i].at + d);
}

/* What was written after at is dropped: so are its segments. */
static void cutsegs(plush_buf *b, size_t at) {
  int k = b->nsegs;
  while (k > 0 && b->segs[k - 1].at > at) k--;
  plush_buf_dropsegs(b, k);
}

/* str, array and map headers: fix form, then 8 (if op8), 16, 32 bits. */
static int puthead(ctx *c, size_t n, uint8_t fix, size_t fixmax, uint8_t op8) {
  uint8_t op16 = fix == 0xa0 ? 0xda : fix == 0x90 ? 0xdc : 0xde;
  if (n <= fixmax) return put1(c, (uint8_t)(fix | n));
  if (op8 && n <= 0xff) return putop(c, op8, n, 1);
  if (n <= 0xffff) return putop(c, op16, n, 2);
  if (n <= 0xffffffff) return putop(c, (uint8_t)(op16 + 1), n, 4);
  return codec_refuse(c, "2^32 or more elements");
}

/* Ext whose payload is the string at idx (a C function or library name). */
static int putname(ctx *c, int idx, int type) {
  size_t n;
  const char *s = lua_tolstring(c->L, idx, &n);
  uint8_t *p = n > 0xff ? NULL : room(c, n + 3);
  if (!p) return n > 0xff ? codec_refuse(c, "name over 255 bytes") : codec_nomem(c);
  p[0] = 0xc7;
  p[1] = (uint8_t)n;
  p[2] = (uint8_t)type;
  memcpy(p + 3, s, n);
  c->b->len += n + 3;
  return 0;
}

static int putglobals(ctx *c) {
  uint8_t *p = room(c, 3);
  if (!p) return codec_nomem(c);
  p[0] = 0xc7, p[1] = 0, p[2] = PLUSH_EXT_GLOBALS;
  c->b->len += 3;
  return 0;
}

/*
** A table or Lua function seen before in this value becomes a BACKREF
** (returns 1); else it gets the next ref number (returns 0).
*/
static int mark(ctx *c, int idx) {
  const void *o = lua_topointer(c->L, idx);
  lua_Integer r;
  if (codec_seen(c, o, &r)) {
    uint8_t *p = room(c, 6);
    if (!p) return codec_nomem(c);
    p[0] = 0xd6, p[1] = PLUSH_EXT_BACKREF;
    store(p + 2, (uint64_t)r, 4);
    c->b->len += 6;
    return 1;
  }
  if (c->nref > (lua_Integer)UINT32_MAX) return codec_refuse(c, "over 2^32 tables");
  codec_remember(c, o, c->nref++);
  return 0;
}

static int put(ctx *c, int idx);

/* Bytes of the header puthead writes for an array or a map of n. */
static size_t headlen(lua_Unsigned n) {
  return n <= 15 ? 1 : n <= 0xffff ? 3 : 5;
}

/* That header, written at p (room made, n below 2^32). */
static void sethead(uint8_t *p, lua_Unsigned n, uint8_t fix) {
  uint8_t op16 = fix == 0x90 ? 0xdc : 0xde;
  if (n <= 15) {
    p[0] = (uint8_t)(fix | n);
  } else if (n <= 0xffff) {
    p[0] = op16;
    store(p + 1, n, 2);
  } else {
    p[0] = (uint8_t)(op16 + 1);
    store(p + 1, n, 4);
  }
}

static int isscalar(int t) {
  return t == LUA_TNUMBER || t == LUA_TSTRING || t == LUA_TBOOLEAN;
}

/*
** A big string in a buffer with segments: a BIGSTR (codec.h) whose bytes
** stay in the string (a segment), its window of zeros written here and
** its place in the window chosen when the frame is made (frame.c); a
** plain str 32 with a copy when the string cannot be pinned.
*/
static int putbig(ctx *c, const char *s, size_t n) {
  plush_buf *b = c->b;
  size_t at = b->len, ext = 2 + PLUSH_BIGSTR_PAD + (size_t)n;
  uint8_t *p;
  int rc;
  if (n <= 0xffffffff - 2 - PLUSH_BIGSTR_PAD) {
    if (!(p = room(c, 8 + PLUSH_BIGSTR_PAD))) return codec_nomem(c);
    p[0] = 0xc9;
    store(p + 1, ext, 4);
    p[5] = PLUSH_EXT_BIGSTR;
    p[6] = p[7] = 0;
    b->len += 8;
    if (plush_buf_addseg(b, s, n)) {
      memset(b->data + b->len, 0, PLUSH_BIGSTR_PAD);
      b->len += PLUSH_BIGSTR_PAD;
      return 0;
    }
    b->len = at;
  }
  if ((rc = puthead(c, n, 0xa0, 31, 0xd9))) return rc;
  return plush_buf_append(b, s, n) ? codec_nomem(c) : 0;
}

/* A nil, boolean, number or string at idx, whose type is t. */
static int putscalar(ctx *c, int idx, int t) {
  lua_State *L = c->L;
  if (t == LUA_TNUMBER) {
    if (lua_isinteger(L, idx)) return putint(c, lua_tointeger(L, idx));
    else {
      double d = (double)lua_tonumber(L, idx);
      uint64_t u;
      memcpy(&u, &d, 8);
      return putop(c, 0xcb, u, 8);
    }
  }
  if (t == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    int rc;
    if (c->b->segmin && n >= c->b->segmin) return putbig(c, s, n);
    if ((rc = puthead(c, n, 0xa0, 31, 0xd9))) return rc;
    return plush_buf_append(c->b, s, n) ? codec_nomem(c) : 0;
  }
  if (t == LUA_TBOOLEAN) return put1(c, lua_toboolean(L, idx) ? 0xc3 : 0xc2);
  return put1(c, 0xc0);
}

/*
** The common table is an array filled in order, and lua_next walks an
** array part first, keys 1, 2, 3, ...: while the walk yields those keys
** (up to n) with scalar values, they are written as they come, so such a
** table costs one pass; numbers, what big arrays are made of, are written
** right here, into room made for many at a time. The walk stops before
** the first key out of that order and before the first value that would
** take a ref number (a table or function): nothing inside this table is
** marked yet, so the caller may still move or drop what was written.
** Returns 0 when the walk ended, 1 when it stopped (that key and value on
** the stack), or an error; *next is the key that was expected next.
*/
static int putrun(ctx *c, int idx, lua_Integer n, lua_Integer *next) {
  lua_State *L = c->L;
  plush_buf *b = c->b;
  lua_Integer i = 1;
  int rc = 0, t;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (i > n || !lua_isinteger(L, -2) || lua_tointeger(L, -2) != i) {
      rc = 1;
      break;
    }
    if (b->cap - b->len < 9 &&
        plush_buf_reserve(b, 9 * (size_t)(n - i < 65536 ? n - i + 1 : 65536)))
      return codec_nomem(c);
    if (lua_isinteger(L, -1)) {
      b->len += intat((uint8_t *)b->data + b->len, lua_tointeger(L, -1));
    } else if ((t = lua_type(L, -1)) == LUA_TNUMBER) {
      double d = (double)lua_tonumber(L, -1);
      uint64_t u;
      uint8_t *p = (uint8_t *)b->data + b->len;
      memcpy(&u, &d, 8);
      p[0] = 0xcb;
      store(p + 1, u, 8);
      b->len += 9;
    } else if (!isscalar(t)) {
      rc = 1;
      break;
    } else if ((rc = putscalar(c, -1, t))) {
      return rc;
    }
    lua_pop(L, 1);
    i++;
  }
  *next = i;
  return rc;
}

/* A number's tag in a slot (codec_int.h); putslots's out of memory. */
static inline int isnum(unsigned char tt) {
  return tt == CODEC_TINT || tt == CODEC_TFLT;
}
#define SLOTS_NOMEM ((lua_Unsigned)-1)

/*
** The numbers in slots a[0..n), as putrun writes them, up to the first
** slot that holds anything else; room made for 64Ki at a time: no Lua API
** call per item. The type test rides in the writing loop (a separate pass
** over the slots first read a 10^6-item array part twice: 16 MB, out of
** cache, ~25% of an encode). Returns how many it wrote (n: all), or
** (lua_Unsigned)-1 when out of memory (the error worded).
*/
static lua_Unsigned putslots(ctx *c, const codec_slot *a, lua_Unsigned n) {
  lua_Unsigned i, j;
  uint8_t *p;
  if (n > SLOTS_SAMPLE * 64 && !room(c, slotsguess(a, n)))
    return codec_nomem(c), SLOTS_NOMEM;
  for (i = 0; i < n; i = j) {
    const codec_slot *q, *e;
    j = n - i > 65536 ? i + 65536 : n;
    if (!(p = room(c, 9 * (size_t)(j - i)))) return codec_nomem(c), SLOTS_NOMEM;
    for (q = a + i, e = a + j; q < e; q++) {  /* 9 bytes of room per item */
      /* the slots 2 KiB on (out of cache in a long array): -20% */
      __builtin_prefetch((const void *)((uintptr_t)q + 2048));
      if (q->tt == CODEC_TINT) {
        p += intat9(p, q->v.i);
      } else if (q->tt == CODEC_TFLT) {
        uint64_t u;
        memcpy(&u, &q->v.n, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        u = __builtin_bswap64(u);
#endif
        p[0] = 0xcb;
        memcpy(p + 1, &u, 8);
        p += 9;
      } else {
        break;
      }
    }
    c->b->len = (size_t)(p - (uint8_t *)c->b->data);
    if (q < e) return (lua_Unsigned)(q - a);
  }
  return n;
}

/* Writes the items i..k of the table at idx by key (absent ones as nil). */
static int putitems(ctx *c, int idx, lua_Integer i, lua_Integer k) {
  lua_State *L = c->L;
  int rc;
  c->path[c->depth].kind = SEG_INT;
  for (; i <= k; i++) {
    lua_rawgeti(L, idx, i);
    c->path[c->depth].i = i;
    if ((rc = put(c, lua_gettop(L)))) return rc;
    lua_pop(L, 1);
  }
  return 0;
}

/*
** Writes the pair of the key at the top and those of the keys after it in
** the walk, skipping positive integer keys when skipints. Pops the key.
*/
static int putpairs(ctx *c, int idx, int skipints) {
  lua_State *L = c->L;
  seg *s = &c->path[c->depth];
  int rc;
  lua_pushvalue(L, -1);
  lua_rawget(L, idx);
  do {
    int top = lua_gettop(L);
    if (!skipints || !lua_isinteger(L, top - 1) || lua_tointeger(L, top - 1) < 1) {
      s->kind = SEG_MKEY;
      if ((rc = put(c, top - 1))) return rc;
      s->kind = SEG_KEY, s->idx = top - 1;
      if ((rc = put(c, top))) return rc;
    }
    lua_pop(L, 1);
  } while (lua_next(L, idx));
  return 0;
}

/*
** The head of an ext TABLE at p: ext 32 (length patched by closetab), the
** array header for k and the map header for m.
*/
static void settab(uint8_t *p, lua_Unsigned k, lua_Unsigned m) {
  p[0] = 0xc9;
  p[5] = PLUSH_EXT_TABLE;
  sethead(p + 6, k, 0x90);
  sethead(p + 6 + headlen(k), m, 0x80);
}

/*
** Ends the ext TABLE that starts at at: its length patched, the header
** shrunk to ext 8 or 16 when the payload is short enough.
*/
static int closetab(ctx *c, size_t at) {
  size_t d = c->b->len - at - 6, n = d + segsafter(c->b, at);
  uint8_t *p = (uint8_t *)c->b->data + at;
  if (n > 0xffffffff) return codec_refuse(c, "table over 4 GiB");
  if (n <= 0xffff) {                     /* ext 8 or 16: 2 or 1 bytes less */
    size_t w = n <= 0xff ? 1 : 2;
    memmove(p + 2 + w, p + 6, d);
    shiftsegs(c->b, at, -(ptrdiff_t)(4 - w));
    p[0] = (uint8_t)(0xc7 + w - 1);
    store(p + 1, n, (int)w);
    p[1 + w] = PLUSH_EXT_TABLE;
    c->b->len -= 4 - w;
  } else {
    store(p + 1, n, 4);
  }
  return 0;
}

/*
** A table whose keys 1..n sit in its array part (codec_slots), every value
** there a number, written straight from the slots: no Lua API call per
** item. With no other key (lua_next finds nothing after n: n is in the
** array part, so the walk from it covers the rest), an array; with others
** but no positive integer among them ({n = n, ...}: table.pack, a map's
** results), ext TABLE of n items and those pairs, in walk order. The same
** bytes as putrun and putrest write. 1 (nothing written) for any other
** table, also when putslots meets a slot that is not a number (what it
** wrote is dropped: the API paths write the table). Nothing between the look at the slots and their last write
** allocates in Lua, so no collector step (no finalizer) can change the
** table meanwhile.
*/
static int putnums(ctx *c, int idx, lua_Unsigned n) {
  lua_State *L = c->L;
  const codec_slot *a = codec_slots(L, idx, n);
  lua_Unsigned m = 0;
  size_t at = c->b->len;
  uint8_t *p;
  int rc;
  lua_Unsigned k;
  if (!a || n == 0 || n > 0xffffffff || !isnum(a[0].tt) || !isnum(a[n - 1].tt)) return 1;
  lua_pushinteger(L, (lua_Integer)n);
  for (; lua_next(L, idx); m++) {
    lua_pop(L, 1);
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
      lua_pop(L, 1);
      return 1;
    }
  }
  if (!(p = room(c, 16))) return codec_nomem(c);
  if (m == 0) {
    sethead(p, n, 0x90);
    c->b->len += headlen(n);
    k = putslots(c, a, n);
    if (k == SLOTS_NOMEM) return PLUSH_ENOMEM;
    if (k < n) c->b->len = at;  /* something else in the array: the API paths */
    return k < n;
  }
  if (m > 0xffffffff) return codec_refuse(c, "2^32 or more elements");
  settab(p, n, m);
  c->b->len += 6 + headlen(n) + headlen(m);
  if ((k = putslots(c, a, n)) == SLOTS_NOMEM) return PLUSH_ENOMEM;
  if (k < n) {
    c->b->len = at;
    return 1;
  }
  lua_pushinteger(L, (lua_Integer)n);
  lua_next(L, idx);
  lua_pop(L, 1);
  return (rc = putpairs(c, idx, 1)) ? rc : closetab(c, at);
}

/*
** The ext TABLE form of a table whose positive integer keys are 1..k with
** holes (cnt keys in all, pos of them positive integers), after putrun
** wrote items 1..i-1 behind an array header of h0 bytes at at: those
** items move behind the ext header and the array and map headers, the
** other items follow by key, then the other keys, from the key at the top
** on (the walk met keys 1..i-1 before it). The ext length is patched at
** the end, and the header shrunk to ext 8 or 16 when the payload is short.
*/
static int putmixed(ctx *c, int idx, size_t at, size_t h0, lua_Integer i,
                    lua_Unsigned k, lua_Unsigned cnt, lua_Unsigned pos) {
  lua_Unsigned m = cnt - pos;
  size_t h1 = 6 + headlen(k) + headlen(m);
  uint8_t *p;
  int rc;
  if (k > 0xffffffff || m > 0xffffffff) return codec_refuse(c, "2^32 or more elements");
  if (!room(c, h1 - h0)) return codec_nomem(c);
  p = (uint8_t *)c->b->data + at;
  memmove(p + h1, p + h0, c->b->len - at - h0);
  shiftsegs(c->b, at, (ptrdiff_t)(h1 - h0));
  settab(p, k, m);
  c->b->len += h1 - h0;
  if ((rc = putitems(c, idx, i, (lua_Integer)k)) || (rc = putpairs(c, idx, 1)))
    return rc;
  return closetab(c, at);
}

/*
** The rest of a table after putrun stopped at a key (at the top, its
** value popped), items 1..i-1 written after an array header for n at at.
** One pass from that key counts the keys left. All of them in i..n, as
** many as that: the table is a sequence after all, its items follow.
** Else its positive integer keys decide: when they fill at least half of
** 1..k (k the largest) it goes as ext TABLE, else as a map, written again
** from the start (what putrun wrote was scalars only).
*/
static int putrest(ctx *c, int idx, size_t at, lua_Unsigned n, lua_Integer i) {
  lua_State *L = c->L;
  lua_Unsigned rest = 0, inseq = 0, pos = (lua_Unsigned)i - 1, k = pos;
  int rc;
  lua_pushvalue(L, -1);
  for (;;) {
    lua_Integer key = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
    rest++;
    if (key >= i && (lua_Unsigned)key <= n) inseq++;
    if (key >= 1) {
      pos++;
      if ((lua_Unsigned)key > k) k = (lua_Unsigned)key;
    }
    if (!lua_next(L, idx)) break;
    lua_pop(L, 1);
  }
  if (inseq == rest && rest == n + 1 - (lua_Unsigned)i) {
    lua_pop(L, 1);
    return putitems(c, idx, i, (lua_Integer)n);
  }
  if (pos > 0 && k - pos <= pos)
    return putmixed(c, idx, at, n > 0 ? headlen(n) : 0, i, k, rest + (lua_Unsigned)i - 1, pos);
  c->b->len = at;
  cutsegs(c->b, at);
  lua_pop(L, 1);
  lua_pushnil(L);
  if ((rc = puthead(c, rest + (lua_Unsigned)i - 1, 0x80, 15, 0))) return rc;
  return lua_next(L, idx) ? (lua_pop(L, 1), putpairs(c, idx, 0)) : 0;
}

/*
** Library tables and _G go by name. Otherwise: a pure sequence (keys
** 1..#t) as an array, a table with an array part and more (holes, other
** keys: {n = 2, "a", "b"}) as ext TABLE, anything else as a map. putrun
** writes the common case in one pass; putrest decides the others.
*/
static int puttab(ctx *c, int idx) {
  lua_State *L = c->L;
  lua_Unsigned n = lua_rawlen(L, idx);
  lua_Integer i = 1;
  size_t at;
  int rc, t;
  lua_pushvalue(L, idx);
  if ((t = lua_rawget(L, c->names)) != LUA_TNIL) {
    rc = t == LUA_TSTRING ? putname(c, -1, PLUSH_EXT_MODULE) : putglobals(c);
    lua_pop(L, 1);
    return rc;
  }
  lua_pop(L, 1);
  if ((rc = mark(c, idx))) return rc < 0 ? rc : 0;
  if ((rc = codec_enter(c))) return rc;
  at = c->b->len;
  if (n > 0 && (rc = putnums(c, idx, n)) <= 0) {
    if (rc) return rc;
    c->depth--;
    return 0;
  }
  if (n > 0 && (rc = puthead(c, n, 0x90, 15, 0))) return rc;
  if ((rc = putrun(c, idx, (lua_Integer)n, &i)) < 0) return rc;
  if (rc == 0) {            /* the walk ended: keys 1..n in order, or none */
    if (n == 0 && (rc = put1(c, 0x80))) return rc;
  } else {
    lua_pop(L, 1);
    if ((rc = putrest(c, idx, at, n, i))) return rc;
  }
  c->depth--;
  return 0;
}

/* ---- slices ------------------------------------------------------ */

typedef struct slice {
  lua_Integer i, j;
  int packed;
} slice;

static const char slicemt[] = "plush.slice";

void plush_push_slice(lua_State *L, int idx, lua_Integer i, lua_Integer j,
                      int packed) {
  slice *s;
  idx = lua_absindex(L, idx);
  s = lua_newuserdatauv(L, sizeof *s, 1);
  s->i = i;
  s->j = j;
  s->packed = packed;
  lua_pushvalue(L, idx);
  lua_setiuservalue(L, -2, 1);
  luaL_newmetatable(L, slicemt);
  lua_setmetatable(L, -2);
}

/*
** A slice as the table it stands for: a ref number and a level, as that
** table takes on the receiver, an array (packed: ext TABLE with the pair
** n = count after the items, or the map {n = 0}), the items by key -- no
** walk of the table, as the keys are known.
*/
static int putslice(ctx *c, int idx, const slice *sl) {
  lua_State *L = c->L;
  lua_Unsigned n = sl->j < sl->i ? 0 : (lua_Unsigned)sl->j - (lua_Unsigned)sl->i + 1;
  size_t at;
  seg *s;
  int rc, tab, t;
  if ((rc = mark(c, idx))) return rc < 0 ? rc : 0;
  if ((rc = codec_enter(c))) return rc;
  if (n > 0xffffffff) return codec_refuse(c, "2^32 or more elements");
  at = c->b->len;
  if (!sl->packed) {
    if ((rc = puthead(c, n, 0x90, 15, 0))) return rc;
  } else if (n > 0) {
    if (!room(c, 16)) return codec_nomem(c);
    settab((uint8_t *)c->b->data + at, n, 1);
    c->b->len += 6 + headlen(n) + 1;
  } else if ((rc = put1(c, 0x81))) {
    return rc;
  }
  lua_getiuservalue(L, idx, 1);
  tab = lua_gettop(L);
  s = &c->path[c->depth];
  s->kind = SEG_INT;
  if (!lua_checkstack(L, 40)) return codec_fail(c, PLUSH_ENOMEM, "Lua stack overflow");
  s->i = 1;
  if (n > 0 && sl->i >= 1) {        /* numbers in the array part: no API calls */
    const codec_slot *a = codec_slots(L, tab, (lua_Unsigned)sl->j);
    lua_Unsigned k = a ? putslots(c, a + sl->i - 1, n) : 0;
    if (k == SLOTS_NOMEM) return PLUSH_ENOMEM;
    s->i = (lua_Integer)k + 1;        /* the rest, from a non-number on: by API */
  }
  for (; (lua_Unsigned)s->i <= n; s->i++) {
    t = lua_rawgeti(L, tab, sl->i + s->i - 1);
    if ((rc = isscalar(t) ? putscalar(c, -1, t) : put(c, lua_gettop(L)))) return rc;
    if (s->i % 32 == 0) lua_settop(L, tab);  /* items popped 32 at a time */
  }
  lua_settop(L, tab - 1);
  if (sl->packed) {
    if ((rc = puthead(c, 1, 0xa0, 31, 0xd9)) || (rc = put1(c, 'n')) ||
        (rc = putint(c, (lua_Integer)n)))
      return rc;
    if (n > 0 && (rc = closetab(c, at))) return rc;
  }
  c->depth--;
  return 0;
}

/*
** Upvalue i of the Lua function at idx (ref number fref). An upvalue met
** before in this value (another closure over the same variable: same
** lua_upvalueid) is written as UPVALUE, the function and index where it
** was first met, so the receiver joins the two (lua_upvaluejoin) and the
** closures keep sharing it. Else the upvalue is recorded in the ref table
** (a light userdata key, so no clash with the objects there) and its
** value written: an upvalue named _ENV as GLOBALS whatever it holds (the
** function binds to the receiver's globals: a client's sandbox or test
** runner environment does not travel), any other by value.
*/
static int putupv(ctx *c, int idx, lua_Integer fref, int i) {
  lua_State *L = c->L;
  const char *nm;
  int rc;
  const void *u = lua_upvalueid(L, idx, i);
  lua_Integer at;
  if (codec_seen(c, u, &at)) {
    uint8_t *p = room(c, 8);
    if (!p) return codec_nomem(c);
    p[0] = 0xc7, p[1] = 5, p[2] = PLUSH_EXT_UPVALUE;
    store(p + 3, (uint64_t)(at >> 8), 4);
    p[7] = (uint8_t)(at & 0xff);
    c->b->len += 8;
    return 0;
  }
  codec_remember(c, u, fref << 8 | i);
  nm = lua_getupvalue(L, idx, i);
  rc = strcmp(nm, "_ENV") ? put(c, lua_gettop(L)) : putglobals(c);
  lua_pop(L, 1);
  return rc;
}

/*
** C functions go by name. A Lua function is ext 32 (length patched at the
** end) holding a bin 32 of lua_dump output (length patched after the dump)
** and the array of its upvalues, so nothing is staged in a temp buffer.
*/
static int putfn(ctx *c, int idx) {
  lua_State *L = c->L;
  lua_Debug ar;
  size_t at = c->b->len, n;
  lua_Integer fref;
  int rc, i;
  if (lua_iscfunction(L, idx)) {
    lua_pushvalue(L, idx);
    if (lua_rawget(L, c->names) != LUA_TSTRING) return codec_refuse(c, "C function");
    rc = putname(c, -1, PLUSH_EXT_CFUNC);
    lua_pop(L, 1);
    return rc;
  }
  if ((rc = mark(c, idx))) return rc < 0 ? rc : 0;
  fref = c->nref - 1;
  if ((rc = codec_enter(c))) return rc;
  if (!room(c, 11)) return codec_nomem(c);
  c->b->data[at] = (char)0xc9;
  c->b->data[at + 5] = PLUSH_EXT_FUNCTION;
  c->b->data[at + 6] = (char)0xc6;
  c->b->len += 11;
  if ((rc = codec_putdump(c, idx))) return rc;
  if ((n = c->b->len - at - 11) > 0xffffffff) return codec_refuse(c, "function over 4 GiB");
  store((uint8_t *)c->b->data + at + 7, n, 4);
  lua_pushvalue(L, idx);
  lua_getinfo(L, ">u", &ar);
  if ((rc = puthead(c, ar.nups, 0x90, 15, 0))) return rc;
  c->path[c->depth].kind = SEG_UPV;
  c->path[c->depth].idx = idx;
  for (i = 1; i <= ar.nups; i++) {
    c->path[c->depth].i = i;
    if ((rc = putupv(c, idx, fref, i))) return rc;
  }
  if ((n = c->b->len - at - 6 + segsafter(c->b, at)) > 0xffffffff)
    return codec_refuse(c, "function over 4 GiB");
  store((uint8_t *)c->b->data + at + 1, n, 4);
  c->depth--;
  return 0;
}

/* ---- arrays ------------------------------------------------------ */

/*
** A plush.array: a ref number (as a table takes), then ext ARRAY -- the
** smallest ext header for 1 + n * width bytes, the element type byte and
** the elements little-endian: one memcpy on a little-endian host.
*/
static int putarray(ctx *c, int idx, const plush_array *a) {
  size_t w = plush_array_width(a->type), n = a->n * w, h;
  uint8_t *p;
  int rc;
  if ((rc = mark(c, idx))) return rc < 0 ? rc : 0;
  if (n >= 0xffffffff) return codec_refuse(c, "array over 4 GiB");
  h = n + 1 <= 0xff ? 2 : n + 1 <= 0xffff ? 3 : 5;
  if (!(p = room(c, h + 2 + n))) return codec_nomem(c);
  p[0] = (uint8_t)(h == 2 ? 0xc7 : h == 3 ? 0xc8 : 0xc9);
  store(p + 1, n + 1, (int)h - 1);
  p[h] = PLUSH_EXT_ARRAY;
  p[h + 1] = (uint8_t)a->type;
  p += h + 2;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  if (n) memcpy(p, a->data, n);
#else
  for (size_t i = 0; i < n; i += w)
    for (size_t j = 0; j < w; j++) p[i + j] = (uint8_t)a->data[i + w - 1 - j];
#endif
  c->b->len += h + 2 + n;
  return 0;
}

static int put(ctx *c, int idx) {
  int t = lua_type(c->L, idx);
  switch (t) {
    case LUA_TTABLE: return puttab(c, idx);
    case LUA_TFUNCTION: return putfn(c, idx);
    case LUA_TTHREAD: return codec_refuse(c, "thread");
    case LUA_TUSERDATA: {
      const slice *sl = luaL_testudata(c->L, idx, slicemt);
      const plush_array *a;
      if (sl) return putslice(c, idx, sl);
      a = plush_array_test(c->L, idx);
      return a ? putarray(c, idx, a) : codec_refuse(c, "userdata");
    }
    case LUA_TLIGHTUSERDATA: return codec_refuse(c, "userdata");
    default: return putscalar(c, idx, t);
  }
}

/* put, for the writer of an apply request (codec_apply.c). */
int codec_put(ctx *c, int idx) { return put(c, idx); }

static int encbody(lua_State *L) {
  ctx *c = lua_touserdata(L, 1);
  lua_pushnil(L); /* the ref table, when more than CODEC_SEEN are met */
  c->refs = 3;
  codec_loadnames(L);
  lua_rawgeti(L, -1, 1);
  c->names = 5;
  lua_pushnil(L); /* the dump cache, looked up at the first function */
  c->dumps = -6;
  c->rc = put(c, 2);
  return 0;
}

/*
** Scalars cannot raise, so they skip the pcall; tables, functions and
** slices run under it (arguments: the ctx, a copy of the value).
*/
int plush_encode(lua_State *L, int idx, plush_buf *out, const char *root,
                 char *err, size_t errlen) {
  ctx c;
  size_t len0 = out->len;
  int top = lua_gettop(L), t, st = LUA_OK, segs0 = out->nsegs;
  codec_init(&c, L, root, err, errlen);
  c.b = out;
  idx = lua_absindex(L, idx);
  t = lua_type(L, idx);
  if (t != LUA_TTABLE && t != LUA_TFUNCTION && t != LUA_TUSERDATA) c.rc = put(&c, idx);
  else if (!lua_checkstack(L, 4)) c.rc = codec_fail(&c, PLUSH_ENOMEM, "Lua stack overflow");
  else {
    lua_pushcfunction(L, encbody);
    lua_pushlightuserdata(L, &c);
    lua_pushvalue(L, idx);
    st = lua_pcall(L, 2, 0, 0);
  }
  return codec_encoded(&c, st, top, out, len0, segs0);
}

int codec_encoded(ctx *c, int st, int top, plush_buf *out, size_t len0,
                  int segs0) {
  if (st != LUA_OK) {
    const char *m = lua_tostring(c->L, -1);
    c->rc = codec_fail(c, st == LUA_ERRMEM ? PLUSH_ENOMEM : PLUSH_EUNSER,
                       "cannot serialise %s: %s", c->root, m ? m : "error");
  }
  lua_settop(c->L, top);
  if (c->rc) {
    out->len = len0;
    plush_buf_dropsegs(out, segs0);
  }
  return c->rc;
}

