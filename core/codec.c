/*
** codec.c — what the encoder (codec_enc.c) and the decoder (codec_dec.c)
** share: error messages with the path to the value, the nesting limit,
** the name map of C functions and library tables, the context set-up.
*/
#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_int.h"

static const char cachekey = 'n';  /* registry key of the name map */

/* ---- errors ------------------------------------------------------ */

static void add(msg *m, const char *p, size_t n) {
  if (m->cap == 0) return;
  if (n > m->cap - 1 - m->n) n = m->cap - 1 - m->n;
  memcpy(m->s + m->n, p, n);
  m->s[m->n += n] = '\0';
}

static void adds(msg *m, const char *s) { add(m, s, strlen(s)); }

int codec_fail(ctx *c, int rc, const char *fmt, ...) {
  va_list ap;
  if (c->errlen) {
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}


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
int codec_refuse(ctx *c, const char *what) {
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
int codec_enter(ctx *c) {
  msg m = {c->err, 0, c->errlen};
  if (++c->depth > PLUSH_MAX_DEPTH) {
    char t[48];
    snprintf(t, sizeof t, "nesting deeper than %d at ", PLUSH_MAX_DEPTH);
    adds(&m, t);
    addpath(c, &m, c->depth - 1);
    return PLUSH_EDEPTH;
  }
  if (!lua_checkstack(c->L, 12)) return codec_fail(c, PLUSH_ENOMEM, "Lua stack overflow");
  return 0;
}

/* ---- name map ---------------------------------------------------- */

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
void codec_loadnames(lua_State *L) {
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

void codec_init(ctx *c, lua_State *L, const char *root, char *err, size_t n) {
  c->L = L;
  c->root = root ? root : "value";
  c->err = err;
  c->errlen = err ? n : 0;
  if (c->errlen) err[0] = '\0';
  c->refs = c->names = c->rc = c->depth = 0;
  c->nref = 0;
  c->block = NULL;
  c->nseen = c->dumps = 0;
}

/* ---- the array part of a table ----------------------------------- */

/*
** Lua 5.4's Table, as far as codec_slots reads it: the GC header (a
** pointer and two bytes), flags, log2 of the hash size, the array limit
** (never more than the array part's size: a key up to it is an array
** slot), the array part. Lua keeps the layout to itself, so it is checked
** once per process on a table made for the purpose; any mismatch turns
** the fast paths off (the API paths give the same bytes and values).
*/
typedef struct ltable {
  void *next;
  unsigned char tt, marked, flags, lsizenode;
  unsigned int alimit;
  codec_slot *array;
} ltable;

_Static_assert(sizeof(lua_Integer) == 8 && sizeof(lua_Number) == 8,
               "the codec's array fast path reads 64-bit integers and floats");
_Static_assert(sizeof(codec_slot) == 16, "a Lua 5.4 TValue is 16 bytes");

static _Atomic int layout;  /* 0 not checked yet, 1 checked, -1 not Lua's */

static int checklayout(lua_State *L) {
  const ltable *t;
  codec_slot *a;
  lua_Number d = -0.0;
  int ok;
  lua_createtable(L, 3, 0);
  lua_pushinteger(L, (lua_Integer)0x1122334455667788);
  lua_rawseti(L, -2, 1);
  lua_pushnumber(L, d);
  lua_rawseti(L, -2, 2);
  t = lua_topointer(L, -1);
  a = t->alimit == 3 ? t->array : NULL;
  ok = a && a[0].tt == CODEC_TINT && a[0].v.i == 0x1122334455667788 &&
       a[1].tt == CODEC_TFLT && memcmp(&a[1].v.n, &d, 8) == 0 &&
       (a[2].tt & 0x0f) == 0 && lua_rawlen(L, -1) == 2;
  if (ok) {                     /* written here, read back through the API */
    a[2].v.n = 2.5, a[2].tt = CODEC_TFLT;
    ok = lua_rawgeti(L, -1, 3) == LUA_TNUMBER && !lua_isinteger(L, -1) &&
         lua_tonumber(L, -1) == 2.5 && lua_rawlen(L, -2) == 3;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return ok ? 1 : -1;
}

/* PLUSH_CODEC_NOSLOTS=1 in the environment: the API paths only (tests,
** and comparing the two in one build). */
codec_slot *codec_slots(lua_State *L, int idx, lua_Unsigned n) {
  const ltable *t;
  int st = layout;
  if (st == 0) {
    layout = st = plush_env_flag("PLUSH_CODEC_NOSLOTS") ? -1 : checklayout(L);
  }
  if (st < 0) return NULL;
  t = lua_topointer(L, idx);
  return n <= t->alimit ? t->array : NULL;
}

/* Lua 5.4 marks a collectable value's type tag with bit 6. */
#define TAG_COLLECTABLE 0x40

void plush_seq_append(lua_State *L, int ti, lua_Integer n, int si,
                      lua_Integer m) {
  codec_slot *t, *s;
  lua_Integer i;
  ti = lua_absindex(L, ti);
  si = lua_absindex(L, si);
  if (m <= 0) return;
  t = n >= 0 ? codec_slots(L, ti, (lua_Unsigned)n + (lua_Unsigned)m) : NULL;
  s = t ? codec_slots(L, si, (lua_Unsigned)m) : NULL;
  for (i = 0; s && i < m; i++)
    if (s[i].tt & TAG_COLLECTABLE) s = NULL;
  if (s) { /* overlapping (the same table) as table.move: as if by a copy */
    memmove(t + n, s, (size_t)m * sizeof *s);
    return;
  }
  if (n > 0 && lua_rawequal(L, ti, si)) { /* backwards, as table.move */
    for (i = m; i >= 1; i--) {
      lua_rawgeti(L, si, i);
      lua_rawseti(L, ti, n + i);
    }
    return;
  }
  for (i = 1; i <= m; i++) {
    lua_rawgeti(L, si, i);
    lua_rawseti(L, ti, n + i);
  }
}
