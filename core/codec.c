/*
** codec.c — exact Lua values <-> MessagePack bytes (format: codec.h).
**
** Both directions are one recursive walk over a context (ctx) that holds
** the Lua state, the output buffer or the input bytes, two stack slots (the
** ref table, the name map) and the path of keys from the root to the value
** at hand, used only to word an error. The bodies run under lua_pcall so a
** memory error raised by Lua becomes PLUSH_ENOMEM instead of a longjmp
** through the caller. Choices the header leaves open:
**   - GLOBALS is written as ext 8 with length 0 (c7 00 04); the decoder
**     also takes fixext 1 with a 0 byte (d4 04 00).
**   - BACKREF is fixext 4; FUNCTION is ext 32 whose bytecode is a bin 32,
**     both lengths patched after lua_dump; CFUNC and MODULE names use the
**     smallest ext header. Short strings use fixstr (str family).
**   - MODULE, GLOBALS and CFUNC values take no ref number (nothing is
**     built for them); tables and Lua functions do.
**   - TABLE is written as ext 32 with its length patched at the end, then
**     shrunk to ext 8 or 16 when the payload is short enough (a memmove
**     of at most 64 KiB). Its array runs to the largest positive integer
**     key, so the choice depends on the keys alone, not on which border
**     #t finds.
**   - An upvalue named _ENV always travels as GLOBALS (spec); others by
**     value, so closures sharing one upvalue get separate copies.
**   - The name map (C functions, library tables) is built on first use
**     and cached in the registry: set up a state (replace print, require
**     modules) before it first encodes or decodes a function.
**   - Binary chunks are checked (checkdump) before lua_load so that counts
**     in them cannot make undump allocate beyond the input or recurse
**     deeply; the bytecode itself is not verified -- it comes from an
**     authenticated peer and runs with that peer's authority anyway.
*/
#include "codec.h"
#include "plush.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#if LUA_VERSION_NUM != 504
#error "codec.c reads the Lua 5.4 binary chunk format"
#endif

enum { SEG_KEY, SEG_INT, SEG_UPV, SEG_MKEY };
typedef struct seg {
  int kind;       /* KEY: key at stack idx; INT: [i]; UPV: upvalue i of the
                     function at idx; MKEY: inside a map key */
  int idx;
  lua_Integer i;
} seg;

typedef struct ctx {
  lua_State *L;
  plush_buf *b;            /* encode: output */
  const uint8_t *p, *end;  /* decode: input left */
  const char *root;
  char *err;
  size_t errlen;
  int refs, names;         /* stack slots of the ref and name tables */
  int rc, depth;
  lua_Integer nref;
  seg path[PLUSH_MAX_DEPTH + 2];  /* path[d]: how depth d reaches d+1 */
} ctx;

static const char cachekey = 'n';  /* registry key of the name map */

/* ---------------------------------------------------------------- errors */

typedef struct msg { char *s; size_t n, cap; } msg;

static void add(msg *m, const char *p, size_t n) {
  if (m->cap == 0) return;
  if (n > m->cap - 1 - m->n) n = m->cap - 1 - m->n;
  memcpy(m->s + m->n, p, n);
  m->s[m->n += n] = '\0';
}

static void adds(msg *m, const char *s) { add(m, s, strlen(s)); }

