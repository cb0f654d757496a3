/*
** codec_dec.c — MessagePack bytes -> Lua values (format: codec.h), the
** counterpart of codec_enc.c, as Lua's lundump.c of ldump.c.
** Over 600 lines: one recursive walk (get) whose parts -- arrays and
** their number loop, maps, the ext payloads, functions, a map reply read
** in place -- share its readers. The scans of encoded bytes that make no
** value (the bytecode check, whether a reference may come) are
** codec_scan.c.
*/
#include <lauxlib.h>
#include <string.h>

#include "array.h"
#include "codec_int.h"
#include "frame.h"
#include "lua_mem.h"

/* ---- decode ------------------------------------------------------ */

static const uint8_t *take(ctx *c, size_t n) {
  const uint8_t *p = c->p;
  if ((size_t)(c->end - p) < n) return NULL;
  c->p += n;
  return p;
}

/* Reads an n-byte big-endian number. */
static int getnum(ctx *c, int n, uint64_t *v) {
  const uint8_t *p = take(c, (size_t)n);
  *v = 0;
  if (!p) return codec_eof(c);
  for (; n > 0; n--) *v = *v << 8 | *p++;
  return 0;
}

/* Records the object at the top as the next ref (0-based on the wire). */
static void addref(ctx *c) {
  ++c->nref;
  if (!c->refs) return; /* no reference can come: decbody */
  lua_pushvalue(c->L, -1);
  lua_rawseti(c->L, c->refs, c->nref);
}

static int get(ctx *c);

/* 8-, 2- and 4-byte big-endian numbers at p (one load and a swap). */
static inline uint64_t load64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

static inline uint16_t be16(const uint8_t *p) {
  return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t be32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}

/*
** A number item at p (left bytes there) into *o: a fixint, an int or uint
** of 8 to 64 bits (not a uint 64 over INT64_MAX) or a float 32 or 64.
** Its length, or 0 for any other item or one cut short. The one reader of
** fillarr's loop and of intoitems.
*/
static inline size_t numat(const uint8_t *p, size_t left, codec_slot *o) {
  uint8_t b = left ? *p : 0xc1;
  size_t k;
  if (b <= 0x7f || b >= 0xe0) {
    o->v.i = (int8_t)b, o->tt = CODEC_TINT;
    return 1;
  }
  switch (b) {                     /* a width, then whether it is there */
    case 0xcc: if (left < 2) return 0; o->v.i = p[1]; k = 2; break;
    case 0xcd: if (left < 3) return 0; o->v.i = be16(p + 1); k = 3; break;
    case 0xce: if (left < 5) return 0; o->v.i = be32(p + 1); k = 5; break;
    case 0xcf:
      if (left < 9 || p[1] >= 0x80) return 0;
      o->v.i = (lua_Integer)load64(p + 1); k = 9; break;
    case 0xd0: if (left < 2) return 0; o->v.i = (int8_t)p[1]; k = 2; break;
    case 0xd1: if (left < 3) return 0; o->v.i = (int16_t)be16(p + 1); k = 3; break;
    case 0xd2: if (left < 5) return 0; o->v.i = (int32_t)be32(p + 1); k = 5; break;
    case 0xd3: if (left < 9) return 0; o->v.i = (lua_Integer)load64(p + 1); k = 9; break;
    case 0xca: {
      uint32_t u;
      float f;
      if (left < 5) return 0;
      u = be32(p + 1);
      memcpy(&f, &u, 4);
      o->v.n = (lua_Number)f, o->tt = CODEC_TFLT;
      return 5;
    }
    case 0xcb: {
      uint64_t u;
      double x;
      if (left < 9) return 0;
      u = load64(p + 1);
      memcpy(&x, &u, 8);
      o->v.n = (lua_Number)x, o->tt = CODEC_TFLT;
      return 9;
    }
    default: return 0;
  }
  o->tt = CODEC_TINT;
  return k;
}

