/*
** engine_co.c — tasks as coroutines of the Lua thread, so that a task
** waiting on its subtasks does not hold its engine (engine.client(),
** share/doc/models.md, "Hierarchies").
**
** Every request runs as a coroutine whose body is eng_serve
** (engine_ops.c; exec and apply call user code yieldably). A Deferred of
** engine.client() waits through its client's pump, which on an engine
** (lua/plush/nested.lua) parks the task: `plush.co.park` yields the
** task's coroutine back to engine_lua.c's loop, which goes on taking
** requests. The controller is told once per task (STARTED with status
** PLUSH_STARTED_PARKED) and no longer counts a parked task against the
** engine's share of balanced work (core/ctl_sched.c).
**
** While tasks are parked the loop polls: eng_co_poll calls the Lua
** function `plush.co.poll(block, efd)` (registered by engine.client()),
** which runs the client connection's loop -- also waking when efd, an
** eventfd the I/O thread writes for a request, an interrupt or a stop,
** becomes readable -- and returns the ids of the tasks whose wait is
** over. Those are resumed one by one, each as the running task (output,
** engine.task, interrupts and the hook follow it).
**
** An INTERRUPT for a parked task (or INTERRUPT 0, all of them) is queued
** under mu by the I/O thread; the task is resumed and its wait raises
** "interrupted". Where the wait cannot yield (inside a C call such as
** table.sort's comparator, a map op, a coroutine of the user's) it
** blocks on the connection as any client does, holding the engine.
*/
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "array.h"
#include "engine_int.h"
#include "log.h"
#include "map.h"
#include "plush.h"

#define PARKED_STATUS 1 /* STARTED's status: the task waits, parked */

typedef struct cotask {
  eng_task t;            /* first: what engine_ops.c and engine_lua.c see */
  lua_State *co;
  int ref;               /* registry reference that keeps co */
  uint64_t id, gen;
  int parked, told, interrupted;
} cotask;

static const char pollkey = 'p'; /* registry: plush.co.poll's function */

/* ---- both threads ------------------------------------------------ */

void eng_co_init(plush_engine *e) {
  memset(&e->co, 0, sizeof e->co);
  e->co.efd = -1;
}

/* mu held. */
void eng_co_kick(plush_engine *e) {
  uint64_t one = 1;
  if (e->co.waiting && e->co.efd >= 0 && write(e->co.efd, &one, sizeof one) < 0) {
    /* the counter is already non-zero: a wake-up is pending */
  }
}

/* mu held. */
void eng_co_interrupt(plush_engine *e, uint64_t id) {
  if (e->co.nparked == 0) return;
  if (id == 0) {
    e->co.intrall = 1;
  } else {
    if (e->co.nintr == e->co.capintr) {
      size_t cap = e->co.capintr ? 2 * e->co.capintr : 8;
      uint64_t *v = realloc(e->co.intr, cap * sizeof *v);
      if (v == NULL) return;
      e->co.intr = v;
      e->co.capintr = cap;
    }
    e->co.intr[e->co.nintr++] = id;
  }
  eng_co_kick(e);
}

/* The Lua thread is done (its state closed). */
void eng_co_free(plush_engine *e) {
  uv_mutex_lock(&e->mu);
  if (e->co.efd >= 0) close(e->co.efd);
  e->co.efd = -1;
  free(e->co.intr);
  e->co.intr = NULL;
  e->co.nintr = e->co.capintr = 0;
  uv_mutex_unlock(&e->mu);
  if (e->co.parked) {
    plush_map_free(e->co.parked);
    free(e->co.parked);
    e->co.parked = NULL;
  }
}

/* ---- running a task ---------------------------------------------- */

/* An interrupt that came before the task's coroutine was published hooked
** the main state only: the coroutine takes that hook over. Under mu, as
** eng_hook runs: one or the other sees the coroutine. */
static void setcur(plush_engine *e, cotask *c) {
  uv_mutex_lock(&e->mu);
  e->co.taskco = c ? c->co : NULL;
  if (c && lua_gethook(e->L) != NULL)
    lua_sethook(c->co, lua_gethook(e->L), lua_gethookmask(e->L),
                lua_gethookcount(e->L));
  uv_mutex_unlock(&e->mu);
  e->co.cur = c;
}