static int fail(ctx *c, int rc, const char *fmt, ...) {
  va_list ap;
  if (c->errlen) {
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

static int nomem(ctx *c) { return fail(c, PLUSH_ENOMEM, "out of memory"); }
static int eof(ctx *c) { return fail(c, PLUSH_ETRUNC, "truncated input"); }

/*
** A key renders as .name when it reads as a Lua identifier (keywords
** excluded), else in brackets: strings quoted %q-style on one line.
*/
static int isname(const char *s, size_t n) {
  static const char *const kw[] = {"and", "break", "do", "else", "elseif",
    "end", "false", "for", "function", "goto", "if", "in", "local", "nil",
    "not", "or", "repeat", "return", "then", "true", "until", "while", 0};
  size_t i;
  for (i = 0; i < n; i++) {
    char ch = s[i];
    if (!(ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (i > 0 && ch >= '0' && ch <= '9')))
      return 0;
  }
  for (i = 0; kw[i]; i++)
    if (strlen(kw[i]) == n && memcmp(kw[i], s, n) == 0) return 0;
  return n > 0;
}

static void addkey(msg *m, lua_State *L, int idx) {
  char t[64];
  size_t n, i;
  const char *s;
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
      s = lua_tolstring(L, idx, &n);
      if (isname(s, n)) { add(m, ".", 1); add(m, s, n); return; }
      add(m, "[\"", 2);
      for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') snprintf(t, sizeof t, "\\%c", ch);
        else if (ch == '\n') snprintf(t, sizeof t, "\\n");
        else if (ch < 32 || ch == 127) snprintf(t, sizeof t, "\\%03d", ch);
        else snprintf(t, sizeof t, "%c", ch);
        adds(m, t);
      }
      add(m, "\"]", 2);
      return;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx))
        snprintf(t, sizeof t, "[%lld]", (long long)lua_tointeger(L, idx));
      else snprintf(t, sizeof t, "[%.14g]", (double)lua_tonumber(L, idx));
      adds(m, t);
      return;
    case LUA_TBOOLEAN: adds(m, lua_toboolean(L, idx) ? "[true]" : "[false]");
      return;
    default: adds(m, "[?]");
  }
}

/* Writes root and the path down to depth upto (exclusive of deeper). */
static void addpath(ctx *c, msg *m, int upto) {
  char t[48];
  int d;
  adds(m, c->root);
  for (d = 1; d <= upto; d++) {
    seg *s = &c->path[d];
    if (s->kind == SEG_KEY) addkey(m, c->L, s->idx);
    else if (s->kind == SEG_MKEY) adds(m, "<key>");
    else if (s->kind == SEG_INT) {
      snprintf(t, sizeof t, "[%lld]", (long long)s->i);
      adds(m, t);
    } else {
      const char *nm = lua_getupvalue(c->L, s->idx, (int)s->i);
      adds(m, "<upvalue ");
      adds(m, nm ? nm : "?");
      adds(m, ">");
      if (nm) lua_pop(c->L, 1);
    }
  }
}

/* "cannot serialise t.handlers[3]: thread"; "t: key of type thread". */
static int refuse(ctx *c, const char *what) {
  msg m = {c->err, 0, c->errlen};
  int key = c->depth > 0 && c->path[c->depth].kind == SEG_MKEY;
  adds(&m, "cannot serialise ");
  addpath(c, &m, key ? c->depth - 1 : c->depth);
  adds(&m, key ? ": key of type " : ": ");
  adds(&m, what);
  return PLUSH_EUNSER;
}

/*
** Entering a table or function: counts the level (error past the limit,
** naming the path) and makes room on the Lua stack for the level's
** key, value and lookups.
*/
static int enter(ctx *c) {
  msg m = {c->err, 0, c->errlen};
  if (++c->depth > PLUSH_MAX_DEPTH) {
    char t[48];
    snprintf(t, sizeof t, "nesting deeper than %d at ", PLUSH_MAX_DEPTH);
    adds(&m, t);
    addpath(c, &m, c->depth - 1);
    return PLUSH_EDEPTH;
  }
  if (!lua_checkstack(c->L, 12)) return fail(c, PLUSH_ENOMEM, "Lua stack overflow");
  return 0;
}

/* -------------------------------------------------------------- name map */

/*
** Keeps the better of two names for one object: lower rank (0: field of
** _G, 1: of a standard library, 2: of another module), then shorter, then
** bytewise smaller -- so the choice never depends on traversal order, and
** a module aliasing math.sin does not rename it on the wire.
** Expects the name at the top (popped); o is the object.
*/
static void offer(lua_State *L, int byobj, int ranks, int o, int rank) {
  lua_pushvalue(L, o);
  if (lua_rawget(L, byobj) == LUA_TSTRING) {
    size_t an, bn;
    const char *a = lua_tolstring(L, -2, &an), *b = lua_tolstring(L, -1, &bn);
    int r;
    lua_pushvalue(L, o);
    lua_rawget(L, ranks);
    r = (int)lua_tointeger(L, -1);
    lua_pop(L, 2);
    if (rank != r ? rank > r : an != bn ? an > bn : memcmp(a, b, an) >= 0) {
      lua_pop(L, 1);
      return;
    }
  } else lua_pop(L, 1);
  lua_pushvalue(L, o);
  lua_insert(L, -2);
  lua_rawset(L, byobj);
  lua_pushvalue(L, o);
  lua_pushinteger(L, rank);
  lua_rawset(L, ranks);
}