/*
** Items i..n into slots a[i-1..n) while at least 9 bytes are left (so no
** length check per item): the widths a run of numbers mostly has, by
** tests in the order of their likelihood, not the jump table of numat.
** Stops at any other op byte (numat and get take it from there);
** returns the index of the first item not read, *pp moved past the rest.
*/
static lua_Integer fastnums(const uint8_t **pp, const uint8_t *end,
                            codec_slot *a, lua_Integer i, lua_Integer n) {
  const uint8_t *p = *pp, *stop = end - 9;
  codec_slot *o = a + i - 1, *e = a + n;
  for (; o < e && p <= stop; o++) {
    uint8_t b = *p;
    /* the slots 2 KiB on, asked for now: a long array part is out of
    ** cache (16 MB for 10^6 items); a decode took ~10% less */
    __builtin_prefetch((const void *)((uintptr_t)o + 2048), 1);
    if (b <= 0x7f) {
      o->v.i = b, p += 1;
    } else if (b == 0xce) {
      o->v.i = be32(p + 1), p += 5;
    } else if (b == 0xcb) {
      uint64_t u = load64(p + 1);
      memcpy(&o->v.n, &u, 8);
      o->tt = CODEC_TFLT;
      p += 9;
      continue;
    } else if (b == 0xcd) {
      o->v.i = be16(p + 1), p += 3;
    } else if (b == 0xcc) {
      o->v.i = p[1], p += 2;
    } else if (b >= 0xe0) {
      o->v.i = (int8_t)b, p += 1;
    } else {
      break;
    }
    o->tt = CODEC_TINT;
  }
  *pp = p;
  return (lua_Integer)(o - a) + 1;
}

/*
** Items 1..n into the table at t. Numbers, what big arrays are made of,
** are read here without a call to get (numat; anything else, or an item
** cut short, goes to get, which words the error). The table was made with room for
** n in its array part: a number goes straight into its slot
** (codec_slots; a number needs no GC barrier), anything else through
** lua_rawseti, after which the slots are looked up again.
*/
static int fillarr(ctx *c, int t, uint64_t n) {
  lua_State *L = c->L;
  seg *s = &c->path[c->depth];
  codec_slot *a = n ? codec_slots(L, t, (lua_Unsigned)n) : NULL;
  const uint8_t *p = c->p, *end = c->end;  /* in registers: the stores into
                                              a's tag bytes may alias c */
  lua_Integer i;
  int rc;
  s->kind = SEG_INT;
  for (i = 1; (uint64_t)i <= n; i++) {
    codec_slot x, *o;
    if (a && end - p >= 9) {            /* the common widths, unchecked */
      i = fastnums(&p, end, a, i, (lua_Integer)n);
      if ((uint64_t)i > n) break;
    }
    o = a ? &a[i - 1] : &x;             /* numat writes only a number */
    size_t k = numat(p, (size_t)(end - p), o);
    if (k == 0) {                    /* anything else, or cut short */
      s->i = i;
      c->p = p;
      if ((rc = get(c))) return rc;
      p = c->p;
      lua_rawseti(L, t, i);
      a = codec_slots(L, t, (lua_Unsigned)n);
      continue;
    }
    p += k;
    if (!a) {
      if (x.tt == CODEC_TINT) lua_pushinteger(L, x.v.i);
      else lua_pushnumber(L, x.v.n);
      lua_rawseti(L, t, i);
    }
  }
  c->p = p;
  return 0;
}

/* n key/value pairs into the table at t. */
static int fillmap(ctx *c, int t, uint64_t n) {
  lua_State *L = c->L;
  seg *s = &c->path[c->depth];
  int rc;
  for (; n > 0; n--) {
    s->kind = SEG_MKEY;
    if ((rc = get(c))) return rc;
    if (lua_isnil(L, -1) ||
        (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1)))
      return codec_fail(c, PLUSH_ECORRUPT, "table key is %s", lua_isnil(L, -1) ? "nil" : "NaN");
    s->kind = SEG_KEY, s->idx = lua_gettop(L);
    if ((rc = get(c))) return rc;
    lua_rawset(L, t);
  }
  return 0;
}

/* A new table of narr + nrec slots, registered as the next ref. */
static int newtab(ctx *c, uint64_t narr, uint64_t nrec) {
  int rc;
  if ((rc = codec_enter(c))) return rc;
  lua_createtable(c->L, narr < 0x7fffffff ? (int)narr : 0,
                  nrec < 0x7fffffff ? (int)nrec : 0);
  addref(c);
  return 0;
}

