/*
** lua_core.h — the plush.core Lua C module (client transport, codec,
** process helpers). See share/doc/design.md for the Lua-side interface.
*/
#ifndef PLUSH_LUA_CORE_H
#define PLUSH_LUA_CORE_H

#include <lua.h>

int luaopen_plush_core(lua_State *L);

#endif