static void cofree(lua_State *L, cotask *c) {
  luaL_unref(L, LUA_REGISTRYINDEX, c->ref);
  free(c);
}

/*
** After a resume of c's coroutine returned st: parked (1), or the task
** ended and its reply went out (0). A yield that is not a park is a
** coroutine.yield at the task's top level, where stock Lua has no
** coroutine to yield from: it fails the task as it would fail there.
*/
static int after(plush_engine *e, lua_State *L, cotask *c, int st, int nres) {
  setcur(e, NULL);
  e->mem.lifted = 1;
  e->inuser = 0;
  if (st == LUA_YIELD && c->parked) {
    lua_pop(c->co, nres);
    uv_mutex_lock(&e->mu);
    atomic_store(&e->running, 0);
    lua_sethook(c->co, NULL, 0, 0);
    uv_mutex_unlock(&e->mu);
    return 1;
  }
  if (st == LUA_YIELD) {
    lua_resetthread(c->co);
    lua_pushliteral(L, "attempt to yield from outside a coroutine");
    st = LUA_ERRRUN;
  } else if (st != LUA_OK) {
    lua_xmove(c->co, L, 1);
  }
  eng_served(e, L, &c->t, st);
  cofree(L, c);
  return 0;
}

int eng_co_serve(plush_engine *e, lua_State *L, eng_task *t) {
  cotask *c = calloc(1, sizeof *c);
  int st, nres = 0;
  if (c == NULL || !lua_checkstack(L, 4)) {
    free(c);
    lua_pushliteral(L, "not enough memory to run the task");
    eng_served(e, L, t, LUA_ERRMEM);
    return 0;
  }
  c->t = *t;
  c->id = t->req->hdr.id;
  c->gen = e->rungen;
  c->co = lua_newthread(L);
  c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushcfunction(c->co, eng_serve);
  lua_pushlightuserdata(c->co, &c->t);
  setcur(e, c);
  st = lua_resume(c->co, L, 1, &nres);
  return after(e, L, c, st, nres);
}

/* Resumes a parked task (its wait is over, or interrupted). */
static void resume(plush_engine *e, lua_State *L, cotask *c, int intr) {
  int st, nres = 0;
  plush_map_del(e->co.parked, c->id);
  c->parked = 0;
  c->interrupted = intr;
  uv_mutex_lock(&e->mu);
  e->co.nparked--;
  lua_sethook(c->co, NULL, 0, 0);
  atomic_store(&e->intr, 0);
  e->rungen = c->gen;
  atomic_store(&e->running, c->id);
  e->co.taskco = c->co;
  uv_mutex_unlock(&e->mu);
  e->co.cur = c;
  e->fired = 0;
  eng_settask(L, &c->t);
  e->mem.lifted = 0; /* back in user code */
  e->inuser = 1;
  st = lua_resume(c->co, L, 0, &nres);
  after(e, L, c, st, nres);
}

/* ---- waiting ------------------------------------------------------ */

/* The interrupts the I/O thread queued for parked tasks. */
static void interrupts(plush_engine *e, lua_State *L) {
  uint64_t *ids;
  size_t n;
  int all;
  uv_mutex_lock(&e->mu);
  ids = e->co.intr;
  n = e->co.nintr;
  all = e->co.intrall;
  e->co.intr = NULL;
  e->co.nintr = e->co.capintr = 0;
  e->co.intrall = 0;
  uv_mutex_unlock(&e->mu);
  if (all && e->co.parked) {
    size_t i = 0, k = 0;
    uint64_t key;
    void *v;
    cotask **all_ = malloc((e->co.parked->count + 1) * sizeof *all_);
    if (all_) {
      while (plush_map_next(e->co.parked, &i, &key, &v)) all_[k++] = v;
      for (i = 0; i < k; i++) resume(e, L, all_[i], 1);
      free(all_);
    }
  }
  for (size_t i = 0; i < n; i++) {
    cotask *c = e->co.parked ? plush_map_get(e->co.parked, ids[i]) : NULL;
    if (c) resume(e, L, c, 1);
  }
  free(ids);
}