static int getarr(ctx *c, uint64_t n) {
  int rc;
  if (n > (uint64_t)(c->end - c->p)) return codec_eof(c);
  if ((rc = newtab(c, n, 0)) || (rc = fillarr(c, lua_gettop(c->L), n))) return rc;
  c->depth--;
  return 0;
}

static int getmap(ctx *c, uint64_t n) {
  int rc;
  if (n > (uint64_t)(c->end - c->p) / 2) return codec_eof(c);
  if ((rc = newtab(c, 0, n)) || (rc = fillmap(c, lua_gettop(c->L), n))) return rc;
  c->depth--;
  return 0;
}

/* An array (fix 0x90) or map (0x80) header: its count in *n. */
static int gethead(ctx *c, uint8_t fix, uint64_t *n) {
  const uint8_t *q = take(c, 1);
  if (!q) return codec_eof(c);
  if ((*q & 0xf0) == fix) {
    *n = *q & 0x0f;
    return 0;
  }
  if (*q == (fix == 0x90 ? 0xdc : 0xde)) return getnum(c, 2, n);
  if (*q == (fix == 0x90 ? 0xdd : 0xdf)) return getnum(c, 4, n);
  return codec_fail(c, PLUSH_ECORRUPT, "table payload without %s header",
              fix == 0x90 ? "an array" : "a map");
}

/*
** TABLE payload (input already limited to it): the array and map headers
** first, so that the table is made with room for both -- the items land
** in its array part, and adding the other keys never rehashes it.
*/
static int gettab(ctx *c) {
  uint64_t k, m;
  int rc, t;
  if ((rc = gethead(c, 0x90, &k)) || (rc = gethead(c, 0x80, &m))) return rc;
  if (k > (uint64_t)(c->end - c->p) || m > ((uint64_t)(c->end - c->p) - k) / 2)
    return codec_eof(c);
  if ((rc = newtab(c, k, m))) return rc;
  t = lua_gettop(c->L);
  if ((rc = fillarr(c, t, k)) || (rc = fillmap(c, t, m))) return rc;
  c->depth--;
  return 0;
}

typedef struct rdr { const char *p; size_t n; } rdr;

static const char *reader(lua_State *L, void *ud, size_t *sz) {
  rdr *r = ud;
  (void)L;
  *sz = r->n;
  r->n = 0;
  return *sz ? r->p : NULL;
}

/*
** UPVALUE (c7 05 07, a 4-byte function ref and a 1-byte upvalue index) in
** place of upvalue i of the function at f: the two closures share that
** upvalue from now on, whatever either is given later. The ref must name
** a Lua function decoded before (or f itself) and the index one of its
** upvalues: lua_upvaluejoin checks neither.
*/
static int joinupv(ctx *c, int f, int i) {
  lua_State *L = c->L;
  uint64_t r;
  int n;
  if (c->p[1] != 5) return codec_fail(c, PLUSH_ECORRUPT, "upvalue reference of %d bytes", c->p[1]);
  if (c->end - c->p < 8) return codec_eof(c);
  c->p += 3;
  getnum(c, 4, &r);
  n = *c->p++;
  if (r >= (uint64_t)c->nref || !c->refs)
    return codec_fail(c, PLUSH_ECORRUPT, "upvalue reference to object %llu of %lld",
                (unsigned long long)r, (long long)c->nref);
  lua_rawgeti(L, c->refs, (lua_Integer)r + 1);
  if (!lua_isfunction(L, -1) || lua_iscfunction(L, -1) || n < 1 ||
      lua_getupvalue(L, -1, n) == NULL)
    return codec_fail(c, PLUSH_ECORRUPT, "upvalue reference to no upvalue (%d of object %llu)",
                n, (unsigned long long)r);
  lua_pop(L, 1);
  lua_upvaluejoin(L, f, i, lua_gettop(L), n);
  lua_pop(L, 1);
  return 0;
}

