/*
** engine_chunk.c — exec's chunks, compiled once. The same code sent again
** (a `%px` repeated, a loop of executes) is not parsed again: from its
** second run on, it loads from the bytecode lua_dump made of its first
** compilation (with its debug information: same source name, same lines).
** Loading bytecode makes a new function, with its own _ENV upvalue set to
** the globals, exactly as loading the text does: nothing is shared between
** runs but the text's compiled form. Only code that compiled is kept;
** user code itself is still only ever text ("t"): bytecode is loaded only
** from this cache, which only this file writes.
**
** The cache is a registry table, text -> name "\0" bytecode (or true, seen
** once: code run once is not dumped). At most CHUNK_ENTRIES entries of at
** most CHUNK_MAX bytes of text each (a new one past that starts it anew);
** it counts in engine.memory_used() and goes with the namespace (RESTART).
*/
#include <string.h>

#include <lauxlib.h>

#include "engine_int.h"

#define CHUNK_MAX 2048
#define CHUNK_ENTRIES 64

static const char cachekey = 'k';

typedef struct dumpst {
  luaL_Buffer b;
  const char *name;
  int init;
} dumpst;

/* As lstrlib's str_dump: the buffer starts in the writer, once the
** function no longer needs to be on top. */
static int writer(lua_State *L, const void *p, size_t n, void *ud) {
  dumpst *d = ud;
  if (!d->init) {
    d->init = 1;
    luaL_buffinit(L, &d->b);
    luaL_addstring(&d->b, d->name);
    luaL_addchar(&d->b, '\0');
  }
  luaL_addlstring(&d->b, p, n);
  return 0;
}

/*
** Under the task's protected call (engine work: its allocations may
** raise only when the machine is out of memory). cache[code] = the entry
** for the function on top, or true the first time.
*/
static void remember(plush_engine *e, lua_State *L, int cache, int code,
                     int seen, const char *name) {
  if (!seen && e->chunks >= CHUNK_ENTRIES) { /* full: start anew */
    lua_createtable(L, 0, CHUNK_ENTRIES);
    lua_replace(L, cache);
    lua_pushvalue(L, cache);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cachekey);
    e->chunks = 0;
  }
  lua_pushvalue(L, code);
  if (!seen) {
    lua_pushboolean(L, 1);
    e->chunks++;
  } else {
    dumpst d = {.name = name};
    lua_pushvalue(L, -2); /* the function */
    if (lua_dump(L, writer, &d, 0) != 0 || !d.init) {
      lua_settop(L, lua_gettop(L) - 2);
      return;
    }
    luaL_pushresult(&d.b);
    lua_remove(L, -2); /* the function's copy */
  }
  lua_rawset(L, cache);
}

int eng_chunk_load(lua_State *L, int code, const char *name) {
  plush_engine *e = eng_self(L);
  size_t len, vl;
  const char *src = lua_tolstring(L, code, &len), *v;
  int cache, seen, st;
  if (len > CHUNK_MAX) return luaL_loadbufferx(L, src, len, name, "t");
  code = lua_absindex(L, code);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &cachekey) != LUA_TTABLE) {
    lua_pop(L, 1); /* a new namespace: a new cache */
    lua_createtable(L, 0, CHUNK_ENTRIES);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cachekey);
    e->chunks = 0;
  }
  cache = lua_gettop(L);
  lua_pushvalue(L, code);
  if (lua_rawget(L, cache) == LUA_TSTRING) {
    size_t nl;
    v = lua_tolstring(L, -1, &vl);
    nl = strlen(v);
    if (strcmp(v, name) == 0 &&
        luaL_loadbufferx(L, v + nl + 1, vl - nl - 1, name, "b") == LUA_OK) {
      lua_replace(L, cache);
      lua_settop(L, cache);
      return LUA_OK;
    }
    lua_settop(L, cache + 1); /* another name (or unloadable): anew */
  }
  seen = !lua_isnil(L, -1);
  lua_pop(L, 1);
  st = luaL_loadbufferx(L, src, len, name, "t");
  if (st == LUA_OK) remember(e, L, cache, code, seen, name);
  lua_replace(L, cache); /* the function, or the error */
  lua_settop(L, cache);
  return st;
}
