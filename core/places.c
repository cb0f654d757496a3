/*
** places.c — where plush's Lua modules, C modules and data are, for the
** program or library holding some code; the one answer the plush program
** (shell/main.c), plush_console (embed/console.c) and every engine
** (engines/engine_co.c: `require "plush"` on engines) use:
**   1. the source and build trees, when that file lies in the build tree;
**   2. else the install prefix it sits in -- PREFIX/bin for a program,
**      PREFIX/<libdir> for libplush, PREFIX/lib/lua/5.4/plush for a Lua C
**      module (plush/core.so, plush/engine.so) -- so that an installed
**      tree still works once moved;
**   3. else the configured install places.
*/
#include "places.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#ifndef PLUSH_REL_LIBDIR
#define PLUSH_REL_LIBDIR "lib"
#endif

/* True when path lies inside dir (both canonical): a plain prefix test
** would take /x/build-asan/bin for a part of /x/build. */
static int inside(const char *path, const char *dir) {
  size_t n = strlen(dir);
  return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* dir without its tail rel ("/bin"): the prefix, in out; 0 if not so. */
static int strip(const char *dir, const char *rel, char *out, size_t n) {
  size_t len = strlen(dir), r = strlen(rel);
  if (r == 0 || len <= r || dir[len - r - 1] != '/' ||
      strcmp(dir + len - r, rel) != 0 || len - r > n)
    return 0;
  memcpy(out, dir, len - r - 1);
  out[len - r - 1] = '\0';
  return 1;
}

/* The canonical path of the file holding addr, or "" when unknown. */
static void selfof(const void *addr, char *out) {
  Dl_info info;
  const char *so;
  out[0] = '\0';
  if (dladdr(addr, &info) && info.dli_fname &&
      (so = strstr(info.dli_fname, ".so")) != NULL &&
      (so[3] == '\0' || so[3] == '.') && realpath(info.dli_fname, out) != NULL)
    return;
  if (realpath("/proc/self/exe", out) == NULL) out[0] = '\0';
}

#ifndef PLUSH_SOURCE_DIR /* built outside the project's CMake (fuzzers) */
void plush_places_find(const void *addr, plush_places *p) {
  (void)inside;
  (void)strip;
  memset(p, 0, sizeof *p);
  selfof(addr, p->self);
}
#else
void plush_places_find(const void *addr, plush_places *p) {
  char build[PATH_MAX], dir[PATH_MAX], pre[PATH_MAX];
  const char *prefix = NULL;
  char *slash;
  memset(p, 0, sizeof *p);
  selfof(addr, p->self);
  if (p->self[0] && realpath(PLUSH_BUILD_DIR, build) != NULL &&
      inside(p->self, build)) {
    p->intree = 1;
    snprintf(p->path, sizeof p->path, "%s/lua/?.lua;%s/lua/?/init.lua;",
             PLUSH_SOURCE_DIR, PLUSH_SOURCE_DIR);
    snprintf(p->cpath, sizeof p->cpath, "%s/lua/?.so;", PLUSH_BUILD_DIR);
    snprintf(p->data, sizeof p->data, "%s/share/plush", PLUSH_SOURCE_DIR);
    snprintf(p->bin, sizeof p->bin, "%s/bin", PLUSH_BUILD_DIR);
    return;
  }
  snprintf(dir, sizeof dir, "%s", p->self);
  if ((slash = strrchr(dir, '/')) != NULL) {
    *slash = '\0';
    if (strip(dir, PLUSH_REL_BINDIR, pre, sizeof pre) ||
        strip(dir, PLUSH_REL_LIBDIR, pre, sizeof pre) ||
        strip(dir, PLUSH_REL_CMODDIR "/plush", pre, sizeof pre))
      prefix = pre;
  }
  if (prefix != NULL) {
    snprintf(p->path, sizeof p->path,
             "%s/" PLUSH_REL_LUADIR "/?.lua;%s/" PLUSH_REL_LUADIR "/?/init.lua;",
             prefix, prefix);
    snprintf(p->cpath, sizeof p->cpath, "%s/" PLUSH_REL_CMODDIR "/?.so;", prefix);
    snprintf(p->data, sizeof p->data, "%s/" PLUSH_REL_DATADIR, prefix);
    snprintf(p->bin, sizeof p->bin, "%s/" PLUSH_REL_BINDIR, prefix);
    return;
  }
  snprintf(p->path, sizeof p->path, "%s/?.lua;%s/?/init.lua;",
           PLUSH_INSTALL_LUADIR, PLUSH_INSTALL_LUADIR);
  snprintf(p->cpath, sizeof p->cpath, "%s/?.so;", PLUSH_INSTALL_CMODDIR);
  snprintf(p->data, sizeof p->data, "%s", PLUSH_INSTALL_DATADIR);
  snprintf(p->bin, sizeof p->bin, "%s", PLUSH_INSTALL_BINDIR);
}
#endif

static void prepend(lua_State *L, const char *field, const char *dirs) {
  if (dirs[0] == '\0') return;
  lua_getfield(L, -1, field);
  lua_pushfstring(L, "%s%s", dirs, lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
  lua_setfield(L, -3, field);
  lua_pop(L, 1);
}

void plush_places_prepend(lua_State *L, const plush_places *p) {
  if (lua_getglobal(L, "package") == LUA_TTABLE) {
    prepend(L, "path", p->path);
    prepend(L, "cpath", p->cpath);
  }
  lua_pop(L, 1);
}
