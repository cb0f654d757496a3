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
** functions engine.client() registered (l_setpoll): poll runs the
** client connection's loop once and returns the ids of the tasks whose
** wait is over, resumed one by one, each as the running task (output,
** engine.task, interrupts and the hook follow it). When none can go on
** it waits in poll(2) on efd (an eventfd the I/O thread writes for a
** request, an interrupt or a stop), the connection's loop (conn:waitfd)
** and the nearest deadline -- with an embedder's state unlocked
** (plush_engine_attach): the program may use it meanwhile, as between
** requests. On an engine that is a thread of its host's process
** (has_fd) engine.client() connects through a new socketpair the host
** makes (opts.newlink).
**
** An INTERRUPT for a parked task (or INTERRUPT 0, all of them) is queued
** under mu by the I/O thread; the task is resumed and its wait raises
** "interrupted". Where the wait cannot yield (inside a C call such as
** table.sort's comparator, a map op, a coroutine of the user's) it
** blocks on the connection as any client does, holding the engine.
**
** Over 600 lines: a task's life (run, park, resume, reset, its coroutine
** kept for the next) and the coroutine library as user code sees it from
** a task share the cotask and the engine's co state, private here.
*/
#include <poll.h>
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
#include "places.h"
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
** A task that returned leaves its coroutine as a new one is (status OK,
** nothing on its stack, no call, no open upvalue): the next task runs on
** it rather than on a new thread the collector must free later. Its hook
** goes when it is taken again, so it starts as lua_newthread's would.
*/
static void spare(plush_engine *e, lua_State *L, cotask *c) {
  if (e->co.spare == NULL && lua_status(c->co) == LUA_OK &&
      lua_gettop(c->co) == 0)
    e->co.spare = c; /* its allocation too */
  else
    cofree(L, c);
}

static void dropspare(plush_engine *e, lua_State *L) {
  if (e->co.spare == NULL) return;
  cofree(L, e->co.spare);
  e->co.spare = NULL;
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
  if (st == LUA_OK)
    spare(e, L, c);
  else
    cofree(L, c);
  return 0;
}

int eng_co_serve(plush_engine *e, lua_State *L, eng_task *t) {
  cotask *c = e->co.spare, *s = c;
  int st, nres = 0;
  if (s) {
    lua_State *co = s->co;
    int ref = s->ref;
    e->co.spare = NULL;
    memset(s, 0, sizeof *s);
    s->co = co, s->ref = ref;
  } else {
    c = calloc(1, sizeof *c);
  }
  if (c == NULL || !lua_checkstack(L, 4)) {
    if (s) e->co.spare = s;
    else free(c);
    lua_pushliteral(L, "not enough memory to run the task");
    eng_served(e, L, t, LUA_ERRMEM);
    return 0;
  }
  e->co.base = lua_gettop(L); /* under an embedder's lock, from here on */
  c->t = *t;
  c->id = t->req->hdr.id;
  c->gen = e->rungen;
  if (s) {
    lua_sethook(c->co, NULL, 0, 0); /* not the I/O side's: not published */
  } else {
    c->co = lua_newthread(L);
    c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
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

/* An embedder's state is used under its lock (engine_int.h): taken
** while the engine uses L here, released while it waits. */
static void lockstate(plush_engine *e) {
  if (e->o.statelock) uv_mutex_lock(e->o.statelock);
}

static void unlockstate(plush_engine *e) {
  if (e->o.statelock) uv_mutex_unlock(e->o.statelock);
}

/* Under pcall: function i (POLL, WAIT, CLOSE) of engine.client()'s
** connection (l_setpoll), two results. */
enum { POLL = 1, WAIT, CLOSE };

static int callfn(lua_State *L) {
  lua_Integer i = lua_tointeger(L, 1);
  lua_settop(L, 0);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &pollkey) != LUA_TTABLE) return 0;
  lua_rawgeti(L, -1, i);
  lua_call(L, 0, 2);
  return 2;
}

/* 0 with the two results on L, or -1 (logged, nothing pushed). */
static int pcallfn(plush_engine *e, lua_State *L, int i) {
  (void)e;
  lua_pushcfunction(L, callfn);
  lua_pushinteger(L, i);
  if (lua_pcall(L, 1, 2, 0) == LUA_OK) return 0;
  plush_warn("engine.client(): %s its connection failed: %s",
             i == POLL ? "polling" : i == WAIT ? "waiting on" : "closing",
             lua_tostring(L, -1));
  lua_pop(L, 1);
  return -1;
}

/* Runs the connection's loop once (no waiting) and resumes the tasks
** whose wait is over: how many. */
static size_t pollrun(plush_engine *e, lua_State *L) {
  uint64_t *ids = NULL;
  size_t n = 0, k = 0;
  if (pcallfn(e, L, POLL) < 0) return 0;
  lua_pop(L, 1);
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
    if (c) resume(e, L, c, 0), k++;
  }
  free(ids);
  return k;
}

/* Waits, L left alone (unlocked), until efd or fd is readable or ms
** pass (-1: no limit). A signal just ends the wait early. */
static void waitfds(plush_engine *e, int fd, int ms) {
  struct pollfd p[2];
  nfds_t n = 0;
  if (e->co.efd >= 0) p[n].fd = e->co.efd, p[n].events = POLLIN, n++;
  if (fd >= 0) p[n].fd = fd, p[n].events = POLLIN, n++;
  if (n > 0 || ms >= 0) (void)poll(p, n, ms);
}

