/*
** engine_mr.c — the C side of view:mapreduce's engine task
** (lua/plush/mapreduce.lua): what map emits, kept by key, and the pass
** that groups it by owning engine. Registry functions, looked up by the
** task (debug.getregistry), never seen in the user's namespace.
**
**   new(combine, fold) -> emit, acc
**     emit(k, v): v kept with key k (a nil v is dropped; a nil or NaN k
**     raises "index is nil"/"index is NaN", as a table would); when k has
**     `fold` values and combine is a function, they are replaced by what
**     combine(k, values) returns (every non-nil result, in order).
**   group(acc, nparts, n, own, full, ctx) -> vals, lists
**     every key's owner ((hash % nparts) % n + 1). own's keys stay;
**     another owner o's keys go to vals[o] (one value, or what combine
**     made of several; nil: an empty list in lists[o]) or lists[o] (the
**     values, without combine); full(o, vals[o], lists[o]) is called when
**     they hold CHUNK keys (then new tables). ctx[1] is the key combine
**     is called for. A key that is not a string, number or boolean
**     raises the task's error table (what = "emit").
**   add(acc, v, m, before): another engine's values of own keys (key ->
**     value in v, key -> list in m), put before the key's values or
**     after them.
**   own(acc) -> mine: own's keys, each with the list of its values (an
**     empty list when combine gave nil).
**
** A key's values are a chain through one value array: K maps a key to
** its slot; a slot has the first and last value of the chain and their
** count; a value has the next one's id, and is a number kept in place
** or anything else kept in V at its id (a Lua table, so the collector
** sees it). No table a key until the grouping pass, which makes each
** list at its final size. Values freed by a fold are reused.
*/
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <lauxlib.h>

#include "engine_int.h"

/* How many keys one shuffle message carries at most. */
#define CHUNK 8192

typedef struct {
  int32_t head, tail, count, own; /* own: the key is this engine's */
} mr_slot;

/* A value: a number here, anything else in V at the value's id. */
enum { MR_INT, MR_FLT, MR_REF };
typedef struct {
  union {
    lua_Integer i;
    lua_Number n;
  } u;
  int32_t next; /* the chain's next value, 0 at its end; a free value's
                   next free one */
  int32_t tag;
} mr_val;

typedef struct {
  mr_slot *slots; /* [1 .. nslots] (uservalue 1) */
  mr_val *vals;   /* [1 .. nvals] (uservalue 2) */
  int32_t nslots, capslots, nvals, capvals, freelist, fold, closed, nown;
} mr_acc;

/* upvalues of emit */
#define ACC lua_upvalueindex(1)
#define KEYS lua_upvalueindex(2)
#define VALS lua_upvalueindex(3)
#define COMBINE lua_upvalueindex(4)

/* ---- buffers ----------------------------------------------------- */

/* A buffer of n*size bytes as uservalue uv of the acc at idx, holding
** the old one's first used*size bytes. */
static void *regrow(lua_State *L, int idx, int uv, const void *old, size_t used,
                    size_t n, size_t size) {
  void *p = lua_newuserdatauv(L, n * size, 0);
  if (used) memcpy(p, old, used * size);
  lua_setiuservalue(L, idx, uv);
  return p;
}

/* A slot for a new key; ai: the acc's index. */
static int32_t newslot(lua_State *L, mr_acc *a, int ai) {
  if (a->nslots + 1 >= a->capslots) {
    if (a->capslots > INT32_MAX / 2) luaL_error(L, "mapreduce: too many keys");
    int32_t cap = a->capslots * 2;
    a->slots = regrow(L, ai, 1, a->slots, (size_t)a->nslots + 1, (size_t)cap,
                      sizeof *a->slots);
    a->capslots = cap;
  }
  a->nslots++;
  memset(&a->slots[a->nslots], 0, sizeof *a->slots);
  return a->nslots;
}

/* A value id for the value at index v (a number kept in place, anything
** else stored in V, at index vi); ai: the acc's index. */
static int32_t newval(lua_State *L, mr_acc *a, int ai, int vi, int v) {
  int32_t id = a->freelist;
  if (id) {
    a->freelist = a->vals[id].next;
  } else {
    if (a->nvals + 1 >= a->capvals) {
      if (a->capvals > INT32_MAX / 2) luaL_error(L, "mapreduce: too many values");
      int32_t cap = a->capvals * 2;
      a->vals =
          regrow(L, ai, 2, a->vals, (size_t)a->nvals + 1, (size_t)cap, sizeof *a->vals);
      a->capvals = cap;
    }
    id = ++a->nvals;
  }
  mr_val *x = &a->vals[id];
  x->next = 0;
  if (lua_isinteger(L, v)) {
    x->tag = MR_INT;
    x->u.i = lua_tointeger(L, v);
  } else if (lua_type(L, v) == LUA_TNUMBER) {
    x->tag = MR_FLT;
    x->u.n = lua_tonumber(L, v);
  } else {
    x->tag = MR_REF;
    lua_pushvalue(L, v);
    lua_rawseti(L, vi, id);
  }
  return id;
}

