/*
** host.c — a program with its own Lua state that joins a plush cluster
** as one of its engines (share/doc/embedding.md).
**
**   make && ./host ~/.local/state/plush/default.json
**   plush -e '%px return engine.id, greeting'
**   plush -e '%px quit = true'          -- the program detaches and exits
**
** While attached, the library serves the cluster's requests on L on its
** own thread; this program touches L only under the state lock
** (plush_engine_call), here to count its own ticks and look at `quit`.
*/
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lualib.h>
#include <plush.h>

/* Under the state lock: ticks = ticks + 1; returns 1 once `quit` is set. */
static int tick(lua_State *L, void *ud) {
  int quit;
  (void)ud;
  lua_getglobal(L, "ticks");
  lua_pushinteger(L, lua_tointeger(L, -1) + 1);
  lua_setglobal(L, "ticks");
  lua_getglobal(L, "quit");
  quit = lua_toboolean(L, -1);
  lua_pop(L, 2);
  return quit;
}

int main(int argc, char **argv) {
  plush_attachment *a;
  lua_State *L = luaL_newstate();
  int rc, ended = 0;
  if (L == NULL) return 1;
  luaL_openlibs(L);
  lua_pushliteral(L, "hello from the host program");
  lua_setglobal(L, "greeting");
  rc = plush_engine_attach(L, argc > 1 ? argv[1] : NULL, NULL, &a);
  if (rc < 0) {
    fprintf(stderr, "host: %s (%s)\n", plush_embed_errmsg(),
            plush_embed_strerror(rc));
    lua_close(L);
    return 1;
  }
  printf("attached as engine %d\n", plush_attach_id(a));
  fflush(stdout);
  /* Our own work between requests; ends when told to or when the
  ** controller stops (plush_engine_wait returns 1). */
  while (!ended && plush_engine_call(a, tick, NULL) == 0)
    ended = plush_engine_wait(a, 0.05) == 1;
  plush_engine_detach(a);
  /* L is ours again, as it was: print is the standard one, no `engine`. */
  lua_getglobal(L, "engine");
  lua_getglobal(L, "ticks");
  printf("detached%s: engine is %s, ticks > 0: %s\n",
         ended ? " (the cluster ended)" : "", luaL_typename(L, -2),
         lua_tointeger(L, -1) > 0 ? "yes" : "no");
  lua_pop(L, 2);
  if (luaL_dostring(L, "print('x = ' .. tostring(x))") != LUA_OK)
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
  lua_close(L);
  return 0;
}