static int isstd(const char *m) {
  static const char *const std[] = {"coroutine", "debug", "io", "math", "os",
    "package", "string", "table", "utf8", 0};
  int i;
  for (i = 0; std[i]; i++)
    if (strcmp(m, std[i]) == 0) return 1;
  return 0;
}

/* Names the C functions of module table m: "k" (pfx 0, for _G) or "M.k". */
static void scan(lua_State *L, int m, int pfx, int base, int rank) {
  lua_pushnil(L);
  while (lua_next(L, m)) {
    int v = lua_gettop(L);
    if (lua_type(L, v - 1) == LUA_TSTRING && lua_iscfunction(L, v)) {
      if (pfx) {
        lua_pushvalue(L, pfx);
        lua_pushliteral(L, ".");
        lua_pushvalue(L, v - 1);
        lua_concat(L, 3);
      } else lua_pushvalue(L, v - 1);
      lua_pushvalue(L, -1);
      if (lua_rawget(L, base + 3) == LUA_TNIL) {  /* fns[name] = f */
        lua_pushvalue(L, -2);
        lua_pushvalue(L, v);
        lua_rawset(L, base + 3);
      }
      lua_pop(L, 1);
      offer(L, base + 2, base + 5, v, rank);
    }
    lua_pop(L, 1);
  }
}

/*
** Pushes this state's name map {object -> name (global table -> true),
** C-function name -> function, module name -> table}, built from
** package.loaded (the registry's _LOADED) once and cached.
*/
static void loadnames(lua_State *L) {
  int base, loaded, g;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &cachekey) == LUA_TTABLE) return;
  lua_pop(L, 1);
  luaL_checkstack(L, 24, "codec name map");
  base = lua_gettop(L);
  lua_createtable(L, 3, 0);                  /* base+1: the map */
  lua_newtable(L);                           /* +2: object -> name */
  lua_newtable(L);                           /* +3: name -> C function */
  lua_newtable(L);                           /* +4: name -> library table */
  lua_newtable(L);                           /* +5: object -> rank */
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  loaded = base + 6;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  g = base + 7;
  if (lua_type(L, loaded) == LUA_TTABLE) {
    lua_pushliteral(L, "_G");
    if (lua_rawget(L, loaded) == LUA_TTABLE) scan(L, base + 8, 0, base, 0);
    lua_pop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, loaded)) {
      int v = lua_gettop(L);
      if (lua_type(L, v - 1) == LUA_TSTRING && lua_type(L, v) == LUA_TTABLE &&
          !lua_rawequal(L, v, g) && strcmp(lua_tostring(L, v - 1), "_G")) {
        lua_pushvalue(L, v - 1);
        if (lua_rawget(L, base + 4) == LUA_TNIL) {
          lua_pushvalue(L, v - 1);
          lua_pushvalue(L, v);
          lua_rawset(L, base + 4);
        }
        lua_pop(L, 1);
        int rank = isstd(lua_tostring(L, v - 1)) ? 1 : 2;
        lua_pushvalue(L, v - 1);
        offer(L, base + 2, base + 5, v, rank);
        scan(L, v, v - 1, base, rank);
      }
      lua_pop(L, 1);
    }
  }
  lua_pushvalue(L, g);
  lua_pushboolean(L, 1);
  lua_rawset(L, base + 2);                   /* byobj[_G] = true */
  lua_settop(L, base + 4);
  lua_rawseti(L, base + 1, 3);
  lua_rawseti(L, base + 1, 2);
  lua_rawseti(L, base + 1, 1);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &cachekey);
}

/* ---------------------------------------------------------------- encode */

static uint8_t *room(ctx *c, size_t n) {
  plush_buf *b = c->b;
  if (b->cap - b->len < n && plush_buf_reserve(b, n)) return NULL;
  return (uint8_t *)b->data + b->len;
}

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

static int put1(ctx *c, uint8_t x) {
  uint8_t *p = room(c, 1);
  if (!p) return nomem(c);
  *p = x;
  c->b->len++;
  return 0;
}

