/*
** lua_sys.h — plush.core's clock, process, codec and SIGINT functions,
** added to the module's table by luaopen_plush_core; its event tables.
*/
#ifndef PLUSH_LUA_SYS_H
#define PLUSH_LUA_SYS_H

#include <lauxlib.h>

#include "frame.h"
#include "plush.h"

extern const luaL_Reg plush_sys_funcs[];

/* lua_event.c: pushes the event table for frame f (a REPLY, CTRL_REPLY,
** OUTPUT or EVENT) and returns 1; 0, with nothing pushed, for other
** types. A payload that does not decode becomes an error table, so that
** a reply is never lost. */
PLUSH_INTERNAL int plush_lua_pushevent(lua_State *L, plush_frame *f);

#endif
