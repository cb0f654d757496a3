/*
** engine_req.c — apply's and exec's requests read without their tables. The client
** writes a balanced or direct apply as {op = "apply", f = F, args = A},
** the three keys in any order: here F and A are decoded each by itself
** (plush_decode) and the request's own table is never made, nor A's when
** it is the empty {n = 0}. Only when no BACKREF or UPVALUE can come
** (decoded apart, F and A number their objects from 0, and could not
** share one): anything else -- other keys,
** other ops, a value that does not decode -- is left to eng_serve's
** general path, which reads and words it as before.
**
** A function without upvalues is kept, by its bytecode, in a small cache
** (FNSLOTS slots, direct-mapped, under fnkey in the registry): the same
** bytes sent again (every task of a map or a balanced loop sends its
** function) give the closure already loaded, without lua_load (~3k
** instructions) and the prototype's garbage. Nothing tells the two apart:
** such a closure has no state (no upvalue, so no _ENV either), its
** bytecode was checked when first loaded, and only its identity is shared.
*/
#include <string.h>

#include "codec.h"
#include "engine_int.h"

/* A fixstr key at *p equal to k (of n < 32 bytes): moves *p past it. */
static int key(const uint8_t **p, const uint8_t *end, const char *k, size_t n) {
  if ((size_t)(end - *p) < n + 1 || **p != (0xa0 | n) || memcmp(*p + 1, k, n))
    return 0;
  *p += n + 1;
  return 1;
}

/* ---- functions without upvalues, kept by their bytecode ---- */

#define FNSLOTS 32
static const char fnkey = 0;

/* The bytecode of a FUNCTION value at p with no upvalue ({}): *code and
** *n, and the value's size in *used; 0 for anything else. */
static int fnbytes(const uint8_t *p, const uint8_t *end, const uint8_t **code,
                   size_t *n, size_t *used) {
  const uint8_t *q = p;
  size_t w, len = 0, blen = 0;
  if (end - q < 3 || *q < 0xc7 || *q > 0xc9) return 0;
  w = (size_t)1 << (*q - 0xc7);
  q++;
  if ((size_t)(end - q) < w + 1) return 0;
  for (size_t i = 0; i < w; i++) len = len << 8 | *q++;
  if (*q++ != PLUSH_EXT_FUNCTION || (size_t)(end - q) < len || len < 2) return 0;
  end = q + len; /* the payload: bytecode, then 0x90 (no upvalue) */
  if (end[-1] != 0x90) return 0;
  if ((*q & 0xe0) == 0xa0) w = 0, blen = *q & 0x1f;
  else if (*q >= 0xc4 && *q <= 0xc6) w = (size_t)1 << (*q - 0xc4);
  else if (*q >= 0xd9 && *q <= 0xdb) w = (size_t)1 << (*q - 0xd9);
  else return 0;
  q++;
  if ((size_t)(end - 1 - q) < w) return 0;
  for (size_t i = 0; i < w; i++) blen = blen << 8 | *q++;
  if ((size_t)(end - 1 - q) != blen) return 0;
  *code = q, *n = blen, *used = (size_t)(end - p);
  return 1;
}

static unsigned fnslot(const uint8_t *b, size_t n) {
  uint64_t h = 0xcbf29ce484222325u ^ n, x;
  size_t i;
  for (i = 0; i + 8 <= n; i += 8) {
    memcpy(&x, b + i, 8);
    h = (h ^ x) * 0x100000001b3u;
  }
  for (; i < n; i++) h = (h ^ b[i]) * 0x100000001b3u;
  return (unsigned)(h >> 40) % FNSLOTS;
}

/* Pushes the kept closure of bytecode b (n bytes) and returns 1, or 0
** with nothing pushed. */
static int fnget(lua_State *L, const uint8_t *b, size_t n) {
  unsigned s = fnslot(b, n);
  const char *k;
  size_t kn;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &fnkey) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  lua_rawgeti(L, -1, 2 * (lua_Integer)s + 1);
  k = lua_tolstring(L, -1, &kn);
  if (k == NULL || kn != n || memcmp(k, b, n)) {
    lua_pop(L, 2);
    return 0;
  }
  lua_rawgeti(L, -2, 2 * (lua_Integer)s + 2);
  lua_replace(L, -3);
  lua_pop(L, 1);
  return 1;
}

typedef struct fnput { const uint8_t *b; size_t n; } fnput;

/* fn(f, ud): keeps closure f under its bytecode (run protected: the
** cache's table and key may find no memory). */
static int fnkeep(lua_State *L) {
  const fnput *x = lua_touserdata(L, 2);
  lua_Integer s = fnslot(x->b, x->n);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &fnkey) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 2 * FNSLOTS, 0);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &fnkey);
  }
  lua_pushlstring(L, (const char *)x->b, x->n);
  lua_rawseti(L, -2, 2 * s + 1);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 2 * s + 2);
  return 0;
}