/* Op byte then an n-byte big-endian value. */
static int putop(ctx *c, uint8_t op, uint64_t v, int n) {
  uint8_t *p = room(c, 9);
  if (!p) return nomem(c);
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

/* str, array and map headers: fix form, then 8 (if op8), 16, 32 bits. */
static int puthead(ctx *c, size_t n, uint8_t fix, size_t fixmax, uint8_t op8) {
  uint8_t op16 = fix == 0xa0 ? 0xda : fix == 0x90 ? 0xdc : 0xde;
  if (n <= fixmax) return put1(c, (uint8_t)(fix | n));
  if (op8 && n <= 0xff) return putop(c, op8, n, 1);
  if (n <= 0xffff) return putop(c, op16, n, 2);
  if (n <= 0xffffffff) return putop(c, (uint8_t)(op16 + 1), n, 4);
  return refuse(c, "2^32 or more elements");
}

/* Ext whose payload is the string at idx (a C function or library name). */
static int putname(ctx *c, int idx, int type) {
  size_t n;
  const char *s = lua_tolstring(c->L, idx, &n);
  uint8_t *p = n > 0xff ? NULL : room(c, n + 3);
  if (!p) return n > 0xff ? refuse(c, "name over 255 bytes") : nomem(c);
  p[0] = 0xc7;
  p[1] = (uint8_t)n;
  p[2] = (uint8_t)type;
  memcpy(p + 3, s, n);
  c->b->len += n + 3;
  return 0;
}

static int putglobals(ctx *c) {
  uint8_t *p = room(c, 3);
  if (!p) return nomem(c);
  p[0] = 0xc7, p[1] = 0, p[2] = PLUSH_EXT_GLOBALS;
  c->b->len += 3;
  return 0;
}

/*
** A table or Lua function seen before in this value becomes a BACKREF
** (returns 1); else it gets the next ref number (returns 0).
*/
static int mark(ctx *c, int idx) {
  lua_State *L = c->L;
  lua_pushvalue(L, idx);
  if (lua_rawget(L, c->refs) == LUA_TNUMBER) {
    lua_Integer r = lua_tointeger(L, -1);
    uint8_t *p = room(c, 6);
    lua_pop(L, 1);
    if (!p) return nomem(c);
    p[0] = 0xd6, p[1] = PLUSH_EXT_BACKREF;
    store(p + 2, (uint64_t)r, 4);
    c->b->len += 6;
    return 1;
  }
  lua_pop(L, 1);
  if (c->nref > (lua_Integer)UINT32_MAX) return refuse(c, "over 2^32 tables");
  lua_pushvalue(L, idx);
  lua_pushinteger(L, c->nref++);
  lua_rawset(L, c->refs);
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
    int rc = puthead(c, n, 0xa0, 31, 0xd9);
    if (rc) return rc;
    return plush_buf_append(c->b, s, n) ? nomem(c) : 0;
  }
  if (t == LUA_TBOOLEAN) return put1(c, lua_toboolean(L, idx) ? 0xc3 : 0xc2);
  return put1(c, 0xc0);
}

