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

/*
** An OK reply whose payload is a small map of r, started, completed and
** tostring (no reference inside) goes into the list at the top as 7
** plain values, at *n + 1 .. *n + 7: its id (an integer: events are
** tables), engine, attempts, r, started, completed, tostring, false for
** those absent (*n advanced; returns 1). Any other frame: 0, nothing
** added (its event table is made as usual).
*/
int plush_lua_addreply(lua_State *L, plush_frame *f, lua_Integer *n);
/* The fields of an OK reply's map, in the order those two push them. */
extern const char *const plush_lua_replykeys[4];

/*
** Firing a plain task's Deferred from its OK reply (lua_settle.c). The
** keys it reads and sets are upvalues 2 .. 1 + PLUSH_SETTLE_KEYS of
** conn:poll (plush_lua_settle_keys pushes them, for its closure). s: the
** indices of the client's pending table (id -> Deferred), of the shared
** NONE and of the Deferred metatable; now, 0 until a reply needs the
** time it was received (one clock read a poll). 1: fired, nothing left
** for Lua; 0: nothing done.
*/
#define PLUSH_SETTLE_KEYS 17
typedef struct plush_settle {
  int pending, none, meta;
  double now;
} plush_settle;
void plush_lua_settle_keys(lua_State *L);
int plush_lua_settle(lua_State *L, plush_frame *f, plush_settle *s);

/* conn:sink (a map chunk's reply decoded in place), and the event of a
** frame when the conn has sinks (the table at index sinks). */
int plush_lua_sink(lua_State *L);
int plush_lua_pushevent_sunk(lua_State *L, int sinks, plush_frame *f);

/* The frame (type, an id to set) of the value at idx, encoded straight
** into its allocation, after the options at optsidx (0: none); nargs >= 0:
** the apply of the function at idx to the nargs values from a0 on;
** nargs == PLUSH_LUA_EXEC: the exec of the code string at idx, its name
** (string or nil) at a0, auto when a0 + 1 is true. Raises on a value that
** cannot travel or a frame too large. */
#define PLUSH_LUA_EXEC (-2)
plush_frame *plush_lua_encodeframe(lua_State *L, int idx, const char *root,
                                   uint8_t type, int optsidx, int a0, int nargs);

/* core.encode, core.decode, core.slice. */
extern const luaL_Reg plush_codec_funcs[];

#endif