/* Appends the value at index v to slot s's chain, or puts it first. */
static void append(lua_State *L, mr_acc *a, int ai, int vi, int32_t s, int v) {
  int32_t id = newval(L, a, ai, vi, v);
  mr_slot *sl = &a->slots[s];
  if (sl->count == 0)
    sl->head = id;
  else
    a->vals[sl->tail].next = id;
  sl->tail = id;
  sl->count++;
}

static void prepend(lua_State *L, mr_acc *a, int ai, int vi, int32_t s, int v) {
  int32_t id = newval(L, a, ai, vi, v);
  mr_slot *sl = &a->slots[s];
  if (sl->count == 0) sl->tail = id;
  a->vals[id].next = sl->head;
  sl->head = id;
  sl->count++;
}

/* Pushes value id. vals: V's index. */
static void pushval(lua_State *L, const mr_acc *a, int vals, int32_t id) {
  const mr_val *x = &a->vals[id];
  if (x->tag == MR_INT)
    lua_pushinteger(L, x->u.i);
  else if (x->tag == MR_FLT)
    lua_pushnumber(L, x->u.n);
  else
    lua_rawgeti(L, vals, id);
}

/* Pushes slot s's values as a list; with release, empties the chain
** (V's entries cleared, the ids freed). vals: V's index. */
static void pushlist(lua_State *L, mr_acc *a, int vals, int32_t s, int release) {
  mr_slot *sl = &a->slots[s];
  lua_createtable(L, sl->count, 0);
  int32_t id = sl->head;
  for (int32_t i = 1; i <= sl->count; i++) {
    pushval(L, a, vals, id);
    lua_rawseti(L, -2, i);
    mr_val *x = &a->vals[id];
    int32_t next = x->next;
    if (release) {
      if (x->tag == MR_REF) {
        lua_pushnil(L);
        lua_rawseti(L, vals, id);
      }
      x->next = a->freelist;
      a->freelist = id;
    }
    id = next;
  }
  if (release) sl->head = sl->tail = sl->count = 0;
}

/* ---- emit -------------------------------------------------------- */

static int emit(lua_State *L) {
  mr_acc *a = lua_touserdata(L, ACC);
  lua_settop(L, 2);
  switch (lua_type(L, 1)) {
  case LUA_TNIL:
    return luaL_error(L, "index is nil");
  case LUA_TNUMBER:
    if (!lua_isinteger(L, 1) && isnan(lua_tonumber(L, 1)))
      return luaL_error(L, "index is NaN");
    break;
  default:
    break;
  }
  if (a->closed) return luaL_error(L, "mapreduce: emit called after the map ended");
  if (lua_isnil(L, 2)) return 0;
  lua_pushvalue(L, 1);
  int32_t s;
  if (lua_rawget(L, KEYS) == LUA_TNIL) {
    s = newslot(L, a, ACC);
    lua_pushvalue(L, 1);
    lua_pushinteger(L, s);
    lua_rawset(L, KEYS);
  } else {
    s = (int32_t)lua_tointeger(L, 3);
  }
  append(L, a, ACC, VALS, s, 2);
  if (a->slots[s].count >= a->fold && !lua_isnil(L, COMBINE)) {
    /* combine(k, values): its non-nil results are the key's values now */
    lua_settop(L, 2);
    lua_pushvalue(L, COMBINE);
    lua_pushvalue(L, 1);
    pushlist(L, a, VALS, s, 1);
    lua_call(L, 2, LUA_MULTRET);
    luaL_checkstack(L, 2, "too many results of combine"); /* newval pushes one */
    int top = lua_gettop(L);
    for (int i = 3; i <= top; i++)
      if (!lua_isnil(L, i)) append(L, a, ACC, VALS, s, i);
  }
  return 0;
}

/* new(combine, fold) -> emit, acc */
static int mr_new(lua_State *L) {
  int fold = (int)luaL_checkinteger(L, 2);
  mr_acc *a = lua_newuserdatauv(L, sizeof *a, 5); /* slots, vals, K, V, combine */
  memset(a, 0, sizeof *a);
  luaL_setmetatable(L, "plush.mr");
  a->fold = fold < 1 ? 1 : fold;
  a->capslots = a->capvals = 1024;
  int acc = lua_gettop(L);
  a->slots = regrow(L, acc, 1, NULL, 0, (size_t)a->capslots, sizeof *a->slots);
  a->vals = regrow(L, acc, 2, NULL, 0, (size_t)a->capvals, sizeof *a->vals);
  lua_pushvalue(L, acc);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, acc, 3);
  lua_createtable(L, 1024, 0);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, acc, 4);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, acc, 5);
  lua_pushcclosure(L, emit, 4);
  lua_pushvalue(L, acc);
  return 2;
}

