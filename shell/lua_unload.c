/*
** lua_unload.c — plush.core as a Lua module goes with the last state that
** required it: lua_close runs Lua's dlclose of build/lua/plush/core.so.
** An engine that called engine.client() ended with a segfault: its Lua
** thread, leaving after the close, ran the frame keep's thread-exit
** destructor (core/frame.c) in the unmapped library. A sentinel in the
** registry, collected before the library is closed (finalizers run newest
** first, the library list's among the first made), drops it. Built into
** the module only (PLUSH_LUA_MODULE); a program linking plush.core never
** unloads it, and gets a no-op.
*/
#include <stdatomic.h>

#include <lauxlib.h>

#include "frame.h"
#include "lua_core.h"

#ifdef PLUSH_LUA_MODULE
static atomic_int opens; /* states holding the module */

static int unload(lua_State *L) {
  (void)L;
  if (atomic_fetch_sub(&opens, 1) == 1) plush_frame_unload();
  return 0;
}

void plush_lua_unload_sentinel(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, "plush.core.unload") == LUA_TNIL) {
    lua_newuserdatauv(L, 0, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, unload);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "plush.core.unload");
    atomic_fetch_add(&opens, 1);
  }
  lua_pop(L, 1);
}
#else
void plush_lua_unload_sentinel(lua_State *L) { (void)L; }
#endif