/*
** The parked tasks' turn: interrupts, then the connection's events. With
** block, when none of them could go on, it waits (on efd, the
** connection's loop and the nearest deadline: the WAIT function) with
** an embedder's state unlocked, and looks again.
*/
void eng_co_poll(plush_engine *e, lua_State *L, int block) {
  uint64_t drain;
  size_t n;
  if (e->co.parked == NULL) return;
  lockstate(e);
  e->co.base = lua_gettop(L);
  interrupts(e, L);
  n = pollrun(e, L);
  interrupts(e, L);
  if (block && n == 0 && e->co.nparked > 0) {
    int fd = -1, ms = 50; /* a WAIT that failed: look again soon */
    if (pcallfn(e, L, WAIT) == 0) {
      fd = lua_isinteger(L, -2) ? (int)lua_tointeger(L, -2) : -1;
      ms = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : -1;
      lua_settop(L, e->co.base);
    }
    if (ms != 0) {
      unlockstate(e);
      waitfds(e, fd, ms);
      lockstate(e);
      e->co.base = lua_gettop(L);
    }
    interrupts(e, L);
    pollrun(e, L);
    interrupts(e, L);
  }
  uv_mutex_lock(&e->mu);
  if (e->co.waiting) {
    e->co.waiting = 0;
    if (e->co.efd >= 0 && read(e->co.efd, &drain, sizeof drain) < 0) {
      /* nothing to drain: EAGAIN */
    }
  }
  uv_mutex_unlock(&e->mu);
  unlockstate(e);
}

/* Every parked task ends (with an error reply msg, or silently). */
static void reset(plush_engine *e, lua_State *L, const char *msg) {
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

void eng_co_reset(plush_engine *e, lua_State *L, const char *msg) {
  if (msg == NULL) lockstate(e); /* the loop's end: unlocked there */
  reset(e, L, msg);
  dropspare(e, L);
  if (msg == NULL) unlockstate(e);
}

void eng_co_restarted(plush_engine *e, lua_State *L) {
  reset(e, L, "interrupted: the engine is restarting");
}

void eng_co_close(plush_engine *e, lua_State *L) {
  int top = lua_gettop(L);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &pollkey) == LUA_TTABLE &&
      pcallfn(e, L, CLOSE) == 0) {
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &pollkey);
  }
  lua_settop(L, top);
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
  if (c == NULL || c->co != L || !lua_isyieldable(L) ||
      lua_rawgetp(L, LUA_REGISTRYINDEX, &pollkey) != LUA_TTABLE)
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

/* plush.co.setpoll(poll, wait, close): engine.client()'s connection as
** eng_co_poll drives it. poll() runs its loop once without waiting and
** returns the ids of the parked tasks to resume; wait() returns what to
** wait on (conn:waitfd's fd, and ms to the nearest deadline or -1);
** close() closes it (an embedder's state given back). */
static int l_setpoll(lua_State *L) {
  plush_engine *e = eng_self(L);
  for (int i = 1; i <= 3; i++) luaL_checktype(L, i, LUA_TFUNCTION);
  uv_mutex_lock(&e->mu);
  if (e->co.efd < 0) e->co.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  uv_mutex_unlock(&e->mu);
  if (e->co.efd < 0) return luaL_error(L, "engine.client(): no eventfd");
  lua_createtable(L, 3, 0);
  for (int i = 1; i <= 3; i++) {
    lua_pushvalue(L, i);
    lua_rawseti(L, -2, i);
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &pollkey);
  return 0;
}

/* plush.co.link(): how engine.client() reaches the engine's controller:
** host, port, key (hex), encrypt of the engine's own link; or, on an
** engine that is a thread linked by a socketpair, the fd of a new link
** (opts.newlink), nil, key. */
static int l_link(lua_State *L) {
  plush_engine *e = eng_self(L);
  char hex[2 * PLUSH_KEY_SIZE + 1];
  int fd = -1;
  if (e->o.has_fd && e->o.newlink == NULL)
    return luaL_error(L, "engine.client(): not available on this engine "
                         "(a thread whose host makes no new links)");
  if (e->o.has_fd && (fd = e->o.newlink(e->o.data)) < 0)
    return luaL_error(L, "engine.client(): no new link to the controller: %s",
                      plush_strerror(fd));
  uv_mutex_lock(&e->mu);
  for (int i = 0; i < PLUSH_KEY_SIZE; i++)
    snprintf(hex + 2 * i, 3, "%02x", e->key[i]);
  if (fd < 0) lua_pushstring(L, e->ctlhost);
  uv_mutex_unlock(&e->mu);
  if (fd >= 0) {
    lua_pushinteger(L, fd);
    lua_pushnil(L);
  } else
    lua_pushinteger(L, e->o.port);
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
** (paths below).
*/
static const char api[] =
    "local engine = ...\n"
    "function engine.client()\n"
    "  return require('plush.nested').client()\n"
    "end\n";

/* package.path and cpath start with the plush modules' places, seen
** from the program or library holding the engine (core/places.c): the
** plush-engine program, the plush program or plush.core (engines as
** threads), libplush or plush/engine.so (attached engines). */
static void paths(lua_State *L) {
  plush_places p;
  plush_places_find((const void *)eng_co_open, &p);
  plush_places_prepend(L, &p);
}

/* The engine table on top. */
void eng_co_open(lua_State *L) {
  lua_pushcfunction(L, l_park);
  lua_setfield(L, LUA_REGISTRYINDEX, "plush.co.park");
  lua_pushcfunction(L, l_setpoll);
  lua_setfield(L, LUA_REGISTRYINDEX, "plush.co.setpoll");
  lua_pushcfunction(L, l_link);
  lua_setfield(L, LUA_REGISTRYINDEX, "plush.co.link");
  eng_runapi(L, api, sizeof api - 1);
  paths(L);
  plush_array_preload(L); /* require "plush.array": the engine's own */
  costock(L);
}