/*
** Calls plush.co.poll(block, efd) and resumes the tasks whose ids it
** returns. Under pcall: the client's dispatch runs callbacks.
*/
static int callpoll(lua_State *L) {
  plush_engine *e = eng_self(L);
  int block = lua_toboolean(L, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &pollkey) != LUA_TFUNCTION) return 0;
  lua_pushboolean(L, block);
  lua_pushinteger(L, e->co.efd);
  lua_call(L, 2, 1);
  return 1;
}

void eng_co_poll(plush_engine *e, lua_State *L, int block) {
  uint64_t drain, *ids = NULL;
  size_t n = 0;
  int st;
  if (e->co.parked == NULL) return;
  interrupts(e, L);
  if (e->co.nparked == 0) block = 0;
  lua_pushcfunction(L, callpoll);
  lua_pushboolean(L, block);
  st = lua_pcall(L, 1, 1, 0);
  uv_mutex_lock(&e->mu);
  if (e->co.waiting) {
    e->co.waiting = 0;
    if (e->co.efd >= 0 && read(e->co.efd, &drain, sizeof drain) < 0) {
      /* nothing to drain: EAGAIN */
    }
  }
  uv_mutex_unlock(&e->mu);
  if (st != LUA_OK) {
    plush_warn("engine.client(): polling its connection failed: %s",
               lua_tostring(L, -1));
    lua_pop(L, 1);
    return;
  }
  /* the ids first: a task that ends empties L's stack */
  if (lua_istable(L, -1) && (n = lua_rawlen(L, -1)) > 0 &&
      (ids = malloc(n * sizeof *ids)) != NULL) {
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, -1, (lua_Integer)i + 1);
      ids[i] = (uint64_t)lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, e->co.base);
  for (size_t i = 0; ids && i < n; i++) {
    cotask *c = plush_map_get(e->co.parked, ids[i]);
    if (c) resume(e, L, c, 0);
  }
  free(ids);
  interrupts(e, L);
}

void eng_co_reset(plush_engine *e, lua_State *L, const char *msg) {
  size_t i = 0;
  uint64_t key;
  void *v;
  if (e->co.parked == NULL) return;
  while (plush_map_next(e->co.parked, &i, &key, &v)) {
    cotask *c = v;
    if (msg) {
      c->t.status = PLUSH_S_ERROR;
      uv_mutex_lock(&e->mu);
      e->rungen = c->gen;
      atomic_store(&e->running, c->id);
      uv_mutex_unlock(&e->mu);
      eng_enc_reset(e);
      lua_pushstring(L, msg);
      eng_served(e, L, &c->t, LUA_ERRRUN);
    } else {
      plush_frame_unref(c->t.req);
    }
    cofree(L, c);
  }
  plush_map_free(e->co.parked);
  plush_map_init(e->co.parked);
  uv_mutex_lock(&e->mu);
  e->co.nparked = 0;
  uv_mutex_unlock(&e->mu);
}

/* ---- the Lua side ------------------------------------------------- */

