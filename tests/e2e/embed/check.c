/*
** check.c — plush.h's bad input and its threads, built by tests/e2e/embed.sh
** against an installed libplush with pkg-config (not a ctest of its own).
**
**   check bad GOOD.json WRONGKEY.json MALFORMED.json   misuse, one line each
**   check serve GOOD.json        attaches, then serves until `quit`; the
**                                state has try_detach(), try_lock() and try_id()
**   check busy GOOD.json         attaches; on a line of stdin detaches
**                                (whatever runs on the state) and exits
**   check console ARGS...        plush_console(L, ARGS)
**
** Every check prints "ok <what>" or "FAIL <what>: ..." and the exit
** status is the number of failures.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>
#include <plush.h>

static int failures;
static plush_attachment *att;

static void expect(const char *what, int got, int want) {
  if (got == want) {
    printf("ok %s\n", what);
  } else {
    printf("FAIL %s: got %d (%s), want %d; %s\n", what, got,
           plush_embed_strerror(got), want, plush_embed_errmsg());
    failures++;
  }
}

static void expectmsg(const char *what, const char *part) {
  if (strstr(plush_embed_errmsg(), part) != NULL) {
    printf("ok %s\n", what);
  } else {
    printf("FAIL %s: message '%s' lacks '%s'\n", what, plush_embed_errmsg(),
           part);
    failures++;
  }
}

/* The state as the program left it: its own print, no `engine`. */
static void untouched(const char *what, lua_State *L, lua_CFunction print) {
  int ok;
  lua_getglobal(L, "print");
  lua_getglobal(L, "engine");
  ok = lua_tocfunction(L, -2) == print && lua_isnil(L, -1) &&
       lua_gettop(L) == 3 && lua_tointeger(L, 1) == 7;
  lua_pop(L, 2);
  expect(what, ok, 1);
}

static int bad(char **files) {
  lua_State *L = luaL_newstate();
  plush_attachment *a = NULL, *b = NULL;
  plush_attach_opts q = {0, 0, 10, 0, 1};
  lua_CFunction print;
  luaL_openlibs(L);
  lua_getglobal(L, "print");
  print = lua_tocfunction(L, -1);
  lua_pop(L, 1);
  lua_pushinteger(L, 7); /* the program's own stack: kept */
  expect("attach NULL state", plush_engine_attach(NULL, files[0], NULL, &a),
         PLUSH_EMBED_EINVAL);
  expect("attach NULL out", plush_engine_attach(L, files[0], NULL, NULL),
         PLUSH_EMBED_EINVAL);
  expect("attach missing file",
         plush_engine_attach(L, "/nonexistent/c.json", &q, &a),
         PLUSH_EMBED_EFILE);
  expectmsg("missing file named", "/nonexistent/c.json");
  expect("out is NULL after failure", a == NULL, 1);
  expect("attach malformed file", plush_engine_attach(L, files[2], &q, &a),
         PLUSH_EMBED_EFILE);
  expect("attach with a wrong key", plush_engine_attach(L, files[1], &q, &a),
         PLUSH_EMBED_ECONNECT);
  untouched("state untouched after failures", L, print);
  expect("detach NULL", plush_engine_detach(NULL), PLUSH_EMBED_ENOTATTACHED);
  expect("lock NULL", plush_engine_lock(NULL), PLUSH_EMBED_ENOTATTACHED);
  expect("attach", plush_engine_attach(L, files[0], &q, &a), 0);
  expect("id", plush_attach_id(a) >= 0, 1);
  expect("attach twice", plush_engine_attach(L, files[0], &q, &b),
         PLUSH_EMBED_EATTACHED);
  {
    char *cargv[] = {"check", "-e", "1", NULL};
    expect("console on an attached state", plush_console(L, 3, cargv), 1);
  }
  expect("unlock not held", plush_engine_unlock(a), PLUSH_EMBED_ELOCK);
  expect("lock", plush_engine_lock(a), 0);
  expect("lock twice", plush_engine_lock(a), PLUSH_EMBED_ELOCK);
  lua_getglobal(L, "engine"); /* the program may look, under the lock */
  expect("engine table while attached", lua_istable(L, -1), 1);
  lua_pop(L, 1);
  expect("unlock", plush_engine_unlock(a), 0);
  expect("wait times out", plush_engine_wait(a, 0.05), 0);
  expect("call NULL fn", plush_engine_call(a, NULL, NULL), PLUSH_EMBED_EINVAL);
  expect("detach", plush_engine_detach(a), 0);
  expect("detach twice", plush_engine_detach(a), PLUSH_EMBED_ENOTATTACHED);
  expect("lock after detach", plush_engine_lock(a), PLUSH_EMBED_ENOTATTACHED);
  untouched("state given back", L, print);
  expect("attach again", plush_engine_attach(L, files[0], &q, &a), 0);
  expect("lock held at detach", plush_engine_lock(a), 0);
  expect("detach releases the lock", plush_engine_detach(a), 0);
  untouched("state given back again", L, print);
  lua_close(L);
  return failures;
}

/* In the state: what plush.h says from the serving thread. */
static int try_detach(lua_State *L) {
  lua_pushinteger(L, plush_engine_detach(att));
  return 1;
}
static int try_lock(lua_State *L) {
  lua_pushinteger(L, plush_engine_lock(att));
  return 1;
}

static int try_id(lua_State *L) {
  lua_pushinteger(L, plush_attach_id(att));
  return 1;
}

static int quit(lua_State *L, void *ud) {
  int q;
  (void)ud;
  lua_getglobal(L, "quit");
  q = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return q;
}

static int serve(const char *file) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_register(L, "try_detach", try_detach);
  lua_register(L, "try_lock", try_lock);
  lua_register(L, "try_id", try_id);
  expect("attach", plush_engine_attach(L, file, NULL, &att), 0);
  if (failures) return failures;
  printf("serving as engine %d\n", plush_attach_id(att));
  fflush(stdout);
  while (plush_engine_call(att, quit, NULL) == 0)
    if (plush_engine_wait(att, 0.05) == 1) break;
  expect("detach at the end", plush_engine_detach(att), 0);
  lua_close(L);
  return failures;
}

/* Detach must end a request that never ends by itself. */
static int busy(const char *file) {
  lua_State *L = luaL_newstate();
  char line[64];
  luaL_openlibs(L);
  expect("attach", plush_engine_attach(L, file, NULL, &att), 0);
  if (failures) return failures;
  printf("busy as engine %d\n", plush_attach_id(att));
  fflush(stdout);
  if (fgets(line, sizeof line, stdin) == NULL) return 1;
  expect("detach during a request", plush_engine_detach(att), 0);
  lua_getglobal(L, "engine");
  expect("engine gone", lua_isnil(L, -1), 1);
  lua_close(L);
  return failures;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "bad") == 0) return bad(argv + 2);
  if (argc == 3 && strcmp(argv[1], "serve") == 0) return serve(argv[2]);
  if (argc == 3 && strcmp(argv[1], "busy") == 0) return busy(argv[2]);
  if (argc >= 2 && strcmp(argv[1], "console") == 0) {
    lua_State *L = luaL_newstate();
    int st;
    argv[1] = "plush";
    st = plush_console(L, argc - 1, argv + 1);
    lua_close(L);
    return st;
  }
  fprintf(stderr, "usage: check bad|serve|console ...\n");
  return 2;
}