/* Pushes function F at p (moving p past it): the kept closure, or the
** decoded one (then kept when it has no upvalue); 0 when F does not
** decode to a function (the stack then as the caller must reset). */
static int getf(lua_State *L, const uint8_t **p, const uint8_t *end) {
  const uint8_t *b = NULL;
  size_t n = 0, used;
  char err[8];
  int kept = fnbytes(*p, end, &b, &n, &used);
  if (kept && fnget(L, b, n)) {
    *p += used;
    return 1;
  }
  if (plush_decode(L, (const char *)*p, (size_t)(end - *p), &used, err, sizeof err) ||
      lua_type(L, -1) != LUA_TFUNCTION)
    return 0;
  if (kept) {
    fnput x = {b, n};
    lua_pushcfunction(L, fnkeep);
    lua_pushvalue(L, -2);
    lua_pushlightuserdata(L, &x);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1); /* not kept */
  }
  *p += used;
  return 1;
}

/*
** Pushes F and A (nil for {n = 0}) and returns 1; or returns 0 with
** nothing pushed. The caller lowered the memory limit as for the whole
** request's decode.
*/
int eng_req_apply(lua_State *L, const char *data, size_t len) {
  static const uint8_t none[] = {0x81, 0xa1, 'n', 0x00};  /* {n = 0} */
  const uint8_t *p = (const uint8_t *)data, *end = p + len;
  const uint8_t *fv = NULL, *av = NULL;
  int top = lua_gettop(L), op = 0;
  size_t used;
  char err[8];
  /* small (a BIGSTR is the frame's pages only to the general path) */
  if (len < 1 || len > 4096 || *p != 0x83 || plush_decode_mayref(data, len))
    goto general;
  p++;
  for (int i = 0; i < 3; i++) {
    if (!op && key(&p, end, "op", 2)) {
      if (!key(&p, end, "apply", 5)) goto general;
      op = 1;
    } else if (!fv && key(&p, end, "f", 1)) {
      fv = p;
      if (!getf(L, &p, end)) goto general;
    } else if (!av && key(&p, end, "args", 4)) {
      av = p;
      if ((size_t)(end - p) >= sizeof none && memcmp(p, none, sizeof none) == 0) {
        lua_pushnil(L);
        p += sizeof none;
      } else {
        if (plush_decode(L, (const char *)p, (size_t)(end - p), &used, err, sizeof err) ||
            lua_type(L, -1) != LUA_TTABLE)
          goto general;
        p += used;
      }
    } else {
      goto general;
    }
  }
  if (p != end) goto general;
  if (av < fv) lua_insert(L, -2); /* F below A */
  return 1;
general:
  lua_settop(L, top);
  return 0;
}

/* A str head at *p (fixstr, str 8, 16, 32) whose bytes are all there:
** *s and *n, *p moved past it. */
static int str(const uint8_t **p, const uint8_t *end, const char **s, size_t *n) {
  const uint8_t *q = *p;
  size_t w, len = 0;
  if (q >= end) return 0;
  if ((*q & 0xe0) == 0xa0) w = 0, len = *q & 0x1f;
  else if (*q >= 0xd9 && *q <= 0xdb) w = (size_t)1 << (*q - 0xd9);
  else return 0;
  q++;
  if ((size_t)(end - q) < w) return 0;
  for (size_t i = 0; i < w; i++) len = len << 8 | *q++;
  if ((size_t)(end - q) < len) return 0;
  *s = (const char *)q, *n = len;
  *p = q + len;
  return 1;
}

typedef struct xreq {
  const char *code, *name;
  size_t ncode, nname;
  int autoret;
} xreq;

static int pushexec(lua_State *L) {
  const xreq *x = lua_touserdata(L, 1);
  lua_pushlstring(L, x->code, x->ncode);
  if (x->name) lua_pushlstring(L, x->name, x->nname);
  else lua_pushnil(L);
  lua_pushboolean(L, x->autoret);
  return 3;
}

/*
** exec's request {op = "exec", code = C, name = N?, auto = B?} read the
** same way: pushes C, N (or nil) and B and returns 1; or returns 0 with
** nothing pushed (other keys, a C or N that is not a plain string, a B
** that is not a boolean, no memory: the general path says what).
*/
int eng_req_exec(lua_State *L, const char *data, size_t len) {
  const uint8_t *p = (const uint8_t *)data, *end = p + len;
  xreq x = {NULL, NULL, 0, 0, 0};
  int op = 0, au = 0, top = lua_gettop(L), n;
  const char *s;
  size_t sn;
  if (len < 1 || *p < 0x82 || *p > 0x84) return 0;
  n = *p++ & 0x0f;
  for (int i = 0; i < n; i++) {
    if (!op && key(&p, end, "op", 2)) {
      if (!key(&p, end, "exec", 4)) return 0;
      op = 1;
    } else if (!x.code && key(&p, end, "code", 4)) {
      if (!str(&p, end, &s, &sn)) return 0;
      x.code = s, x.ncode = sn;
    } else if (!x.name && key(&p, end, "name", 4)) {
      if (!str(&p, end, &s, &sn)) return 0;
      x.name = s, x.nname = sn;
    } else if (!au && key(&p, end, "auto", 4)) {
      if (p >= end || (*p != 0xc2 && *p != 0xc3)) return 0;
      x.autoret = *p++ == 0xc3;
      au = 1;
    } else {
      return 0;
    }
  }
  if (!op || !x.code || p != end) return 0;
  lua_pushcfunction(L, pushexec);
  lua_pushlightuserdata(L, &x);
  if (lua_pcall(L, 1, 3, 0) != LUA_OK) { /* no memory */
    lua_settop(L, top);
    return 0;
  }
  return 1;
}
