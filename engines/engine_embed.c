/*
** engine_embed.c — an embedder's own lua_State as the namespace
** (plush_engine_opts.state, embed/plush.h's plush_engine_attach). The
** engine adopts the state instead of building one: what it changes in it
** (the extra space, print, io.write and file:write, io.close,
** os.execute, os.exit, coroutine.resume and wrap, the global `engine`,
** any hook) is noted here and given back when the engine ends, so the
** program keeps its state as it was. Lua thread, under o.statelock.
*/
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "engine_int.h"
#include "log.h"
#include "plush.h"

static int savedkey; /* registry: {extra = lightuserdata, print = print} */

/*
** What the state's extra space points at after the engine has gone, when
** it held NULL before (lua5.4 and most hosts leave it so): an engine
** that never runs a task, so that an engine function the program kept
** (a `local p = print` taken while attached, or print fetched before
** the call that detaches was evaluated) behaves as the standard one
** instead of reaching freed memory. Its mutex is glibc's zero initial
** state.
*/
static plush_engine detached;

static int save(lua_State *L) {
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "extra");
  lua_getglobal(L, "print");
  lua_setfield(L, -2, "print");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &savedkey);
  return 0;
}

lua_State *eng_adopt(plush_engine *e, lua_CFunction build) {
  lua_State *L = e->o.state;
  void *extra;
  int top = lua_gettop(L);
  memcpy(&extra, lua_getextraspace(L), sizeof extra);
  lua_pushcfunction(L, save);
  lua_pushlightuserdata(L, extra);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    snprintf(e->luaerr, sizeof e->luaerr, "cannot adopt the state: %s",
             lua_tostring(L, -1));
    lua_settop(L, top);
    return NULL;
  }
  *(plush_engine **)lua_getextraspace(L) = e;
  lua_pushcfunction(L, build);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    snprintf(e->luaerr, sizeof e->luaerr,
             "cannot make the state an engine: %s", lua_tostring(L, -1));
    lua_settop(L, top);
    eng_giveback(e, L);
    return NULL;
  }
  lua_settop(L, top);
  return L;
}

/* mod[name] = the original kept as orig, when both are there. */
static void put(lua_State *L, int t, const char *name, const char *orig) {
  if (!lua_istable(L, t)) return;
  eng_pushorig(L, orig);
  if (lua_isnil(L, -1))
    lua_pop(L, 1);
  else
    lua_setfield(L, t, name);
}

/* Under pcall: the extra space and print first, then the libraries. */
static int restore(lua_State *L) {
  int loaded;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &savedkey) == LUA_TTABLE) {
    void *extra;
    lua_getfield(L, -1, "extra");
    extra = lua_touserdata(L, -1);
    if (extra == NULL) extra = &detached;
    memcpy(lua_getextraspace(L), &extra, sizeof extra);
    lua_getfield(L, -2, "print");
    lua_setglobal(L, "print");
    lua_pop(L, 2);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &savedkey);
  }
  lua_pushnil(L);
  lua_setglobal(L, "engine");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  loaded = lua_gettop(L);
  lua_getfield(L, loaded, LUA_IOLIBNAME);
  put(L, loaded + 1, "write", "write");
  put(L, loaded + 1, "close", "ioclose");
  lua_getfield(L, loaded, LUA_OSLIBNAME);
  put(L, loaded + 2, "execute", "osexecute");
  put(L, loaded + 2, "exit", "os.exit");
  lua_getfield(L, loaded, LUA_COLIBNAME);
  put(L, loaded + 3, "resume", "resume");
  put(L, loaded + 3, "wrap", "wrap");
  luaL_getmetatable(L, LUA_FILEHANDLE);
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "__index");
    put(L, lua_gettop(L), "write", "filewrite");
    put(L, lua_gettop(L), "close", "fileclose");
  }
  return 0;
}

void eng_giveback(plush_engine *e, lua_State *L) {
  int top = lua_gettop(L);
  lua_sethook(L, NULL, 0, 0);
  eng_co_close(e, L);
  lua_pushcfunction(L, restore);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK)
    plush_warn("engine %u: giving the state back: %s", e->nsid,
               lua_tostring(L, -1));
  lua_settop(L, top);
}

void eng_keep(plush_engine *e) {
  if (e->L) eng_co_restarted(e, e->L); /* parked tasks end as elsewhere */
  uv_mutex_lock(&e->mu);
  atomic_fetch_sub(&e->restarting, 1);
  uv_mutex_unlock(&e->mu);
  plush_warn("engine %u: RESTART: an attached program's state is kept",
             e->nsid);
}