/*
** plush.co.park(): the current task's id when its coroutine can park
** here (it is the task's own coroutine, nothing in C in the way, and
** engine.client() polls), else nil. plush.co.park(true) parks: it
** yields, and returns true once resumed (or raises "interrupted").
*/
static int parkk(lua_State *L, int st, lua_KContext ctx) {
  plush_engine *e = eng_self(L);
  cotask *c = e->co.cur;
  (void)st;
  (void)ctx;
  if (c && c->interrupted) {
    c->interrupted = 0;
    return luaL_error(L, "interrupted");
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_park(lua_State *L) {
  plush_engine *e = eng_self(L);
  cotask *c = e->co.cur;
  int go = lua_toboolean(L, 1);
  /* an embedder's state is used under its lock, which a wait on the
  ** connection would hold: its tasks wait without parking */
  if (c == NULL || c->co != L || !lua_isyieldable(L) || e->o.state ||
      lua_rawgetp(L, LUA_REGISTRYINDEX, &pollkey) != LUA_TFUNCTION)
    return 0;
  lua_pop(L, 1);
  if (!go) {
    lua_pushinteger(L, (lua_Integer)c->id);
    return 1;
  }
  if (e->co.parked == NULL) {
    if ((e->co.parked = malloc(sizeof(plush_map))) == NULL)
      return luaL_error(L, "not enough memory");
    plush_map_init(e->co.parked);
  }
  if (plush_map_put(e->co.parked, c->id, c) < 0)
    return luaL_error(L, "not enough memory");
  c->parked = 1;
  uv_mutex_lock(&e->mu);
  e->co.nparked++;
  uv_mutex_unlock(&e->mu);
  if (!c->told) {
    c->told = 1;
    eng_sendcopy(e, PLUSH_T_STARTED, c->id, PARKED_STATUS, NULL, 0);
  }
  return lua_yieldk(L, 0, 0, parkk);
}

/* plush.co.setpoll(fn): the poll function (see eng_co_poll). */
static int l_setpoll(lua_State *L) {
  plush_engine *e = eng_self(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  uv_mutex_lock(&e->mu);
  if (e->co.efd < 0) e->co.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  uv_mutex_unlock(&e->mu);
  if (e->co.efd < 0) return luaL_error(L, "engine.client(): no eventfd");
  lua_settop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &pollkey);
  return 0;
}

/* plush.co.link(): host, port, key (hex), encrypt of the engine's own
** link to its controller: engine.client() connects the same way. */
static int l_link(lua_State *L) {
  plush_engine *e = eng_self(L);
  char hex[2 * PLUSH_KEY_SIZE + 1];
  if (e->o.has_fd) /* engines as threads: a socket pair, no address */
    return luaL_error(L, "engine.client(): not available on engines as "
                         "threads (they have no address to connect to)");
  uv_mutex_lock(&e->mu);
  lua_pushstring(L, e->ctlhost);
  lua_pushinteger(L, e->o.port);
  for (int i = 0; i < PLUSH_KEY_SIZE; i++)
    snprintf(hex + 2 * i, 3, "%02x", e->key[i]);
  uv_mutex_unlock(&e->mu);
  lua_pushstring(L, hex);
  lua_pushboolean(L, e->o.encrypt);
  return 4;
}

/*
** The task's coroutine is the engine's business: to user code its top
** level is the main thread, as in stock Lua. coroutine.running() there
** gives the main thread (and true), isyieldable() false, yield() fails
** as it fails outside a coroutine, and status(main) is "running".
*/
static int intask(lua_State *L) {
  return L == eng_self(L)->co.taskco;
}

static int co_running(lua_State *L) {
  if (!intask(L)) {
    lua_pushboolean(L, lua_pushthread(L));
    return 2;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  lua_pushboolean(L, 1);
  return 2;
}

static int co_isyieldable(lua_State *L) {
  lua_State *co = lua_isnone(L, 1) ? L : lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "thread");
  lua_pushboolean(L, co != eng_self(L)->co.taskco && lua_isyieldable(co));
  return 1;
}

static int co_yield(lua_State *L) {
  if (intask(L)) { /* as lua_yieldk says it: no position */
    lua_pushliteral(L, "attempt to yield from outside a coroutine");
    return lua_error(L);
  }
  return lua_yield(L, lua_gettop(L));
}

static int co_status(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "thread");
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  if (intask(L) && lua_tothread(L, -1) == co) {
    lua_pushliteral(L, "running");
    return 1;
  }
  lua_pop(L, 1);
  eng_pushorig(L, "coroutine.status");
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static void costock(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_COLIBNAME) == LUA_TTABLE) {
    int co = lua_gettop(L);
    eng_replace(L, co, "running", "coroutine.running", co_running);
    eng_replace(L, co, "isyieldable", "coroutine.isyieldable", co_isyieldable);
    eng_replace(L, co, "yield", "coroutine.yield", co_yield);
    eng_replace(L, co, "status", "coroutine.status", co_status);
  }
  lua_pop(L, 2);
}

