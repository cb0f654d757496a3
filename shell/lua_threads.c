/*
** lua_threads.c — the in-process cluster of plush.connect{threads = n}:
** a controller and n engines as threads of the calling process.
**
** One cluster thread runs a libuv loop of its own: the controller
** (core/controller.c, with no listener: no_listen) and the I/O side of
** every engine (engines/engine_host.c); each engine has its Lua thread as
** a process engine has. Every link is a socketpair(AF_UNIX) made here: the
** controller adopts one end (plush_ctl_adopt), the engine or the client
** takes the other (plush_engine_opts.has_fd, core.connect(fd, ...)). No
** address, no listening port: nothing outside this process can reach the
** cluster. The frames, the codec and the handshake (on a key made here,
** which never leaves the process) are the ones of a process cluster, so
** values and errors are exactly what they are there.
**
** core.threads(n [, opts]) -> cluster, once n engines have registered.
** cluster:socket() -> fd, key: a new link for a client (core.connect).
** cluster:stop(): the controller and the engines stop, the thread is
** joined; idempotent, and __gc does it too.
**
** Threads. The cluster's fields under mu are shared with the Lua side;
** the rest is the cluster thread's. The Lua side only asks for links
** (core/ctl_links.c, as plush-controller --threads does) and a stop, and
** waits on cond for the thread's answers.
*/
#include "lua_threads.h"
#include "lua_core.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <lauxlib.h>
#include <uv.h>

#include "auth.h"
#include "controller.h"
#include "ctl_links.h"
#include "engine_host.h"
#include "log.h"
#include "plush.h"

#define THREADS_MT "plush.threads"

typedef struct tcluster {
  /* ---- set before the thread starts, read-only after ---- */
  uint8_t key[PLUSH_KEY_SIZE];
  char keyhex[2 * PLUSH_KEY_SIZE + 1];
  size_t memory_limit;
  int hwm;
  int n;
  sigset_t sigmask;          /* the caller's: the engines' Lua threads too */
  /* ---- the Lua side ---- */
  uv_thread_t thread;
  int joined;
  /* ---- shared, under mu ---- */
  uv_mutex_t mu;
  uv_cond_t cond;            /* the thread answered: started, registered */
  int stopreq;
  int started, startrc;      /* the controller is up (or failed: rc) */
  int registered;            /* engines that got their WELCOME */
  int failed;                /* engines that ended before registering */
  int over;                  /* the loop has ended */
  char why[256];             /* why the cluster stopped early */
  /* ---- the cluster thread ---- */
  uv_loop_t loop;
  uv_async_t wake;           /* the Lua side asked to stop */
  plush_ctl_links links;     /* new links from other threads (haslinks) */
  int haslinks;              /* read by the Lua side once joined */
  plush_ctl *ctl;
  plush_engine **eng;        /* every engine started; NULL once exited */
  int neng, live;
  int stopping;
} tcluster;

/* ---- the cluster thread ------------------------------------------ */

/* Everything has stopped: the wake handle goes, and with it the loop.
** over is set first, under mu, so that nobody sends to it any more. */
static void maybeend(tcluster *t) {
  if (!t->stopping || t->ctl != NULL || t->live > 0) return;
  uv_mutex_lock(&t->mu);
  t->over = 1;
  uv_cond_broadcast(&t->cond);
  uv_mutex_unlock(&t->mu);
  uv_close((uv_handle_t *)&t->wake, NULL);
}

static void ctldone(void *ud) {
  tcluster *t = ud;
  t->ctl = NULL;
  maybeend(t);
}

static void engexit(plush_engine *e, int status, const char *reason,
                    void *data) {
  tcluster *t = data;
  for (int i = 0; i < t->neng; i++)
    if (t->eng[i] == e) t->eng[i] = NULL;
  t->live--;
  if (!t->stopping) {
    plush_warn("engine thread ended (status %d): %s", status, reason);
    if (plush_engine_id(e) < 0) {
      uv_mutex_lock(&t->mu);
      t->failed++;
      snprintf(t->why, sizeof t->why, "an engine thread failed: %s", reason);
      uv_cond_broadcast(&t->cond);
      uv_mutex_unlock(&t->mu);
    }
  }
  maybeend(t);
}

