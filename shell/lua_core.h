/*
** lua_core.h — the plush.core Lua C module (client transport, codec,
** process helpers). See share/doc/design.md for the Lua-side interface.
*/
#ifndef PLUSH_LUA_CORE_H
#define PLUSH_LUA_CORE_H

#include <lua.h>
#include <uv.h>

int luaopen_plush_core(lua_State *L);

/* lua_unload.c: in the module build, a registry sentinel whose collection
** (before Lua unloads the library) drops the frame keep's thread-exit
** destructor; elsewhere nothing. */
void plush_lua_unload_sentinel(lua_State *L);

/* lua_spin.c: runs loop without sleeping, yielding between turns, until
** awake(ud) or PLUSH_SPIN_US (default 100 us; at most t seconds when t > 0)
** have passed: the first moments of a wait, met awake. */
void plush_lua_spin(uv_loop_t *loop, double t, int (*awake)(void *),
                    void *ud);

#endif