/*
** The common table is an array filled in order, and lua_next walks an
** array part first, keys 1, 2, 3, ...: while the walk yields those keys
** (up to n) with scalar values, they are written as they come, so such a
** table costs one pass. The walk stops before the first key out of that
** order and before the first value that would take a ref number (a table
** or function): nothing inside this table is marked yet, so the caller
** may still move or drop what was written. Returns 0 when the walk ended,
** 1 when it stopped (that key and value on the stack), or an error; *next
** is the key that was expected next.
*/
static int putrun(ctx *c, int idx, lua_Integer n, lua_Integer *next) {
  lua_State *L = c->L;
  lua_Integer i = 1;
  int rc = 0, t;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (i > n || !lua_isinteger(L, -2) || lua_tointeger(L, -2) != i ||
        !isscalar(t = lua_type(L, -1))) {
      rc = 1;
      break;
    }
    if ((rc = putscalar(c, -1, t))) return rc;
    lua_pop(L, 1);
    i++;
  }
  *next = i;
  return rc;
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
  size_t n = c->b->len - at - 6;
  uint8_t *p = (uint8_t *)c->b->data + at;
  if (n > 0xffffffff) return refuse(c, "table over 4 GiB");
  if (n <= 0xffff) {                     /* ext 8 or 16: 2 or 1 bytes less */
    size_t w = n <= 0xff ? 1 : 2;
    memmove(p + 2 + w, p + 6, n);
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
  if (k > 0xffffffff || m > 0xffffffff) return refuse(c, "2^32 or more elements");
  if (!room(c, h1 - h0)) return nomem(c);
  p = (uint8_t *)c->b->data + at;
  memmove(p + h1, p + h0, c->b->len - at - h0);
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
  if ((rc = enter(c))) return rc;
  at = c->b->len;
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

/* ----------------------------------------------------------------- slices */

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
  if ((rc = enter(c))) return rc;
  if (n > 0xffffffff) return refuse(c, "2^32 or more elements");
  at = c->b->len;
  if (!sl->packed) {
    if ((rc = puthead(c, n, 0x90, 15, 0))) return rc;
  } else if (n > 0) {
    if (!room(c, 16)) return nomem(c);
    settab((uint8_t *)c->b->data + at, n, 1);
    c->b->len += 6 + headlen(n) + 1;
  } else if ((rc = put1(c, 0x81))) {
    return rc;
  }
  lua_getiuservalue(L, idx, 1);
  tab = lua_gettop(L);
  s = &c->path[c->depth];
  s->kind = SEG_INT;
  if (!lua_checkstack(L, 40)) return fail(c, PLUSH_ENOMEM, "Lua stack overflow");
  for (s->i = 1; (lua_Unsigned)s->i <= n; s->i++) {
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

static int writer(lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  return plush_buf_append(ud, p, n) ? 1 : 0;
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
  int rc, i;
  if (lua_iscfunction(L, idx)) {
    lua_pushvalue(L, idx);
    if (lua_rawget(L, c->names) != LUA_TSTRING) return refuse(c, "C function");
    rc = putname(c, -1, PLUSH_EXT_CFUNC);
    lua_pop(L, 1);
    return rc;
  }
  if ((rc = mark(c, idx))) return rc < 0 ? rc : 0;
  if ((rc = enter(c))) return rc;
  if (!room(c, 11)) return nomem(c);
  c->b->data[at] = (char)0xc9;
  c->b->data[at + 5] = PLUSH_EXT_FUNCTION;
  c->b->data[at + 6] = (char)0xc6;
  c->b->len += 11;
  lua_pushvalue(L, idx);
  if (lua_dump(L, writer, c->b, 0)) return nomem(c);
  lua_pop(L, 1);
  if ((n = c->b->len - at - 11) > 0xffffffff) return refuse(c, "function over 4 GiB");
  store((uint8_t *)c->b->data + at + 7, n, 4);
  lua_pushvalue(L, idx);
  lua_getinfo(L, ">u", &ar);
  if ((rc = puthead(c, ar.nups, 0x90, 15, 0))) return rc;
  c->path[c->depth].kind = SEG_UPV;
  c->path[c->depth].idx = idx;
  for (i = 1; i <= ar.nups; i++) {
    const char *nm = lua_getupvalue(L, idx, i);
    c->path[c->depth].i = i;
    rc = strcmp(nm, "_ENV") ? put(c, lua_gettop(L)) : putglobals(c);
    if (rc) return rc;
    lua_pop(L, 1);
  }
  if ((n = c->b->len - at - 6) > 0xffffffff) return refuse(c, "function over 4 GiB");
  store((uint8_t *)c->b->data + at + 1, n, 4);
  c->depth--;
  return 0;
}

static int put(ctx *c, int idx) {
  int t = lua_type(c->L, idx);
  switch (t) {
    case LUA_TTABLE: return puttab(c, idx);
    case LUA_TFUNCTION: return putfn(c, idx);
    case LUA_TTHREAD: return refuse(c, "thread");
    case LUA_TUSERDATA: {
      const slice *sl = luaL_testudata(c->L, idx, slicemt);
      return sl ? putslice(c, idx, sl) : refuse(c, "userdata");
    }
    case LUA_TLIGHTUSERDATA: return refuse(c, "userdata");
    default: return putscalar(c, idx, t);
  }
}

static void init(ctx *c, lua_State *L, const char *root, char *err, size_t n) {
  c->L = L;
  c->root = root ? root : "value";
  c->err = err;
  c->errlen = err ? n : 0;
  if (c->errlen) err[0] = '\0';
  c->refs = c->names = c->rc = c->depth = 0;
  c->nref = 0;
}

static int encbody(lua_State *L) {
  ctx *c = lua_touserdata(L, 1);
  lua_newtable(L);
  c->refs = 3;
  loadnames(L);
  lua_rawgeti(L, -1, 1);
  c->names = 5;
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
  int top = lua_gettop(L), t, st;
  init(&c, L, root, err, errlen);
  c.b = out;
  idx = lua_absindex(L, idx);
  t = lua_type(L, idx);
  if (t != LUA_TTABLE && t != LUA_TFUNCTION && t != LUA_TUSERDATA) c.rc = put(&c, idx);
  else if (!lua_checkstack(L, 4)) c.rc = fail(&c, PLUSH_ENOMEM, "Lua stack overflow");
  else {
    lua_pushcfunction(L, encbody);
    lua_pushlightuserdata(L, &c);
    lua_pushvalue(L, idx);
    if ((st = lua_pcall(L, 2, 0, 0)) != LUA_OK) {
      const char *m = lua_tostring(L, -1);
      c.rc = fail(&c, st == LUA_ERRMEM ? PLUSH_ENOMEM : PLUSH_EUNSER,
                  "cannot serialise %s: %s", c.root, m ? m : "error");
    }
  }
  lua_settop(L, top);
  if (c.rc) out->len = len0;
  return c.rc;
}

/* ---------------------------------------------------------------- decode */

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
  if (!p) return eof(c);
  for (; n > 0; n--) *v = *v << 8 | *p++;
  return 0;
}

/* Records the object at the top as the next ref (0-based on the wire). */
static void addref(ctx *c) {
  lua_pushvalue(c->L, -1);
  lua_rawseti(c->L, c->refs, ++c->nref);
}

static int get(ctx *c);

/* An 8-byte big-endian number at p. */
static uint64_t load64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

/*
** Items 1..n into the table at t. Fixints and floats, what arrays of
** numbers are made of, are read here without a call to get.
*/
static int fillarr(ctx *c, int t, uint64_t n) {
  lua_State *L = c->L;
  seg *s = &c->path[c->depth];
  lua_Integer i;
  int rc;
  s->kind = SEG_INT;
  for (i = 1; (uint64_t)i <= n; i++) {
    uint8_t b = c->p < c->end ? *c->p : 0xc1;
    if (b <= 0x7f || b >= 0xe0) {
      c->p++;
      lua_pushinteger(L, (int8_t)b);
    } else if (b == 0xcb && c->end - c->p >= 9) {
      uint64_t u = load64(c->p + 1);
      double d;
      memcpy(&d, &u, 8);
      c->p += 9;
      lua_pushnumber(L, (lua_Number)d);
    } else if (b >= 0xcc && b <= 0xce && c->end - c->p > 1 << (b - 0xcc)) {
      int w = 1 << (b - 0xcc);           /* uint 8/16/32: always in range */
      uint64_t v = 0;
      for (int j = 1; j <= w; j++) v = v << 8 | c->p[j];
      c->p += w + 1;
      lua_pushinteger(L, (lua_Integer)v);
    } else {
      s->i = i;
      if ((rc = get(c))) return rc;
    }
    lua_rawseti(L, t, i);
  }
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
      return fail(c, PLUSH_ECORRUPT, "table key is %s", lua_isnil(L, -1) ? "nil" : "NaN");
    s->kind = SEG_KEY, s->idx = lua_gettop(L);
    if ((rc = get(c))) return rc;
    lua_rawset(L, t);
  }
  return 0;
}