static void stopall(tcluster *t) {
  if (t->stopping) return;
  t->stopping = 1;
  if (t->haslinks) plush_ctl_links_close(&t->links); /* no more links */
  for (int i = 0; i < t->neng; i++)
    if (t->eng[i]) plush_engine_stop(t->eng[i]);
  if (t->ctl) plush_ctl_stop(t->ctl, ctldone, t);
  maybeend(t);
}

/* A socketpair, its first end adopted by the controller: the second, or
** a negative code. */
static int newlink(tcluster *t) {
  int sv[2], r;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return -errno;
  if ((r = plush_ctl_adopt(t->ctl, sv[0])) < 0) {
    close(sv[0]);
    close(sv[1]);
    return r;
  }
  return sv[1];
}

/* os.exit in an engine thread would end its client's process: refused. */
static int noexit(lua_State *L) {
  return luaL_error(L, "os.exit: this engine is a thread of its client's "
                       "process (plush.connect{threads = n}): it cannot exit");
}

/* Each namespace the engine builds (and RESTART rebuilds), on its Lua
** thread: the caller's signal mask back (the cluster thread's blocks all),
** so that what os.execute and io.popen start gets the usual one; and
** this plush.core preloaded (require "plush", engine.client()), rather
** than a second copy from package.cpath. */
static int setup(lua_State *L, void *data) {
  tcluster *t = data;
  pthread_sigmask(SIG_SETMASK, &t->sigmask, NULL);
  if (lua_getglobal(L, "os") == LUA_TTABLE) {
    lua_pushcfunction(L, noexit);
    lua_setfield(L, -2, "exit");
  }
  lua_pop(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_plush_core);
  lua_setfield(L, -2, "plush.core");
  lua_pop(L, 1);
  return 0;
}

/* An engine's engine.client() (its Lua thread): a link as a client's. */
static int enginelink(void *data) {
  return plush_ctl_links_new(&((tcluster *)data)->links);
}

/* n more engines: 0, or the first error (those started run on). */
static int addengines(tcluster *t, int n) {
  plush_engine_opts o;
  plush_engine **v;
  int fd, r;
  if (t->stopping) return UV_ECANCELED;
  if ((v = realloc(t->eng, (size_t)(t->neng + n) * sizeof *v)) == NULL)
    return PLUSH_ENOMEM;
  t->eng = v;
  for (int i = 0; i < n; i++) {
    if ((fd = newlink(t)) < 0) return fd;
    memset(&o, 0, sizeof o);
    o.has_fd = 1;
    o.fd = fd;
    o.key = t->key;
    o.id = -1;
    o.memory_limit = t->memory_limit;
    o.setup = setup;
    o.newlink = enginelink;
    o.on_exit = engexit;
    o.data = t;
    if ((r = plush_engine_start(&t->loop, &o, &t->eng[t->neng])) < 0) {
      close(fd);
      return r;
    }
    t->neng++;
    t->live++;
  }
  return 0;
}

static void onshutdown(plush_ctl *c, void *ud) {
  (void)c;
  stopall(ud);
}

static int onadd(plush_ctl *c, void *ud, int n) {
  (void)c;
  return addengines(ud, n);
}

static void onengine(plush_ctl *c, void *ud, unsigned id, long pid) {
  tcluster *t = ud;
  (void)c, (void)id, (void)pid;
  uv_mutex_lock(&t->mu);
  t->registered++;
  uv_cond_broadcast(&t->cond);
  uv_mutex_unlock(&t->mu);
}

/* The Lua side asked to stop. */
static void onwake(uv_async_t *a) {
  tcluster *t = a->data;
  int stop;
  uv_mutex_lock(&t->mu);
  stop = t->stopreq;
  uv_mutex_unlock(&t->mu);
  if (stop) stopall(t);
}