/*
** FUNCTION payload (input already limited to it): bytecode, loaded as
** binary only, registered as a ref before its upvalues are decoded so a
** function can be its own upvalue; then exactly nups upvalues. One named
** _ENV must be the global table (GLOBALS) or joined to another upvalue:
** the encoder writes nothing else there, so what decodes re-encodes to
** the same value (an _ENV of 118 would come back as the globals).
*/
static int getfn(ctx *c) {
  lua_State *L = c->L;
  lua_Debug ar;
  const uint8_t *q;
  uint64_t n;
  rdr r;
  int rc, f, st, env;
  uint32_t i;
  if ((rc = codec_enter(c))) return rc;
  if (!(q = take(c, 1))) return codec_eof(c);
  if ((*q & 0xe0) == 0xa0) n = *q & 0x1f;
  else if (*q >= 0xc4 && *q <= 0xc6) { if ((rc = getnum(c, 1 << (*q - 0xc4), &n))) return rc; }
  else if (*q >= 0xd9 && *q <= 0xdb) { if ((rc = getnum(c, 1 << (*q - 0xd9), &n))) return rc; }
  else return codec_fail(c, PLUSH_ECORRUPT, "function without bytecode");
  if (!(q = take(c, n))) return codec_eof(c);
  if (codec_checkdump(q, n)) return codec_fail(c, PLUSH_ECORRUPT, "bad function bytecode");
  r.p = (const char *)q, r.n = n;
  if ((st = lua_load(L, reader, &r, "=(plush)", "b")) != LUA_OK)
    return codec_fail(c, st == LUA_ERRMEM ? PLUSH_ENOMEM : PLUSH_ECORRUPT,
                "bad function bytecode: %s", lua_tostring(L, -1));
  f = lua_gettop(L);
  addref(c);
  lua_pushvalue(L, f);
  lua_getinfo(L, ">u", &ar);
  if (!(q = take(c, 1))) return codec_eof(c);
  if ((*q & 0xf0) == 0x90) n = *q & 0x0f;
  else if (*q == 0xdc || *q == 0xdd) { if ((rc = getnum(c, *q == 0xdc ? 2 : 4, &n))) return rc; }
  else return codec_fail(c, PLUSH_ECORRUPT, "function without upvalue array");
  if (n != ar.nups)
    return codec_fail(c, PLUSH_ECORRUPT, "function has %d upvalues, got %llu",
                ar.nups, (unsigned long long)n);
  c->path[c->depth].kind = SEG_UPV;
  c->path[c->depth].idx = f;
  for (i = 1; i <= ar.nups; i++) {
    c->path[c->depth].i = i;
    if (c->end - c->p >= 3 && c->p[0] == 0xc7 && c->p[2] == PLUSH_EXT_UPVALUE) {
      if ((rc = joinupv(c, f, (int)i))) return rc;
      continue;
    }
    if ((rc = get(c))) return rc;
    env = strcmp(lua_getupvalue(L, f, (int)i), "_ENV") == 0;
    lua_pop(L, 1);
    if (env) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
      if (!lua_rawequal(L, -1, -2))
        return codec_fail(c, PLUSH_ECORRUPT, "function's _ENV is not the global table");
      lua_pop(L, 1);
    }
    lua_setupvalue(L, f, (int)i);
  }
  c->depth--;
  return 0;
}

/* Pushes map[which][name] (2: C functions, 3: library tables). */
static int lookup(ctx *c, const uint8_t *q, size_t n, int which) {
  lua_State *L = c->L;
  char t[64];
  size_t i;
  codec_loadnames(L);
  lua_rawgeti(L, -1, which);
  lua_pushlstring(L, (const char *)q, n);
  if (lua_rawget(L, -2) != LUA_TNIL) {
    lua_insert(L, -3);
    lua_pop(L, 2);
    return 0;
  }
  for (i = 0; i < n && i < sizeof t - 1; i++)
    t[i] = q[i] >= 32 && q[i] < 127 ? (char)q[i] : '?';
  t[i] = '\0';
  return codec_fail(c, PLUSH_ECORRUPT, "unknown %s '%s'",
              which == 2 ? "C function" : "module", t);
}