/* ---- the grouping pass ------------------------------------------- */

/* Lua's a % b for b > 0 */
static lua_Integer fmod_(lua_Integer a, lua_Integer b) {
  lua_Integer m = a % b;
  return m < 0 ? m + b : m;
}

/* The hash of mapreduce.lua's owner: a string's length and first and
** last 8 bytes, in 31s (wrapping as Lua integers do), to 31 bits; an
** integer itself; a float its integer value or its bits; a boolean 1/0.
** Raises the task's error table for any other key. */
static lua_Integer keyhash(lua_State *L, int k) {
  switch (lua_type(L, k)) {
  case LUA_TSTRING: {
    size_t len;
    const unsigned char *s = (const unsigned char *)lua_tolstring(L, k, &len);
    uint64_t h = len;
    for (size_t i = 0; i < 8; i++) h = h * 31u + (i < len ? s[i] : 0u);
    if (len > 8) {
      size_t from = len > 16 ? len - 8 : 8;
      for (size_t i = 0; i < 8; i++) h = h * 31u + (from + i < len ? s[from + i] : 0u);
    }
    return (lua_Integer)(h & 0x7fffffffu);
  }
  case LUA_TNUMBER:
    if (lua_isinteger(L, k)) return lua_tointeger(L, k);
    {
      int isint;
      lua_Integer i = lua_tointegerx(L, k, &isint);
      if (isint) return i;
      double d = lua_tonumber(L, k);
      int64_t bits;
      memcpy(&bits, &d, sizeof bits);
      return (lua_Integer)bits;
    }
  case LUA_TBOOLEAN:
    return lua_toboolean(L, k);
  default: {
    const char *t = luaL_typename(L, k);
    lua_createtable(L, 0, 4);
    lua_pushliteral(L, "error");
    lua_setfield(L, -2, "plush.spmd");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "traceback");
    lua_pushliteral(L, "emit");
    lua_setfield(L, -2, "what");
    lua_pushfstring(L, "a key is a string, a number or a boolean, not a %s", t);
    lua_setfield(L, -2, "message");
    return lua_error(L);
  }
  }
}