/*
** engine.client is a Lua function (the `engine` table travels): it
** loads plush.nested, found the way the plush program finds its modules
** (the paths below).
*/
static const char api[] =
    "local engine = ...\n"
    "function engine.client()\n"
    "  return require('plush.nested').client()\n"
    "end\n";

/* package.path and cpath start with the plush modules' places, as in
** shell/main.c: the build tree for an engine of the build tree, else the
** prefix it is installed in (found from its own place), else the
** configured one. */
static int inside(const char *path, const char *dir) {
  size_t n = strlen(dir);
  return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static void prepend(lua_State *L, const char *field, const char *dirs) {
  lua_getglobal(L, "package");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  lua_getfield(L, -1, field);
  lua_pushfstring(L, "%s%s", dirs, lua_tostring(L, -1));
  lua_setfield(L, -3, field);
  lua_pop(L, 2);
}

#ifndef PLUSH_SOURCE_DIR /* built outside the project's CMake (fuzzers) */
static void paths(lua_State *L) { (void)L; (void)prepend; (void)inside; }
#else
static void paths(lua_State *L) {
  char exe[4096], build[4096];
  char *slash;
  size_t rel = strlen(PLUSH_REL_BINDIR), len;
  if (realpath("/proc/self/exe", exe) == NULL) exe[0] = '\0';
  if (exe[0] && realpath(PLUSH_BUILD_DIR, build) != NULL && inside(exe, build)) {
    prepend(L, "path", PLUSH_SOURCE_DIR "/lua/?.lua;" PLUSH_SOURCE_DIR
            "/lua/?/init.lua;");
    prepend(L, "cpath", PLUSH_BUILD_DIR "/lua/?.so;");
    return;
  }
  if ((slash = strrchr(exe, '/')) != NULL) *slash = '\0';
  len = strlen(exe);
  if (len > rel && exe[len - rel - 1] == '/' &&
      strcmp(exe + len - rel, PLUSH_REL_BINDIR) == 0) {
    exe[len - rel - 1] = '\0';
    lua_pushfstring(L, "%s/" PLUSH_REL_LUADIR "/?.lua;%s/" PLUSH_REL_LUADIR
                    "/?/init.lua;", exe, exe);
    prepend(L, "path", lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_pushfstring(L, "%s/" PLUSH_REL_CMODDIR "/?.so;", exe);
    prepend(L, "cpath", lua_tostring(L, -1));
    lua_pop(L, 1);
    return;
  }
  prepend(L, "path", PLUSH_INSTALL_LUADIR "/?.lua;" PLUSH_INSTALL_LUADIR
          "/?/init.lua;");
  prepend(L, "cpath", PLUSH_INSTALL_CMODDIR "/?.so;");
}
#endif

/* The engine table on top. */
void eng_co_open(lua_State *L) {
  lua_pushcfunction(L, l_park);
  lua_setfield(L, LUA_REGISTRYINDEX, "plush.co.park");
  lua_pushcfunction(L, l_setpoll);
  lua_setfield(L, LUA_REGISTRYINDEX, "plush.co.setpoll");
  lua_pushcfunction(L, l_link);
  lua_setfield(L, LUA_REGISTRYINDEX, "plush.co.link");
  if (luaL_loadbufferx(L, api, sizeof api - 1, "=engine", "t") != LUA_OK)
    lua_error(L);
  lua_pushvalue(L, -2);
  lua_call(L, 1, 0);
  paths(L);
  plush_array_preload(L); /* require "plush.array": the engine's own */
  costock(L);
}