/* An ext payload of n bytes read by get, which must use all of them. */
static int within(ctx *c, size_t n, int (*get)(ctx *), const char *what) {
  const uint8_t *end = c->end;
  int rc;
  c->end = c->p + n;
  rc = get(c);
  if (rc == PLUSH_ETRUNC)
    rc = codec_fail(c, PLUSH_ECORRUPT, "%s payload overruns its length", what);
  else if (!rc && c->p != c->end)
    rc = codec_fail(c, PLUSH_ECORRUPT, "%s payload has extra bytes", what);
  c->end = end;
  return rc;
}

/* BIGSTR (codec.h), its n bytes known to be there: the string in its
** window, made from the frame's pages when it can be. */
static int getbig(ctx *c, size_t n) {
  const uint8_t *q;
  uint64_t pre;
  size_t len;
  if (n < 2 + PLUSH_BIGSTR_PAD)
    return codec_fail(c, PLUSH_ECORRUPT, "big string of %zu bytes", n);
  getnum(c, 2, &pre);
  if (pre > PLUSH_BIGSTR_PAD)
    return codec_fail(c, PLUSH_ECORRUPT, "big string padded by %u",
                      (unsigned)pre);
  len = n - 2 - PLUSH_BIGSTR_PAD;
  take(c, (size_t)pre);
  q = take(c, len);
  if (!c->block || !plush_lua_mem_pushmoved(c->L, c->block, (const char *)q, len))
    lua_pushlstring(c->L, (const char *)q, len);
  take(c, PLUSH_BIGSTR_PAD - (size_t)pre);
  return 0;
}

/*
** ARRAY payload of n bytes: the element type byte, then the elements,
** little-endian, a whole number of them. The array takes a ref number.
*/
static int getarray(ctx *c, size_t n) {
  const uint8_t *q = take(c, n);
  size_t w = n ? plush_array_width(q[0]) : 0;
  plush_array *a;
  if (!n) return codec_fail(c, PLUSH_ECORRUPT, "array payload without an element type");
  if (!w) return codec_fail(c, PLUSH_ECORRUPT, "array of unknown element type %d", q[0]);
  if ((n - 1) % w)
    return codec_fail(c, PLUSH_ECORRUPT, "array payload of %zu bytes is not a whole number of %s",
                      n - 1, plush_array_typename(q[0]));
  if (!lua_checkstack(c->L, 4)) return codec_fail(c, PLUSH_ENOMEM, "Lua stack overflow");
  a = plush_array_new(c->L, q[0], (n - 1) / w);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  if (n > 1) memcpy(a->data, q + 1, n - 1);
#else
  for (size_t i = 0; i < n - 1; i += w)
    for (size_t j = 0; j < w; j++) a->data[i + j] = (char)q[1 + i + w - 1 - j];
#endif
  if (c->refs) addref(c);
  return 0;
}

static int getext(ctx *c, size_t n) {
  lua_State *L = c->L;
  const uint8_t *q;
  uint64_t r;
  int type;
  if (!(q = take(c, 1))) return codec_eof(c);
  type = (int8_t)*q;
  if (n > (size_t)(c->end - c->p)) return codec_eof(c);
  switch (type) {
    case PLUSH_EXT_BACKREF:
      if (n != 4) return codec_fail(c, PLUSH_ECORRUPT, "back-reference of %zu bytes", n);
      getnum(c, 4, &r);
      if (r >= (uint64_t)c->nref || !c->refs)
        return codec_fail(c, PLUSH_ECORRUPT, "back-reference to object %llu of %lld",
                    (unsigned long long)r, (long long)c->nref);
      lua_rawgeti(L, c->refs, (lua_Integer)r + 1);
      return 0;
    case PLUSH_EXT_FUNCTION:
      return within(c, n, getfn, "function");
    case PLUSH_EXT_TABLE:
      return within(c, n, gettab, "table");
    case PLUSH_EXT_GLOBALS:
      q = take(c, n);
      if (n > 1 || (n == 1 && q[0])) return codec_fail(c, PLUSH_ECORRUPT, "bad globals marker");
      lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
      return 0;
    case PLUSH_EXT_ARRAY:
      return getarray(c, n);
    case PLUSH_EXT_UPVALUE:
      return codec_fail(c, PLUSH_ECORRUPT, "upvalue reference outside a function's upvalues");
    case PLUSH_EXT_BIGSTR:
      return getbig(c, n);
    case PLUSH_EXT_CFUNC:
    case PLUSH_EXT_MODULE:
      q = take(c, n);
      return lookup(c, q, n, type == PLUSH_EXT_CFUNC ? 2 : 3);
    default: return codec_fail(c, PLUSH_ECORRUPT, "unknown extension type %d", type);
  }
}