static void clustermain(void *arg) {
  tcluster *t = arg;
  plush_ctl_opts o;
  int r;
  memset(&o, 0, sizeof o);
  memcpy(o.key, t->key, sizeof o.key);
  o.no_listen = 1;
  o.hwm = t->hwm;
  o.fixed_hwm = t->hwm > 0;
  o.on_shutdown = onshutdown;
  o.on_add = onadd;
  o.on_engine = onengine;
  o.ud = t;
  r = plush_ctl_start(&t->loop, &o, &t->ctl);
  if (r == 0 && (r = plush_ctl_links_init(&t->links, &t->loop, t->ctl)) == 0)
    t->haslinks = 1;
  if (r == 0) r = addengines(t, t->n);
  uv_mutex_lock(&t->mu);
  t->started = 1;
  t->startrc = r;
  uv_cond_broadcast(&t->cond);
  uv_mutex_unlock(&t->mu);
  if (r < 0) stopall(t);
  uv_run(&t->loop, UV_RUN_DEFAULT);
  uv_loop_close(&t->loop);
}

/* ---- the Lua side ------------------------------------------------ */

static void cstop(tcluster *t) {
  if (t->joined) return;
  uv_mutex_lock(&t->mu);
  t->stopreq = 1;
  if (!t->over) uv_async_send(&t->wake);
  uv_mutex_unlock(&t->mu);
  uv_thread_join(&t->thread);
  t->joined = 1;
  if (t->haslinks) plush_ctl_links_free(&t->links); /* nobody asks now */
  t->haslinks = 0;
  free(t->eng);
  t->eng = NULL;
  uv_cond_destroy(&t->cond);
  uv_mutex_destroy(&t->mu);
}

static tcluster *tocluster(lua_State *L) {
  return luaL_checkudata(L, 1, THREADS_MT);
}

static int l_stop(lua_State *L) {
  cstop(tocluster(L));
  return 0;
}

/* Waits (mu held) up to deadline (uv_hrtime ns) for cond; 0 on time out. */
static int waituntil(tcluster *t, uint64_t deadline) {
  uint64_t now = uv_hrtime();
  if (now >= deadline) return 0;
  uv_cond_timedwait(&t->cond, &t->mu, deadline - now);
  return 1;
}

static int fail(lua_State *L, const char *msg) {
  luaL_pushfail(L);
  lua_pushstring(L, msg);
  return 2;
}

/* cluster:socket() -> fd, key; or nil, why. The cluster is started (it
** has links) and not joined: the links are there until cstop. */
static int l_socket(lua_State *L) {
  tcluster *t = tocluster(L);
  int fd;
  if (t->joined) return fail(L, "the in-process cluster is stopped");
  if ((fd = plush_ctl_links_new(&t->links)) == PLUSH_ECLOSED)
    return fail(L, "the in-process cluster is stopped");
  if (fd < 0) return fail(L, uv_strerror(fd));
  lua_pushinteger(L, fd);
  lua_pushstring(L, t->keyhex);
  return 2;
}

static size_t optsize(lua_State *L, int i, const char *k) {
  lua_Integer v = 0;
  if (lua_getfield(L, i, k) != LUA_TNIL) {
    int isnum;
    v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || v < 0)
      luaL_error(L, "threads: %s: an integer >= 0 expected", k);
  }
  lua_pop(L, 1);
  return (size_t)v;
}

