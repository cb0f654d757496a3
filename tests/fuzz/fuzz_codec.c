/*
** fuzz_codec.c — libFuzzer target for the value decoder.
**
** Input: the bytes of one encoded value, as a peer would send them.
**
** Each input is decoded into a fresh lua_State (the standard libraries
** open, as on an engine). A refused input must leave the stack as it was
** and say why. An accepted one is encoded again (enc1) -- everything the
** decoder builds must be encodable -- and enc1 decoded (v2) and encoded
** (enc2): v2 must be the same value as v1 (same types and subtypes, bits
** of floats, strings, table contents, sharing and cycles, closures'
** shared upvalues, plush.arrays' element types and bytes); enc2 byte for byte enc1 when the value holds no
** function and no table with two keys or more outside its array (the
** only two places where the encoder's output depends on more than the
** value: bytecode, and the order of a hash table's keys), else enc2 must
** decode to v1 again. Lua seeds its hashes per state, so the hash order
** differs from run to run: every check holds whatever the order.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "array.h"
#include "buf.h"
#include "codec.h"
#include "plush.h"

/*
** How deep the comparisons follow a value. Sharing makes paths longer
** than the decoder's nesting: a back-reference from the bottom of one
** deep sub-table to the top of another deep one makes a path through
** both, which the walks below may take depending on a table's key order.
*/
#define FC_DEEP 1000

static void fc_check(int ok) {
  if (!ok) abort();
}

