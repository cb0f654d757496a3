/*
** console.c — plush_console (plush.h): the plush shell's REPL on a
** program's own lua_State, as shell/main.c runs it on a state of its own.
** The Lua modules are found from where libplush is: the source and build
** trees when it is the one in the build tree, else the install prefix it
** sits in (PREFIX/PLUSH_REL_LIBDIR/libplush.so), so a moved tree works.
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

int luaopen_plush_core(lua_State *L);
#ifdef PLUSH_HAVE_LIBEDIT
int luaopen_plush_edit(lua_State *L);
#endif

static void prepend(lua_State *L, const char *field, const char *dirs) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, field);
  lua_pushfstring(L, "%s%s", dirs, lua_tostring(L, -1));
  lua_setfield(L, -3, field);
  lua_pop(L, 2);
}

static int inside(const char *path, const char *dir) {
  size_t n = strlen(dir);
  return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Module paths and PLUSH_BIN_DIR/PLUSH_DATA_DIR for the shell's children. */
static void setpaths(lua_State *L) {
  Dl_info info;
  char lib[PATH_MAX], build[PATH_MAX], dirs[4 * PATH_MAX];
  const char *prefix = PLUSH_INSTALL_PREFIX;
  char *slash;
  size_t rel = strlen(PLUSH_REL_LIBDIR), len;
  if (dladdr((void *)plush_console, &info) && info.dli_fname &&
      realpath(info.dli_fname, lib) != NULL) {
    if (realpath(PLUSH_BUILD_DIR, build) != NULL && inside(lib, build)) {
      prepend(L, "path", PLUSH_SOURCE_DIR "/lua/?.lua;" PLUSH_SOURCE_DIR
              "/lua/?/init.lua;");
      prepend(L, "cpath", PLUSH_BUILD_DIR "/lua/?.so;");
      setenv("PLUSH_DATA_DIR", PLUSH_SOURCE_DIR "/share/plush", 1);
      setenv("PLUSH_BIN_DIR", PLUSH_BUILD_DIR "/bin", 1);
      return;
    }
    if ((slash = strrchr(lib, '/')) != NULL) {
      *slash = '\0';
      len = strlen(lib);
      if (len > rel && lib[len - rel - 1] == '/' &&
          strcmp(lib + len - rel, PLUSH_REL_LIBDIR) == 0) {
        lib[len - rel - 1] = '\0';
        prefix = lib;
      }
    }
  }
  snprintf(dirs, sizeof dirs, "%s/" PLUSH_REL_LUADIR "/?.lua;%s/" PLUSH_REL_LUADIR
           "/?/init.lua;", prefix, prefix);
  prepend(L, "path", dirs);
  snprintf(dirs, sizeof dirs, "%s/" PLUSH_REL_CMODDIR "/?.so;", prefix);
  prepend(L, "cpath", dirs);
  snprintf(dirs, sizeof dirs, "%s/" PLUSH_REL_DATADIR, prefix);
  setenv("PLUSH_DATA_DIR", dirs, 1);
  snprintf(dirs, sizeof dirs, "%s/" PLUSH_REL_BINDIR, prefix);
  setenv("PLUSH_BIN_DIR", dirs, 1);
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