static int get(ctx *c) {
  lua_State *L = c->L;
  const uint8_t *q;
  uint64_t v;
  int rc, w;
  uint8_t b;
  if (c->p >= c->end) return codec_eof(c);
  b = *c->p++;
  if (b <= 0x7f || b >= 0xe0) {               /* positive, negative fixint */
    lua_pushinteger(L, (int8_t)b);
    return 0;
  }
  if (b <= 0x8f) return getmap(c, b & 0x0f);
  if (b <= 0x9f) return getarr(c, b & 0x0f);
  if (b <= 0xbf) { v = b & 0x1f; goto str; }
  switch (b) {
    case 0xc0: lua_pushnil(L); return 0;
    case 0xc2: case 0xc3: lua_pushboolean(L, b & 1); return 0;
    case 0xc4: case 0xc5: case 0xc6: w = 1 << (b - 0xc4); break;
    case 0xd9: case 0xda: case 0xdb: w = 1 << (b - 0xd9); break;
    case 0xc7: case 0xc8: case 0xc9:
      if ((rc = getnum(c, 1 << (b - 0xc7), &v))) return rc;
      return getext(c, v);
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
      return getext(c, (size_t)1 << (b - 0xd4));
    case 0xca: {
      float f;
      uint32_t u;
      if ((rc = getnum(c, 4, &v))) return rc;
      u = (uint32_t)v;
      memcpy(&f, &u, 4);
      lua_pushnumber(L, (lua_Number)f);
      return 0;
    }
    case 0xcb: {
      double d;
      if ((rc = getnum(c, 8, &v))) return rc;
      memcpy(&d, &v, 8);
      lua_pushnumber(L, (lua_Number)d);
      return 0;
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
      if ((rc = getnum(c, 1 << (b - 0xcc), &v))) return rc;
      if (v > INT64_MAX) return codec_fail(c, PLUSH_ECORRUPT, "integer out of range");
      lua_pushinteger(L, (lua_Integer)v);
      return 0;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3:
      w = 1 << (b - 0xd0);
      if ((rc = getnum(c, w, &v))) return rc;
      if (w < 8 && (v >> (8 * w - 1)) & 1) v |= ~(uint64_t)0 << (8 * w);
      lua_pushinteger(L, (lua_Integer)v);
      return 0;
    case 0xdc: case 0xdd: case 0xde: case 0xdf:
      if ((rc = getnum(c, b & 1 ? 4 : 2, &v))) return rc;
      return b < 0xde ? getarr(c, v) : getmap(c, v);
    default: return codec_fail(c, PLUSH_ECORRUPT, "invalid type byte 0x%02x", b);
  }
  if ((rc = getnum(c, w, &v))) return rc;
str:
  if (!(q = take(c, v))) return codec_eof(c);
  lua_pushlstring(L, (const char *)q, v);
  return 0;
}

static int decbody(lua_State *L) {
  ctx *c = lua_touserdata(L, 1);
  uint8_t b = c->p < c->end ? *c->p : 0;
  /* A container takes a ref table, unless no BACKREF or UPVALUE can come
  ** (codec_mayref): a small reply or request then makes no table for nothing,
  ** nor an entry in it per table and function. */
  if (((b >= 0x80 && b <= 0x9f) || (b >= 0xc7 && b <= 0xc9) ||
       (b >= 0xd4 && b <= 0xd8) || (b >= 0xdc && b <= 0xdf)) &&
      codec_mayref(c->p, c->end, 4096)) {
    lua_newtable(L);
    c->refs = 2;
  }
  c->rc = get(c);
  return c->rc ? 0 : 1;
}

static int decode(lua_State *L, const char *data, size_t len, size_t *used,
                  char *err, size_t errlen, void *block) {
  ctx c;
  int top = lua_gettop(L), st;
  codec_init(&c, L, "value", err, errlen);
  c.block = block;
  c.p = (const uint8_t *)(data ? data : "");
  c.end = c.p + (data ? len : 0);
  if (!lua_checkstack(L, 4)) return codec_fail(&c, PLUSH_ENOMEM, "Lua stack overflow");
  lua_pushcfunction(L, decbody);
  lua_pushlightuserdata(L, &c);
  if ((st = lua_pcall(L, 1, 1, 0)) != LUA_OK) {
    const char *m = lua_tostring(L, -1);
    c.rc = codec_fail(&c, st == LUA_ERRMEM ? PLUSH_ENOMEM : PLUSH_ECORRUPT, "%s",
                m ? m : "error while decoding");
  }
  if (c.rc) {
    if (block) plush_lua_mem_handoff_end(); /* a memory error in the middle */
    lua_settop(L, top);
    return c.rc;
  }
  if (used) *used = (size_t)(c.p - (const uint8_t *)(data ? data : ""));
  return 0;
}

int plush_decode(lua_State *L, const char *data, size_t len, size_t *used,
                 char *err, size_t errlen) {
  return decode(L, data, len, used, err, errlen, NULL);
}

int plush_decode_frame(lua_State *L, plush_frame *f, char *err,
                       size_t errlen) {
  return decode(L, plush_frame_payload(f), f->hdr.len, NULL, err, errlen, f);
}

/* ---- a map chunk's reply, in place ------------------------------- */

typedef struct into {
  ctx *c;
  int t;              /* the result table's index in intobody's frame */
  lua_Integer off, m; /* its slots off+1 .. off+m get the items */
} into;

/*
** m items, numbers or nil, read into the slots a[0..m) (codec_slots; a
** number needs no GC barrier, a nil is tag 0 as lua_rawseti writes it):
** 1, or 0 at any other item or one cut short (some slots written then).
*/
static int intoitems(ctx *c, codec_slot *a, lua_Integer m) {
  const uint8_t *p = c->p, *end = c->end;
  lua_Integer i;
  for (i = 0; i < m; i++) {
    size_t k;
    if (p < end && *p == 0xc0) { /* nil */
      p++;
      a[i].v.p = NULL, a[i].tt = 0;
      continue;
    }
    if ((k = numat(p, (size_t)(end - p), &a[i])) == 0) return 0;
    p += k;
  }
  c->p = p;
  return 1;
}

/* r's value: a packed TABLE of exactly m items, numbers or nil, then n = m,
** its items into w->t: 1, else 0. */
static int intor(into *w) {
  ctx *c = w->c;
  lua_State *L = c->L;
  const uint8_t *q, *end = c->end;
  uint64_t len, k, h;
  codec_slot *a;
  uint8_t b = c->p < end ? *c->p : 0;
  int ok;
  if (b < 0xc7 || b > 0xc9) return 0;
  c->p++;
  if (getnum(c, 1 << (b - 0xc7), &len) || !(q = take(c, 1)) ||
      (int8_t)*q != PLUSH_EXT_TABLE || len > (uint64_t)(end - c->p))
    return 0;
  c->end = c->p + len; /* within the payload */
  ok = !gethead(c, 0x90, &k) && k == (uint64_t)w->m && !gethead(c, 0x80, &h) &&
       h == 1 && (a = codec_slots(L, w->t, (lua_Unsigned)(w->off + w->m))) &&
       intoitems(c, a + w->off, w->m) && c->end - c->p >= 2 && c->p[0] == 0xa1 &&
       c->p[1] == 'n';
  if (ok) {
    c->p += 2;
    ok = !get(c) && lua_isinteger(L, -1) && lua_tointeger(L, -1) == w->m &&
         c->p == c->end;
    lua_pop(L, 1);
  }
  c->end = end;
  return ok;
}

/* The reply map: r by intor, the other keys strings with scalar values
** (no container: no reference can be needed); pushes it, or nothing. */
static int intobody(lua_State *L) {
  into *w = lua_touserdata(L, 1);
  ctx *c = w->c;
  uint64_t k;
  int rep, hasr = 0;
  seg *s;
  if (c->p >= c->end || (*c->p & 0xf0) != 0x80 || codec_enter(c)) return 0;
  k = *c->p++ & 0x0f;
  lua_createtable(L, 0, (int)k);
  rep = lua_gettop(L);
  s = &c->path[c->depth];
  for (; k > 0; k--) {
    uint8_t b;
    if (c->end - c->p >= 2 && c->p[0] == 0xa1 && c->p[1] == 'r' && !hasr) {
      c->p += 2;
      if (!intor(w)) return 0;
      lua_pushvalue(L, w->t);
      lua_setfield(L, rep, "r");
      hasr = 1;
      continue;
    }
    s->kind = SEG_MKEY;
    if (get(c) || lua_type(L, -1) != LUA_TSTRING || c->p >= c->end) return 0;
    b = *c->p;
    if ((b >= 0x80 && b <= 0x9f) || (b >= 0xc7 && b <= 0xc9) ||
        (b >= 0xd4 && b <= 0xd8) || (b >= 0xdc && b <= 0xdf))
      return 0;
    s->kind = SEG_KEY, s->idx = lua_gettop(L);
    if (get(c)) return 0;
    lua_rawset(L, rep);
  }
  return hasr && c->p == c->end ? 1 : 0;
}

int plush_decode_into(lua_State *L, const char *data, size_t len, int t,
                      lua_Integer off, lua_Integer m) {
  ctx c;
  into w;
  char err[64];
  int top = lua_gettop(L);
  t = lua_absindex(L, t);
  if (off < 0 || m < 0 || m > LUA_MAXINTEGER - off || !lua_checkstack(L, 8))
    return 0;
  codec_init(&c, L, "value", err, sizeof err);
  c.p = (const uint8_t *)(data ? data : "");
  c.end = c.p + (data ? len : 0);
  w.c = &c, w.t = 2, w.off = off, w.m = m; /* t: intobody's argument 2 */
  lua_pushcfunction(L, intobody);
  lua_pushlightuserdata(L, &w);
  lua_pushvalue(L, t);
  if (lua_pcall(L, 2, 1, 0) == LUA_OK && lua_istable(L, -1)) return 1;
  lua_settop(L, top);
  return 0;
}

/* ---- a reply's fields as values ------------------------------------ */

/*
** The map at data whose keys are all among keys[0..nkeys) (fixstr), and
** with no reference inside (codec_mayref): its values pushed in the order
** of keys (nil for a key it lacks): 1. Anything else: 0, nothing pushed.
** Not under a pcall: a memory error raises (the caller's conn:poll).
*/
int plush_decode_fields(lua_State *L, const char *data, size_t len,
                        const char *const *keys, int nkeys) {
  ctx c;
  char err[64];
  int top = lua_gettop(L), k, i;
  codec_init(&c, L, "value", err, sizeof err);
  c.p = (const uint8_t *)data;
  c.end = c.p + len;
  if (len == 0 || (*c.p & 0xf0) != 0x80 || !lua_checkstack(L, nkeys + 4) ||
      codec_mayref(c.p, c.end, 4096))
    return 0;
  k = *c.p++ & 0x0f;
  for (i = 0; i < nkeys; i++) lua_pushnil(L);
  c.nref = 1, c.depth = 1; /* inside the map (ref 0) */
  for (; k > 0; k--) {
    size_t n;
    if (c.p >= c.end || (*c.p & 0xe0) != 0xa0) break;
    n = *c.p++ & 0x1f;
    if ((size_t)(c.end - c.p) < n) break;
    for (i = 0; i < nkeys; i++)
      if (strlen(keys[i]) == n && !memcmp(keys[i], c.p, n)) break;
    if (i == nkeys) break;
    c.p += n;
    if (get(&c)) break;
    lua_replace(L, top + 1 + i);
  }
  if (k == 0 && c.p == c.end) return 1;
  lua_settop(L, top);
  return 0;
}
