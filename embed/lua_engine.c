/*
** lua_engine.c — the Lua module `plush.engine` (plush.h): a program that
** hosts Lua but not C makes its state an engine.
**
**   local h = assert(require "plush.engine".attach(connfile))
**   while h:serve(1) do ... end   -- requests run only inside serve
**   h:detach()
**
** The script keeps the state to itself (the state lock, plush.h) except
** while it waits in h:serve(seconds): requests then run on the state's
** main thread. attach, serve and detach answer nil, message on bad input.
*/
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "plush.h"

#define HANDLE "plush.engine.attachment"

typedef struct handle {
  plush_attachment *a; /* NULL once detached */
} handle;

static int failed(lua_State *L, const char *what) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", what, plush_embed_errmsg());
  return 2;
}

static double optnum(lua_State *L, int t, const char *k, double d) {
  double v;
  if (lua_getfield(L, t, k) == LUA_TNIL) v = d;
  else if (lua_isnumber(L, -1)) v = lua_tonumber(L, -1);
  else return luaL_error(L, "plush.engine.attach: option %s must be a number", k), 0;
  lua_pop(L, 1);
  return v;
}

/* attach([connfile [, {id =, timeout =, reconnect =, quiet =}]]) */
static int l_attach(lua_State *L) {
  plush_attach_opts o;
  lua_State *main;
  handle *h;
  char *file = NULL;
  int rc;
  memset(&o, 0, sizeof o);
  if (!lua_isnoneornil(L, 1)) luaL_checkstring(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_getfield(L, 2, "id") != LUA_TNIL) {
      o.id = (int)luaL_checkinteger(L, -1);
      o.id_set = 1;
    }
    lua_pop(L, 1);
    o.timeout = optnum(L, 2, "timeout", 0);
    o.reconnect = optnum(L, 2, "reconnect", 0);
    lua_getfield(L, 2, "quiet");
    o.quiet = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  if (!lua_isnoneornil(L, 1) &&
      (file = strdup(lua_tostring(L, 1))) == NULL)
    return luaL_error(L, "plush.engine.attach: out of memory");
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  main = lua_tothread(L, -1);
  lua_pop(L, 1);
  h = lua_newuserdatauv(L, sizeof *h, 0);
  h->a = NULL;
  luaL_setmetatable(L, HANDLE);
  /* From here until the lock is ours the engine may serve on main: this
  ** thread touches no Lua state. */
  rc = plush_engine_attach(main, file, &o, &h->a);
  free(file);
  if (rc < 0) return failed(L, "plush.engine.attach");
  plush_engine_lock(h->a);
  return 1;
}

static handle *checkh(lua_State *L) {
  return luaL_checkudata(L, 1, HANDLE);
}

/* h:serve([seconds]): lets requests run; true while the engine lives. */
static int l_serve(lua_State *L) {
  handle *h = checkh(L);
  double secs = luaL_optnumber(L, 2, -1);
  plush_attachment *a = h->a;
  int ended;
  if (a == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "plush.engine: serve after detach");
    return 2;
  }
  if (plush_engine_unlock(a) < 0) return failed(L, "plush.engine: serve");
  ended = plush_engine_wait(a, secs);
  plush_engine_lock(a);
  lua_pushboolean(L, ended == 0);
  return 1;
}

static int l_detach(lua_State *L) {
  handle *h = checkh(L);
  plush_attachment *a = h->a;
  if (a == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "plush.engine: detach: not attached (detached already)");
    return 2;
  }
  h->a = NULL;
  if (plush_engine_detach(a) < 0) {
    h->a = a;
    return failed(L, "plush.engine: detach");
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_id(lua_State *L) {
  handle *h = checkh(L);
  int id;
  if (h->a == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "plush.engine: id: not attached");
    return 2;
  }
  if ((id = plush_attach_id(h->a)) < 0) return failed(L, "plush.engine: id");
  lua_pushinteger(L, id);
  return 1;
}

static int l_gc(lua_State *L) {
  handle *h = checkh(L);
  if (h->a) {
    plush_attachment *a = h->a;
    h->a = NULL;
    plush_engine_detach(a);
  }
  return 0;
}

static int l_tostring(lua_State *L) {
  handle *h = checkh(L);
  lua_pushfstring(L, "plush.engine attachment (%s)",
                  h->a ? "attached" : "detached");
  return 1;
}

int luaopen_plush_engine(lua_State *L) {
  static const luaL_Reg methods[] = {{"serve", l_serve},
                                     {"detach", l_detach},
                                     {"id", l_id},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", l_gc},
                                  {"__close", l_gc},
                                  {"__tostring", l_tostring},
                                  {NULL, NULL}};
  if (luaL_newmetatable(L, HANDLE)) {
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, l_attach);
  lua_setfield(L, -2, "attach");
  lua_pushliteral(L, "plush.engine 0.1");
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
