/*
** lua_sys.h — plush.core's clock and process functions, added to the
** module's table by luaopen_plush_core.
*/
#ifndef PLUSH_LUA_SYS_H
#define PLUSH_LUA_SYS_H

#include <lauxlib.h>

extern const luaL_Reg plush_sys_funcs[];

#endif
