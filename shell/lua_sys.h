/*
** lua_sys.h — plush.core's clock and process functions, added to the
** module's table by luaopen_plush_core.
*/
#ifndef PLUSH_LUA_SYS_H
#define PLUSH_LUA_SYS_H

#include <lauxlib.h>
#include <time.h>

extern const luaL_Reg plush_sys_funcs[];

/* Clock id's time in seconds (core.now: CLOCK_MONOTONIC, core.time:
** CLOCK_REALTIME). */
double plush_lua_clock(clockid_t id);

#endif
