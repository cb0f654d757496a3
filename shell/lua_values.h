/*
** lua_values.h — plush.core's events and codec functions (lua_values.c).
*/
#ifndef PLUSH_LUA_VALUES_H
#define PLUSH_LUA_VALUES_H

#include <lauxlib.h>

#include "frame.h"

static inline void plush_lua_setstr(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static inline void plush_lua_setint(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

/*
** Pushes the event table for frame f (reply, ctrl, output, event: see
** share/doc/design.md, "plush.core"); 0, nothing pushed, for other
** types. A payload that does not decode becomes an error in its place,
** so that a reply is never lost.
*/
int plush_lua_pushevent(lua_State *L, plush_frame *f);

/* conn:sink (a map chunk's reply decoded in place), and the event of a
** frame when the conn has sinks (the table at index sinks). */
int plush_lua_sink(lua_State *L);
int plush_lua_pushevent_sunk(lua_State *L, int sinks, plush_frame *f);

/* core.encode, core.decode, core.slice. */
extern const luaL_Reg plush_codec_funcs[];

#endif