/*
** Whether upvalue i of the functions at a and b is shared alike: seen maps
** each upvalue (its lua_upvalueid, a light userdata) of one side to its
** partner on the other, both ways, so that two closures sharing a
** variable on one side share it on the other, and only then.
*/
static int fc_same_upvalue(lua_State *L, int a, int b, int i, int seen) {
  void *ua = lua_upvalueid(L, a, i), *ub = lua_upvalueid(L, b, i);
  int ok;
  lua_pushlightuserdata(L, ua);
  if (lua_rawget(L, seen) != LUA_TNIL) {
    ok = lua_touserdata(L, -1) == ub;
    lua_pop(L, 1);
    return ok;
  }
  lua_pop(L, 1);
  lua_pushlightuserdata(L, ub);
  if (lua_rawget(L, seen) != LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pop(L, 1);
  lua_pushlightuserdata(L, ua);
  lua_pushlightuserdata(L, ub);
  lua_rawset(L, seen);
  lua_pushlightuserdata(L, ub);
  lua_pushlightuserdata(L, ua);
  lua_rawset(L, seen);
  return 1;
}

/*
** seen[a]: 1 when it is b, 0 when another value; -1 when a is new (then
** seen[a] = b).
*/
static int fc_pair(lua_State *L, int a, int b, int seen) {
  int ok;
  lua_pushvalue(L, a);
  if (lua_rawget(L, seen) != LUA_TNIL) {
    ok = lua_rawequal(L, -1, b);
    lua_pop(L, 1);
    return ok;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, a);
  lua_pushvalue(L, b);
  lua_rawset(L, seen);
  return -1;
}

/*
** Whether the values at a and b are the same value. seen maps tables and
** functions of the first to their partners in the second: a second visit
** must find the same partner (sharing and cycles kept).
*/
static int fc_same(lua_State *L, int a, int b, int seen, int depth) {
  int t = lua_type(L, a), ok = 1, top = lua_gettop(L);
  if (t != lua_type(L, b)) return 0;
  if (depth > FC_DEEP) return 1; /* too deep to follow: cannot tell */
  if (!lua_checkstack(L, 16)) abort();
  switch (t) {
    case LUA_TNIL: return 1;
    case LUA_TBOOLEAN: return lua_toboolean(L, a) == lua_toboolean(L, b);
    case LUA_TNUMBER:
      if (lua_isinteger(L, a) != lua_isinteger(L, b)) return 0;
      if (lua_isinteger(L, a)) return lua_tointeger(L, a) == lua_tointeger(L, b);
      else {
        lua_Number x = lua_tonumber(L, a), y = lua_tonumber(L, b);
        return memcmp(&x, &y, sizeof x) == 0;
      }
    case LUA_TSTRING: return lua_rawequal(L, a, b);
    case LUA_TTABLE:
    case LUA_TFUNCTION:
      if (lua_rawequal(L, a, b)) return 1; /* _G, library tables, C functions */
      if ((ok = fc_pair(L, a, b, seen)) >= 0) return ok;
      ok = 1;
      break;
    case LUA_TUSERDATA: { /* plush.arrays: type and bytes, sharing kept */
      const plush_array *x = plush_array_test(L, a), *y = plush_array_test(L, b);
      if (!x || !y || x->type != y->type || x->n != y->n ||
          memcmp(x->data, y->data, x->n * plush_array_width(x->type)))
        return 0;
      return fc_pair(L, a, b, seen) != 0;
    }
    default: return 0; /* the decoder makes nothing else */
  }
  if (t == LUA_TFUNCTION) {
    int i;
    if (lua_iscfunction(L, a) || lua_iscfunction(L, b)) return 0;
    for (i = 1; ok; i++) {
      const char *na = lua_getupvalue(L, a, i), *nb;
      if (na == NULL) {
        ok = lua_getupvalue(L, b, i) == NULL;
        break;
      }
      nb = lua_getupvalue(L, b, i);
      ok = nb != NULL && fc_same_upvalue(L, a, b, i, seen) &&
           fc_same(L, top + 1, top + 2, seen, depth + 1);
      lua_settop(L, top);
    }
    lua_settop(L, top);
    return ok;
  }
  {
    lua_Integer na = 0, nb = 0;
    lua_pushnil(L);
    while (lua_next(L, b)) {
      lua_pop(L, 1);
      nb++;
    }
    lua_pushnil(L);
    while (ok && lua_next(L, a)) {
      int k = lua_gettop(L) - 1, kt = lua_type(L, k);
      na++;
      if (kt == LUA_TTABLE || kt == LUA_TFUNCTION || kt == LUA_TUSERDATA) {
        /* a key that is an object (a plush.array too): its partner, if
        ** already met */
        lua_pushvalue(L, k);
        if (lua_rawget(L, seen) == LUA_TNIL) {
          lua_pop(L, 2);
          continue;
        }
      } else {
        lua_pushvalue(L, k);
      }
      lua_rawget(L, b);
      ok = fc_same(L, k + 1, k + 2, seen, depth + 1);
      lua_settop(L, k);
    }
    lua_settop(L, top);
    return ok && na == nb;
  }
}

/*
** Whether the encoder's bytes for the value at idx depend on it alone:
** no function anywhere, and every table a pure sequence or of one key at
** most. seen starts with the tables that travel by name (package.loaded's
** and _G), which are canonical whatever they hold.
*/
static int fc_canonical(lua_State *L, int idx, int seen, int depth) {
  int t = lua_type(L, idx), top = lua_gettop(L), ok = 1;
  lua_Unsigned n, cnt = 0, out = 0;
  if (t == LUA_TFUNCTION) return 0;
  if (t != LUA_TTABLE) return 1;
  if (depth > FC_DEEP) return 0;
  if (!lua_checkstack(L, 8)) abort();
  lua_pushvalue(L, idx);
  if (lua_rawget(L, seen) != LUA_TNIL) {
    lua_settop(L, top);
    return 1;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, seen);
  n = lua_rawlen(L, idx);
  lua_pushnil(L);
  while (ok && lua_next(L, idx)) {
    int v = lua_gettop(L);
    cnt++;
    if (!lua_isinteger(L, v - 1) || lua_tointeger(L, v - 1) < 1 ||
        (lua_Unsigned)lua_tointeger(L, v - 1) > n)
      out++;
    ok = fc_canonical(L, v - 1, seen, depth + 1) &&
         fc_canonical(L, v, seen, depth + 1);
    lua_settop(L, v - 1);
  }
  lua_settop(L, top);
  return ok && (cnt <= 1 || (out == 0 && cnt == n));
}

/* Pushes {[t] = true} for _G and every table in package.loaded. */
static void fc_named(lua_State *L) {
  lua_newtable(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_pushboolean(L, 1);
      lua_rawset(L, -5);
    } else {
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = luaL_newstate();
  plush_buf e1 = PLUSH_BUF_INIT, e2 = PLUSH_BUF_INIT;
  char err[256];
  size_t used = (size_t)-1;
  int rc, top, canonical;
  if (L == NULL) return 0;
  luaL_openlibs(L);
  lua_pushliteral(L, "sentinel");
  top = lua_gettop(L);
  err[0] = 'x';
  rc = plush_decode(L, (const char *)data, size, &used, err, sizeof err);
  if (rc != 0) {
    fc_check(rc == PLUSH_ETRUNC || rc == PLUSH_ECORRUPT || rc == PLUSH_EDEPTH ||
             rc == PLUSH_ENOMEM);
    fc_check(lua_gettop(L) == top && err[0] != '\0' && strlen(err) < sizeof err);
    lua_close(L);
    return 0;
  }
  fc_check(lua_gettop(L) == top + 1 && used <= size);
  fc_named(L); /* top + 2 */
  canonical = fc_canonical(L, top + 1, top + 2, 0);
  lua_pop(L, 1);
  rc = plush_encode(L, top + 1, &e1, "value", err, sizeof err);
  /* The encoder measures nesting along its own walk, and walks a hash
  ** table in the order of its keys in memory, not in the input's: by
  ** that walk a shared sub-table may sit deeper than the decoder saw it.
  ** Refusing such a value as too deep is the encoder's right. */
  fc_check(rc == 0 || rc == PLUSH_ENOMEM || (rc == PLUSH_EDEPTH && !canonical));
  if (rc == 0) {
    size_t used2 = 0;
    fc_check(lua_gettop(L) == top + 1);
    rc = plush_decode(L, e1.data, e1.len, &used2, err, sizeof err);
    fc_check(rc == 0 || rc == PLUSH_ENOMEM);
    if (rc == 0) {
      fc_check(used2 == e1.len);
      lua_newtable(L); /* top + 3: seen */
      fc_check(fc_same(L, top + 1, top + 2, top + 3, 0));
      lua_pop(L, 1);
      rc = plush_encode(L, top + 2, &e2, "value", err, sizeof err);
      fc_check(rc == 0 || rc == PLUSH_ENOMEM ||
               (rc == PLUSH_EDEPTH && !canonical));
      if (rc == 0 && canonical) {
        fc_check(e2.len == e1.len && memcmp(e1.data, e2.data, e1.len) == 0);
      } else if (rc == 0) {
        /* Not canonical: the walk follows each state's hash order (Lua
        ** seeds its string hashes per state), so which place a shared
        ** table is written in full, and so how long the TABLE headers
        ** around it are (ext 8 or 16), may differ: enc2 need not be as
        ** long as enc1, but it must decode to the same value. */
        rc = plush_decode(L, e2.data, e2.len, &used2, err, sizeof err);
        fc_check(rc == 0 || rc == PLUSH_ENOMEM);
        if (rc == 0) {
          fc_check(used2 == e2.len);
          lua_newtable(L); /* top + 4: seen */
          fc_check(fc_same(L, top + 1, top + 3, top + 4, 0));
        }
      }
    }
  }
  plush_buf_free(&e1);
  plush_buf_free(&e2);
  lua_close(L);
  return 0;
}
