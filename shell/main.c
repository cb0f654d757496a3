/*
** main.c — the plush executable: a Lua state that runs plush.cli.
**
** Everything the shell does is Lua (lua/plush/cli.lua and what it
** requires). This file only prepares the state: the standard libraries,
** plush.core and plush.edit (shell/edit.c) preloaded, module paths for
** the build tree or the install prefix, the environment the child
** daemons need, the `arg` table; then it calls
** require("plush.cli").main(arg) and turns its answer into the exit
** status.
*/
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lua_core.h"
#include "places.h"

/* shell/edit.c: the line editor, for the interactive shell. */
int luaopen_plush_edit(lua_State *L);
#ifdef PLUSH_HAVE_ZMQ
/* shell/lua_zmq.c: ZeroMQ, for the Jupyter kernel (`plush kernel`). */
int luaopen_plush_zmq(lua_State *L);
#endif

static const char *progname = "plush";

/*
** Like lua.c's: turns any error value into a message. Error objects print
** through __tostring; the traceback is added only when PLUSH_DEBUG is set,
** since a user wants the one-line reason and a developer the stack.
*/
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  if (getenv("PLUSH_DEBUG") != NULL && *getenv("PLUSH_DEBUG") != '\0')
    luaL_traceback(L, L, msg, 1);
  else
    lua_pushstring(L, msg);
  return 1;
}

/*
** Where the Lua modules and data are (core/places.c: the source and build
** trees for this executable of the build tree, else the prefix it is
** installed in, else the configured one). PLUSH_BIN_DIR (this program's
** directory) and PLUSH_DATA_DIR tell the Lua side and the children
** (plush-controller, plush-engine, magics) the same.
*/
static void setpaths(lua_State *L) {
  plush_places p;
  char *slash;
  plush_places_find(NULL, &p);
  if (p.self[0] && (slash = strrchr(p.self, '/')) != NULL) {
    *slash = '\0';
    setenv("PLUSH_BIN_DIR", p.self[0] ? p.self : "/", 1);
  }
  plush_places_prepend(L, &p);
  setenv("PLUSH_DATA_DIR", p.data, 1);
}

/* arg[0] the program, arg[1..] its arguments, as lua.c does for a script. */
static void pushargs(lua_State *L, int argc, char **argv) {
  int i;
  lua_createtable(L, argc > 0 ? argc - 1 : 0, 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_pushvalue(L, -1);
  lua_setglobal(L, "arg");
}

/*
** Runs in protected mode so that an out-of-memory in the set-up is
** reported like any other error. Returns the exit status.
*/
static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int isnum, status = 0;
  lua_Integer n;
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_plush_core);
  lua_setfield(L, -2, "plush.core");
  lua_pushcfunction(L, luaopen_plush_edit);
  lua_setfield(L, -2, "plush.edit");
#ifdef PLUSH_HAVE_ZMQ
  lua_pushcfunction(L, luaopen_plush_zmq);
  lua_setfield(L, -2, "plush.zmq");
#endif
  lua_pop(L, 1);
  setpaths(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "plush.cli");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "main");
  pushargs(L, argc, argv);
  lua_call(L, 1, 1);
  if (lua_isboolean(L, -1))
    status = lua_toboolean(L, -1) ? 0 : 1;
  else if (!lua_isnil(L, -1)) {
    n = lua_tointegerx(L, -1, &isnum);
    status = isnum ? (int)(n & 0xff) : 1;
    if (!isnum)
      fprintf(stderr, "%s: plush.cli.main returned a %s, not an exit status\n", progname,
              luaL_typename(L, -1));
  }
  lua_pushinteger(L, status);
  return 1;
}

int main(int argc, char **argv) {
  lua_State *L;
  int status;
  /* A controller that goes away, or `plush ... | head`, must surface as a
  ** write error the Lua side handles, not kill the process before
  ** lua_close has stopped an embedded cluster. */
  signal(SIGPIPE, SIG_IGN);
  L = luaL_newstate();
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create a Lua state: not enough memory\n", progname);
    return 1;
  }
  lua_pushcfunction(L, msghandler);
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  if (lua_pcall(L, 2, 1, 1) == LUA_OK) {
    status = (int)lua_tointeger(L, -1);
  } else {
    fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
    status = 1;
  }
  fflush(stdout);
  /* Closing runs __gc: the client stops an embedded cluster there. */
  lua_close(L);
  return status;
}