/* group(acc, nparts, n, own, full, ctx) -> vals, lists */
static int mr_group(lua_State *L) {
  mr_acc *a = luaL_checkudata(L, 1, "plush.mr");
  lua_Integer nparts = luaL_checkinteger(L, 2), n = luaL_checkinteger(L, 3);
  lua_Integer own = luaL_checkinteger(L, 4);
  luaL_checktype(L, 5, LUA_TFUNCTION);
  luaL_checktype(L, 6, LUA_TTABLE);
  luaL_argcheck(L, nparts >= 1 && n >= 1 && n <= 1 << 20, 2, "bad sizes");
  a->closed = 1;
  lua_settop(L, 6);
  lua_getiuservalue(L, 1, 3);    /* 7: K */
  lua_getiuservalue(L, 1, 4);    /* 8: V */
  lua_getiuservalue(L, 1, 5);    /* 9: combine or nil */
  lua_createtable(L, (int)n, 0); /* 10: vals */
  lua_createtable(L, (int)n, 0); /* 11: lists */
  int per = (int)(a->nslots / n + 1), hint = per < CHUNK ? per : CHUNK;
  for (lua_Integer o = 1; o <= n; o++) {
    lua_createtable(L, 0, o == own ? 0 : hint);
    lua_rawseti(L, 10, o);
    lua_newtable(L);
    lua_rawseti(L, 11, o);
  }
  lua_Integer *filled =
      lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *filled, 0); /* 12 */
  memset(filled, 0, (size_t)(n + 1) * sizeof *filled);
  lua_pushnil(L);
  while (lua_next(L, 7)) { /* key -2 (13), slot -1 (14) */
    int32_t s = (int32_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_Integer o = fmod_(fmod_(keyhash(L, 13), nparts), n) + 1;
    mr_slot *sl = &a->slots[s];
    if (o == own) { /* stays here, for mr_add and mr_own */
      if (!sl->own) a->nown++;
      sl->own = 1;
      continue;
    }
    lua_pushvalue(L, 13);
    int into = 11; /* lists */
    if (sl->count == 1) {
      pushval(L, a, 8, sl->head);
      into = 10;
    } else {
      pushlist(L, a, 8, s, 0);
      if (sl->count > 1 && !lua_isnil(L, 9)) {
        lua_pushvalue(L, 13);
        lua_rawseti(L, 6, 1); /* ctx[1]: the key, for an error's message */
        lua_pushvalue(L, 9);
        lua_insert(L, -2);
        lua_pushvalue(L, 13);
        lua_insert(L, -2);
        lua_call(L, 2, 1);
        if (lua_isnil(L, -1)) {
          lua_pop(L, 1);
          lua_newtable(L);
        } else {
          into = 10;
        }
      }
    }
    lua_rawgeti(L, into, o);
    lua_insert(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    if (++filled[o] == CHUNK) {
      lua_pushvalue(L, 5);
      lua_pushinteger(L, o);
      lua_rawgeti(L, 10, o);
      lua_rawgeti(L, 11, o);
      lua_call(L, 3, 0);
      lua_createtable(L, 0, hint);
      lua_rawseti(L, 10, o);
      lua_newtable(L);
      lua_rawseti(L, 11, o);
      filled[o] = 0;
    }
  }
  lua_pushvalue(L, 10);
  lua_pushvalue(L, 11);
  return 2;
}

/* The slot of own key k (at index k), made when new. K at ki. */
static int32_t ownslot(lua_State *L, mr_acc *a, int ki, int k) {
  lua_pushvalue(L, k);
  int32_t s;
  if (lua_rawget(L, ki) == LUA_TNIL) {
    s = newslot(L, a, 1);
    lua_pushvalue(L, k);
    lua_pushinteger(L, s);
    lua_rawset(L, ki);
  } else {
    s = (int32_t)lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  if (!a->slots[s].own) a->nown++;
  a->slots[s].own = 1;
  return s;
}

/* add(acc, v, m, before): another engine's values of this engine's keys
** (v: key -> value, m: key -> list), put before the key's values (in
** their order) or after them. The engines before this one in target
** order are added nearest first, so that the first ends up first. */
static int mr_add(lua_State *L) {
  mr_acc *a = luaL_checkudata(L, 1, "plush.mr");
  int before = lua_toboolean(L, 4);
  lua_settop(L, 4);
  lua_getiuservalue(L, 1, 3); /* 5: K */
  lua_getiuservalue(L, 1, 4); /* 6: V */
  if (lua_istable(L, 2)) {
    lua_pushnil(L);
    while (lua_next(L, 2)) { /* key 7, value 8 */
      int32_t s = ownslot(L, a, 5, 7);
      (before ? prepend : append)(L, a, 1, 6, s, 8);
      lua_pop(L, 1);
    }
  }
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) { /* key 7, list 8 */
      int32_t s = ownslot(L, a, 5, 7);
      luaL_checktype(L, 8, LUA_TTABLE);
      lua_Integer len = (lua_Integer)lua_rawlen(L, 8);
      for (lua_Integer i = 0; i < len; i++) {
        lua_rawgeti(L, 8, before ? len - i : i + 1);
        if (!lua_isnil(L, -1)) (before ? prepend : append)(L, a, 1, 6, s, 9);
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
  }
  return 0;
}

/* own(acc) -> mine: this engine's keys, each with the list of its
** values (an empty list when combine gave nil), made at its size. */
static int mr_own(lua_State *L) {
  mr_acc *a = luaL_checkudata(L, 1, "plush.mr");
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, 3);     /* 2: K */
  lua_getiuservalue(L, 1, 4);     /* 3: V */
  lua_createtable(L, 0, a->nown); /* 4: mine */
  lua_pushnil(L);
  while (lua_next(L, 2)) { /* key 5, slot 6 */
    int32_t s = (int32_t)lua_tointeger(L, 6);
    lua_pop(L, 1);
    if (!a->slots[s].own) continue;
    lua_pushvalue(L, 5);
    pushlist(L, a, 3, s, 0);
    lua_rawset(L, 4);
  }
  return 1;
}

/* ---- registration ------------------------------------------------ */

void eng_mr_open(lua_State *L) {
  luaL_newmetatable(L, "plush.mr");
  lua_pop(L, 1);
  lua_pushcfunction(L, mr_new);
  lua_setfield(L, LUA_REGISTRYINDEX, "plush.mr.new");
  lua_pushcfunction(L, mr_group);
  lua_setfield(L, LUA_REGISTRYINDEX, "plush.mr.group");
  lua_pushcfunction(L, mr_add);
  lua_setfield(L, LUA_REGISTRYINDEX, "plush.mr.add");
  lua_pushcfunction(L, mr_own);
  lua_setfield(L, LUA_REGISTRYINDEX, "plush.mr.own");
}
