/*
** console.c — plush_console (plush.h): the plush shell's REPL on a
** program's own lua_State, as shell/main.c runs it on a state of its own.
** The Lua modules are found from where libplush is (core/places.c): the
** source and build trees when it is the one in the build tree, else the
** install prefix it sits in (PREFIX/<libdir>/libplush.so), so a moved
** tree works.
*/
#include <dlfcn.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "embed_int.h"
#include "plush.h"

#include "places.h"

int luaopen_plush_core(lua_State *L);
#ifdef PLUSH_HAVE_LIBEDIT
int luaopen_plush_edit(lua_State *L);
#endif

/* Module paths and PLUSH_BIN_DIR/PLUSH_DATA_DIR for the shell's children,
** from where libplush is (core/places.c). */
static void setpaths(lua_State *L) {
  plush_places p;
  plush_places_find((const void *)plush_console, &p);
  plush_places_prepend(L, &p);
  setenv("PLUSH_DATA_DIR", p.data, 1);
  setenv("PLUSH_BIN_DIR", p.bin, 1);
}

static int pconsole(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = lua_touserdata(L, 2);
  int isnum;
  lua_Integer n;
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_plush_core);
  lua_setfield(L, -2, "plush.core");
#ifdef PLUSH_HAVE_LIBEDIT
  lua_pushcfunction(L, luaopen_plush_edit);
  lua_setfield(L, -2, "plush.edit");
#endif
  lua_pushcfunction(L, luaopen_plush_engine);
  lua_setfield(L, -2, "plush.engine");
  lua_pop(L, 1);
  setpaths(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "plush.cli");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "main");
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_pushvalue(L, -1);
  lua_setglobal(L, "arg");
  lua_call(L, 1, 1);
  if (lua_isboolean(L, -1)) return lua_pushinteger(L, !lua_toboolean(L, -1)), 1;
  if (lua_isnil(L, -1)) return lua_pushinteger(L, 0), 1;
  n = lua_tointegerx(L, -1, &isnum);
  lua_pushinteger(L, isnum ? (n & 0xff) : 1);
  return 1;
}

int plush_console(lua_State *L, int argc, char **argv) {
  static char *dflt[] = {"plush", NULL};
  struct sigaction sa;
  int top, status;
  if (L == NULL) {
    fprintf(stderr, "plush_console: the lua_State is NULL\n");
    return 1;
  }
  if (argc <= 0 || argv == NULL) argc = 1, argv = dflt;
  if (embed_attached(L)) {
    fprintf(stderr, "%s: plush_console: this lua_State is attached as an "
            "engine: detach it first\n", argv[0]);
    return 1;
  }
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);
  top = lua_gettop(L);
  lua_pushcfunction(L, pconsole);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  if (lua_pcall(L, 2, 1, 0) == LUA_OK) {
    status = (int)lua_tointeger(L, -1);
  } else {
    fprintf(stderr, "%s: %s\n", argv[0],
            lua_isstring(L, -1) ? lua_tostring(L, -1) : "error");
    status = 1;
  }
  fflush(stdout);
  lua_settop(L, top);
  return status;
}
