/*
** ctl_tuples_match.c — what a pattern matches in the tuple space: the
** index key of a tuple (its arity and first field) and of a pattern, and
** the match of a pattern's fields (values, plush.ANY, types) against a
** tuple's. See ctl_tuples.c.
*/
#include <lauxlib.h>
#include <string.h>

#include "ctl_tuples.h"

#define DEPTH_MAX 32

/* ---- the index --------------------------------------------------- */

/*
** The bucket of arity n and first field v (at idx): values that are
** equal (rawequal: 1 and 1.0 too) share it; a first field that is a
** table, a function or NaN goes by its type alone (a pattern's table
** matches by content, so such patterns scan the whole space).
*/
unsigned ctl_ts_key(lua_State *L, int n, int idx) {
  uint64_t h = (uint64_t)n * 0x9e3779b97f4a7c15u, v = 0;
  int t = lua_type(L, idx);
  if (t == LUA_TSTRING) {
    size_t len;
    const unsigned char *s = (const unsigned char *)lua_tolstring(L, idx, &len);
    v = 1469598103934665603u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) v = (v ^ s[i]) * 1099511628211u;
  } else if (t == LUA_TNUMBER) {
    lua_Integer i;
    if (lua_isinteger(L, idx)) {
      v = (uint64_t)lua_tointeger(L, idx);
    } else if (lua_numbertointeger(lua_tonumber(L, idx), &i)) {
      v = (uint64_t)i; /* 2.0 equals 2 */
    } else {
      lua_Number d = lua_tonumber(L, idx);
      memcpy(&v, &d, sizeof v < sizeof d ? sizeof v : sizeof d);
    }
    t = LUA_TSTRING + 16; /* integers and floats alike */
  } else if (t == LUA_TBOOLEAN) {
    v = (uint64_t)lua_toboolean(L, idx);
  }
  h ^= v + (uint64_t)t * 0xbf58476d1ce4e5b9u + (h << 6) + (h >> 2);
  h ^= h >> 31;
  return (unsigned)(h % CTL_TS_BUCKETS);
}

/* The bucket a pattern (at pi, arity n) needs, or -1: look at every tuple. */
int ctl_ts_patternkey(lua_State *L, int pi, int n) {
  int b = -1, t;
  if (n < 1) return -1;
  t = lua_rawgeti(L, pi, 1);
  if ((t == LUA_TSTRING || t == LUA_TBOOLEAN ||
       (t == LUA_TNUMBER && lua_tonumber(L, -1) == lua_tonumber(L, -1))))
    b = (int)ctl_ts_key(L, n, lua_gettop(L));
  lua_pop(L, 1);
  return b;
}

/* ---- matching ---------------------------------------------------- */

static const char *const typenames[] = {
    "nil", "boolean", "number", "string", "table", "function", "integer",
    "float", NULL};

/*
** What pattern field v (at idx) asks: 0 the value itself, 1 anything
** (plush.ANY, a table {["plush.ANY"] = true}), 2 + i a type
** (plush.type(typenames[i]), {["plush.type"] = name}); -1 a bad type name.
*/
int ctl_ts_fieldkind(lua_State *L, int idx) {
  int k = 0;
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  if (lua_getfield(L, idx, "plush.ANY") != LUA_TNIL) k = 1;
  lua_pop(L, 1);
  if (k) return 1;
  if (lua_getfield(L, idx, "plush.type") != LUA_TNIL) {
    const char *s = lua_tostring(L, -1);
    k = -1;
    for (int i = 0; s && typenames[i]; i++)
      if (strcmp(s, typenames[i]) == 0) k = 2 + i;
  }
  lua_pop(L, 1);
  return k;
}

static int istype(lua_State *L, int idx, const char *name) {
  if (strcmp(name, "integer") == 0) return lua_isinteger(L, idx);
  if (strcmp(name, "float") == 0)
    return lua_type(L, idx) == LUA_TNUMBER && !lua_isinteger(L, idx);
  return strcmp(luaL_typename(L, idx), name) == 0;
}

/* Deep equality of the values at a and b: what a pattern's value needs. */
static int same(lua_State *L, int a, int b, int depth) {
  int ok = 1;
  lua_Integer na = 0, nb = 0;
  if (lua_rawequal(L, a, b)) return 1;
  if (lua_type(L, a) != LUA_TTABLE || lua_type(L, b) != LUA_TTABLE ||
      depth > DEPTH_MAX)
    return 0;
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  luaL_checkstack(L, 6, "tuple space: values nested too deep");
  lua_pushnil(L);
  while (ok && lua_next(L, a)) {
    na++;
    lua_pushvalue(L, -2);
    lua_rawget(L, b);
    ok = same(L, -1, -2, depth + 1);
    lua_pop(L, 2);
  }
  if (!ok) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushnil(L);
  while (lua_next(L, b)) nb++, lua_pop(L, 1);
  return na == nb;
}

/* Does tuple t (at ti, arity n) match pattern p (at pi, same arity)? */
int ctl_ts_match(lua_State *L, int ti, int pi, int n) {
  int ok = 1;
  for (int i = 1; ok && i <= n; i++) {
    int k;
    lua_rawgeti(L, pi, i);
    lua_rawgeti(L, ti, i);
    k = ctl_ts_fieldkind(L, -2);
    if (k == 0) ok = same(L, -1, -2, 0);
    else if (k >= 2) ok = istype(L, -1, typenames[k - 2]);
    lua_pop(L, 2);
  }
  return ok;
}