/* A new table of narr + nrec slots, registered as the next ref. */
static int newtab(ctx *c, uint64_t narr, uint64_t nrec) {
  int rc;
  if ((rc = enter(c))) return rc;
  lua_createtable(c->L, narr < 0x7fffffff ? (int)narr : 0,
                  nrec < 0x7fffffff ? (int)nrec : 0);
  addref(c);
  return 0;
}

static int getarr(ctx *c, uint64_t n) {
  int rc;
  if (n > (uint64_t)(c->end - c->p)) return eof(c);
  if ((rc = newtab(c, n, 0)) || (rc = fillarr(c, lua_gettop(c->L), n))) return rc;
  c->depth--;
  return 0;
}

static int getmap(ctx *c, uint64_t n) {
  int rc;
  if (n > (uint64_t)(c->end - c->p) / 2) return eof(c);
  if ((rc = newtab(c, 0, n)) || (rc = fillmap(c, lua_gettop(c->L), n))) return rc;
  c->depth--;
  return 0;
}

/* An array (fix 0x90) or map (0x80) header: its count in *n. */
static int gethead(ctx *c, uint8_t fix, uint64_t *n) {
  const uint8_t *q = take(c, 1);
  if (!q) return eof(c);
  if ((*q & 0xf0) == fix) {
    *n = *q & 0x0f;
    return 0;
  }
  if (*q == (fix == 0x90 ? 0xdc : 0xde)) return getnum(c, 2, n);
  if (*q == (fix == 0x90 ? 0xdd : 0xdf)) return getnum(c, 4, n);
  return fail(c, PLUSH_ECORRUPT, "table payload without %s header",
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
    return eof(c);
  if ((rc = newtab(c, k, m))) return rc;
  t = lua_gettop(c->L);
  if ((rc = fillarr(c, t, k)) || (rc = fillmap(c, t, m))) return rc;
  c->depth--;
  return 0;
}

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

static int checkdump(const uint8_t *p, size_t n) {
  static const uint8_t h[] = {0x1b, 'L', 'u', 'a', 0x54, 0, 0x19, 0x93, '\r',
    '\n', 0x1a, '\n', 4, sizeof(lua_Integer), sizeof(lua_Number)};
  bc s = {p, p + n};
  size_t nup, u;
  if (n < sizeof h + 17 || memcmp(p, h, sizeof h)) return -1;
  s.p += sizeof h + 16;                      /* LUAC_INT, LUAC_NUM */
  nup = *s.p++;
  return walkproto(&s, 0, &u) || u != nup || s.p != s.e ? -1 : 0;
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
** FUNCTION payload (input already limited to it): bytecode, loaded as
** binary only, registered as a ref before its upvalues are decoded so a
** function can be its own upvalue; then exactly nups upvalues.
*/
static int getfn(ctx *c) {
  lua_State *L = c->L;
  lua_Debug ar;
  const uint8_t *q;
  uint64_t n;
  rdr r;
  int rc, f, st;
  uint32_t i;
  if ((rc = enter(c))) return rc;
  if (!(q = take(c, 1))) return eof(c);
  if ((*q & 0xe0) == 0xa0) n = *q & 0x1f;
  else if (*q >= 0xc4 && *q <= 0xc6) { if ((rc = getnum(c, 1 << (*q - 0xc4), &n))) return rc; }
  else if (*q >= 0xd9 && *q <= 0xdb) { if ((rc = getnum(c, 1 << (*q - 0xd9), &n))) return rc; }
  else return fail(c, PLUSH_ECORRUPT, "function without bytecode");
  if (!(q = take(c, n))) return eof(c);
  if (checkdump(q, n)) return fail(c, PLUSH_ECORRUPT, "bad function bytecode");
  r.p = (const char *)q, r.n = n;
  if ((st = lua_load(L, reader, &r, "=(plush)", "b")) != LUA_OK)
    return fail(c, st == LUA_ERRMEM ? PLUSH_ENOMEM : PLUSH_ECORRUPT,
                "bad function bytecode: %s", lua_tostring(L, -1));
  f = lua_gettop(L);
  addref(c);
  lua_pushvalue(L, f);
  lua_getinfo(L, ">u", &ar);
  if (!(q = take(c, 1))) return eof(c);
  if ((*q & 0xf0) == 0x90) n = *q & 0x0f;
  else if (*q == 0xdc || *q == 0xdd) { if ((rc = getnum(c, *q == 0xdc ? 2 : 4, &n))) return rc; }
  else return fail(c, PLUSH_ECORRUPT, "function without upvalue array");
  if (n != ar.nups)
    return fail(c, PLUSH_ECORRUPT, "function has %d upvalues, got %llu",
                ar.nups, (unsigned long long)n);
  c->path[c->depth].kind = SEG_UPV;
  c->path[c->depth].idx = f;
  for (i = 1; i <= ar.nups; i++) {
    c->path[c->depth].i = i;
    if ((rc = get(c))) return rc;
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
  loadnames(L);
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
  return fail(c, PLUSH_ECORRUPT, "unknown %s '%s'",
              which == 2 ? "C function" : "module", t);
}

/* An ext payload of n bytes read by get, which must use all of them. */
static int within(ctx *c, size_t n, int (*get)(ctx *), const char *what) {
  const uint8_t *end = c->end;
  int rc;
  c->end = c->p + n;
  rc = get(c);
  if (rc == PLUSH_ETRUNC)
    rc = fail(c, PLUSH_ECORRUPT, "%s payload overruns its length", what);
  else if (!rc && c->p != c->end)
    rc = fail(c, PLUSH_ECORRUPT, "%s payload has extra bytes", what);
  c->end = end;
  return rc;
}

static int getext(ctx *c, size_t n) {
  lua_State *L = c->L;
  const uint8_t *q;
  uint64_t r;
  int type;
  if (!(q = take(c, 1))) return eof(c);
  type = (int8_t)*q;
  if (n > (size_t)(c->end - c->p)) return eof(c);
  switch (type) {
    case PLUSH_EXT_BACKREF:
      if (n != 4) return fail(c, PLUSH_ECORRUPT, "back-reference of %zu bytes", n);
      getnum(c, 4, &r);
      if (r >= (uint64_t)c->nref)
        return fail(c, PLUSH_ECORRUPT, "back-reference to object %llu of %lld",
                    (unsigned long long)r, (long long)c->nref);
      lua_rawgeti(L, c->refs, (lua_Integer)r + 1);
      return 0;
    case PLUSH_EXT_FUNCTION:
      return within(c, n, getfn, "function");
    case PLUSH_EXT_TABLE:
      return within(c, n, gettab, "table");
    case PLUSH_EXT_GLOBALS:
      q = take(c, n);
      if (n > 1 || (n == 1 && q[0])) return fail(c, PLUSH_ECORRUPT, "bad globals marker");
      lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
      return 0;
    case PLUSH_EXT_CFUNC:
    case PLUSH_EXT_MODULE:
      q = take(c, n);
      return lookup(c, q, n, type == PLUSH_EXT_CFUNC ? 2 : 3);
    default: return fail(c, PLUSH_ECORRUPT, "unknown extension type %d", type);
  }
}

static int get(ctx *c) {
  lua_State *L = c->L;
  const uint8_t *q;
  uint64_t v;
  int rc, w;
  uint8_t b;
  if (c->p >= c->end) return eof(c);
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
      if (v > INT64_MAX) return fail(c, PLUSH_ECORRUPT, "integer out of range");
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
    default: return fail(c, PLUSH_ECORRUPT, "invalid type byte 0x%02x", b);
  }
  if ((rc = getnum(c, w, &v))) return rc;
str:
  if (!(q = take(c, v))) return eof(c);
  lua_pushlstring(L, (const char *)q, v);
  return 0;
}

static int decbody(lua_State *L) {
  ctx *c = lua_touserdata(L, 1);
  uint8_t b = c->p < c->end ? *c->p : 0;
  if ((b >= 0x80 && b <= 0x9f) || (b >= 0xc7 && b <= 0xc9) ||
      (b >= 0xd4 && b <= 0xd8) || (b >= 0xdc && b <= 0xdf)) {
    lua_newtable(L);
    c->refs = 2;
  }
  c->rc = get(c);
  return c->rc ? 0 : 1;
}

int plush_decode(lua_State *L, const char *data, size_t len, size_t *used,
                 char *err, size_t errlen) {
  ctx c;
  int top = lua_gettop(L), st;
  init(&c, L, "value", err, errlen);
  c.p = (const uint8_t *)(data ? data : "");
  c.end = c.p + (data ? len : 0);
  if (!lua_checkstack(L, 4)) return fail(&c, PLUSH_ENOMEM, "Lua stack overflow");
  lua_pushcfunction(L, decbody);
  lua_pushlightuserdata(L, &c);
  if ((st = lua_pcall(L, 1, 1, 0)) != LUA_OK) {
    const char *m = lua_tostring(L, -1);
    c.rc = fail(&c, st == LUA_ERRMEM ? PLUSH_ENOMEM : PLUSH_ECORRUPT, "%s",
                m ? m : "error while decoding");
  }
  if (c.rc) {
    lua_settop(L, top);
    return c.rc;
  }
  if (used) *used = (size_t)(c.p - (const uint8_t *)(data ? data : ""));
  return 0;
}