/*
** core.threads(n [, {memory_limit =, hwm =, timeout =, log =}]) -> cluster;
** raises when it cannot start or its engines do not register in time.
** Log lines (the controller's and the engines') go to log, else warnings
** and errors only, to stderr.
*/
static int l_threads(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  double timeout = 60;
  const char *log = NULL;
  sigset_t all, old;
  uv_thread_options_t to;
  uint64_t deadline;
  tcluster *t;
  char why[300];
  int r, ok;
  luaL_argcheck(L, n >= 1 && n <= 1024, 1, "a count of engines from 1 to 1024");
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  t = lua_newuserdatauv(L, sizeof *t, 0);
  memset(t, 0, sizeof *t);
  t->joined = 1; /* nothing to stop until the thread runs */
  luaL_setmetatable(L, THREADS_MT);
  t->n = (int)n;
  if (lua_istable(L, 2)) {
    t->memory_limit = optsize(L, 2, "memory_limit");
    t->hwm = (int)optsize(L, 2, "hwm");
    if (lua_getfield(L, 2, "timeout") != LUA_TNIL) timeout = luaL_checknumber(L, -1);
    if (lua_getfield(L, 2, "log") != LUA_TNIL) log = luaL_checkstring(L, -1);
    lua_pop(L, 2);
  }
  if (log && plush_log_open(log, "plush-threads") < 0)
    return luaL_error(L, "threads: cannot open the log file %s", log);
  if (!log) plush_log_level(PLUSH_LOG_WARN);
  if (plush_auth_init() < 0 || plush_key_generate(t->key, t->keyhex) < 0)
    return luaL_error(L, "threads: libsodium failed to initialise");
  if ((r = uv_loop_init(&t->loop)) < 0)
    return luaL_error(L, "threads: %s", uv_strerror(r));
  uv_async_init(&t->loop, &t->wake, onwake);
  t->wake.data = t;
  uv_mutex_init(&t->mu);
  uv_cond_init(&t->cond);
  /* Signals stay the caller's: the cluster thread inherits a mask that
  ** blocks them all, but those a fault raises in the thread itself (its
  ** engines' Lua threads put the caller's back: setup). */
  sigfillset(&all);
  sigdelset(&all, SIGSEGV);
  sigdelset(&all, SIGBUS);
  sigdelset(&all, SIGFPE);
  sigdelset(&all, SIGILL);
  sigdelset(&all, SIGTRAP);
  sigdelset(&all, SIGABRT);
  sigdelset(&all, SIGSYS);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  t->sigmask = old;
  to.flags = UV_THREAD_HAS_STACK_SIZE;
  to.stack_size = (size_t)1 << 20;
  r = uv_thread_create_ex(&t->thread, &to, clustermain, t);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r < 0) {
    uv_close((uv_handle_t *)&t->wake, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    uv_loop_close(&t->loop);
    uv_cond_destroy(&t->cond);
    uv_mutex_destroy(&t->mu);
    return luaL_error(L, "threads: cannot start a thread: %s", uv_strerror(r));
  }
  t->joined = 0;
  deadline = uv_hrtime() + (uint64_t)(timeout * 1e9);
  uv_mutex_lock(&t->mu);
  while (!t->started && waituntil(t, deadline)) {}
  while (t->started && t->startrc == 0 && t->failed == 0 &&
         t->registered < t->n && waituntil(t, deadline)) {}
  ok = t->started && t->startrc == 0 && t->failed == 0 && t->registered >= t->n;
  if (!t->started || t->startrc < 0)
    snprintf(why, sizeof why, "cannot start the in-process cluster: %s",
             t->started ? plush_strerror(t->startrc) : "timed out");
  else if (t->failed)
    snprintf(why, sizeof why, "%s", t->why);
  else
    snprintf(why, sizeof why, "%d of %d engine threads registered in %g s",
             t->registered, t->n, timeout);
  uv_mutex_unlock(&t->mu);
  if (!ok) {
    cstop(t);
    return luaL_error(L, "threads: %s", why);
  }
  return 1;
}

static const luaL_Reg meta[] = {
    {"__gc", l_stop}, {"__close", l_stop}, {NULL, NULL}};
static const luaL_Reg methods[] = {
    {"socket", l_socket}, {"stop", l_stop}, {NULL, NULL}};

void plush_threads_open(lua_State *L) {
  if (luaL_newmetatable(L, THREADS_MT)) {
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_threads);
  lua_setfield(L, -2, "threads");
}
