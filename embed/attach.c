/*
** attach.c — plush_engine_attach and friends (plush.h): a program's own
** lua_State served to a cluster by the engine library (engines/,
** plush_engine_opts.state).
**
** Threads: the caller's; the I/O thread started here (`io`, a uv loop of
** its own running the engine's I/O side); the engine's Lua thread (the
** serving thread). They meet in `mu`/`cond` (ready, ended, the lock's
** holder) and in `statelock`, which the serving thread holds while it
** uses L and the program holds while it does. Live handles are kept in
** one list, so that a stale or foreign handle and a second attach of the
** same state are refused instead of crashing.
*/
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <uv.h>

#include "plush.h" /* embed/plush.h: this directory's, the public one */
#include "embed_int.h"

#include "../core/plush.h" /* the internal one: plush_strerror */
#include "connfile.h"
#include "engine_host.h"
#include "log.h"

struct plush_attachment {
  plush_attachment *next;   /* the live list, under listmu */
  int detaching;            /* under listmu */
  lua_State *L;
  uv_mutex_t statelock;
  /* ---- under mu ---- */
  uv_mutex_t mu;
  uv_cond_t cond;           /* ready or ended */
  int ready, ended, status, id;
  char reason[256];
  int serving_known;
  uv_thread_t serving;      /* the engine's Lua thread */
  int owned;
  uv_thread_t owner;        /* the program's thread holding statelock */
  /* ---- the I/O thread ---- */
  uv_thread_t io;
  uv_loop_t loop;
  uv_async_t stop;
  plush_engine *e;          /* NULL once on_exit ran */
  plush_engine_opts o;
  plush_connfile cf;
  char file[4096];
};

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t listmu;
static plush_attachment *live;
static _Thread_local char errmsg[512];

static void initlist(void) { uv_mutex_init(&listmu); }

static int fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errmsg, sizeof errmsg, fmt, ap);
  va_end(ap);
  return code;
}

const char *plush_embed_errmsg(void) { return errmsg; }

const char *plush_embed_strerror(int code) {
  switch (code) {
  case 0: return "success";
  case PLUSH_EMBED_EINVAL: return "PLUSH_EMBED_EINVAL: invalid argument";
  case PLUSH_EMBED_EFILE:
    return "PLUSH_EMBED_EFILE: connection file unreadable or malformed";
  case PLUSH_EMBED_EATTACHED:
    return "PLUSH_EMBED_EATTACHED: this lua_State is already attached";
  case PLUSH_EMBED_ENOTATTACHED:
    return "PLUSH_EMBED_ENOTATTACHED: not an attached handle";
  case PLUSH_EMBED_ETHREAD:
    return "PLUSH_EMBED_ETHREAD: called from the engine's serving thread";
  case PLUSH_EMBED_ECONNECT:
    return "PLUSH_EMBED_ECONNECT: cannot join the cluster";
  case PLUSH_EMBED_ESTATE:
    return "PLUSH_EMBED_ESTATE: the state cannot be made an engine";
  case PLUSH_EMBED_ELOCK:
    return "PLUSH_EMBED_ELOCK: state lock already held, or not held";
  case PLUSH_EMBED_ENOMEM: return "PLUSH_EMBED_ENOMEM: out of memory";
  case PLUSH_EMBED_EENDED: return "PLUSH_EMBED_EENDED: the engine has ended";
  default: return "unknown plush embedding error";
  }
}

/* ---- the live list ---- */

/* a is live (and not being detached). listmu held. */
static int islive(plush_attachment *a) {
  for (plush_attachment *p = live; p; p = p->next)
    if (p == a) return !p->detaching;
  return 0;
}

static void unlist(plush_attachment *a) {
  uv_mutex_lock(&listmu);
  for (plush_attachment **p = &live; *p; p = &(*p)->next)
    if (*p == a) {
      *p = a->next;
      break;
    }
  uv_mutex_unlock(&listmu);
}

int embed_attached(lua_State *L) {
  int r = 0;
  uv_once(&once, initlist);
  uv_mutex_lock(&listmu);
  for (plush_attachment *p = live; p; p = p->next)
    if (p->L == L) r = 1;
  uv_mutex_unlock(&listmu);
  return r;
}

static int onserving(plush_attachment *a) {
  uv_thread_t self = uv_thread_self();
  int r;
  uv_mutex_lock(&a->mu);
  r = a->serving_known && uv_thread_equal(&a->serving, &self);
  uv_mutex_unlock(&a->mu);
  return r;
}

/* A live handle the caller may use: 0, or the code (errmsg set). */
static int check2(plush_attachment *a, const char *what, int anythread) {
  int ok;
  uv_once(&once, initlist);
  uv_mutex_lock(&listmu);
  ok = a != NULL && islive(a);
  uv_mutex_unlock(&listmu);
  if (!ok)
    return fail(PLUSH_EMBED_ENOTATTACHED,
                "%s: not an attached handle (never attached, or detached)",
                what);
  if (!anythread && onserving(a))
    return fail(PLUSH_EMBED_ETHREAD,
                "%s: called from the engine's serving thread (inside a "
                "request)", what);
  return 0;
}

static int check(plush_attachment *a, const char *what) {
  return check2(a, what, 0);
}

/* ---- the engine's callbacks ---- */

/* Lua thread, once the namespace is ready: who serves, and the id. */
static int setup(lua_State *L, void *data) {
  plush_attachment *a = data;
  int id = -1, top = lua_gettop(L);
  if (lua_getglobal(L, "engine") == LUA_TTABLE &&
      lua_getfield(L, -1, "id") == LUA_TNUMBER)
    id = (int)lua_tointeger(L, -1);
  lua_settop(L, top);
  uv_mutex_lock(&a->mu);
  a->serving = uv_thread_self();
  a->serving_known = 1;
  a->id = id;
  a->ready = 1;
  uv_cond_broadcast(&a->cond);
  uv_mutex_unlock(&a->mu);
  return 0;
}

/* I/O thread: the engine has finished (its threads joined). */
static void onexit(plush_engine *e, int status, const char *reason,
                   void *data) {
  plush_attachment *a = data;
  (void)e;
  a->e = NULL;
  uv_mutex_lock(&a->mu);
  a->ended = 1;
  a->serving_known = 0;
  a->status = status;
  snprintf(a->reason, sizeof a->reason, "%s", reason);
  uv_cond_broadcast(&a->cond);
  uv_mutex_unlock(&a->mu);
}

/* I/O thread: detach asked; the loop ends once everything is closed. */
static void onstop(uv_async_t *h) {
  plush_attachment *a = h->data;
  if (a->e) plush_engine_stop(a->e);
  uv_close((uv_handle_t *)h, NULL);
}

static void iomain(void *arg) {
  plush_attachment *a = arg;
  int rc = plush_engine_start(&a->loop, &a->o, &a->e);
  if (rc < 0) {
    uv_mutex_lock(&a->mu);
    a->ended = 1;
    a->status = PLUSH_ENGINE_FAILED;
    snprintf(a->reason, sizeof a->reason, "cannot connect to %.150s:%d: %s",
             a->cf.host, a->cf.port, plush_strerror(rc));
    uv_cond_broadcast(&a->cond);
    uv_mutex_unlock(&a->mu);
  }
  uv_run(&a->loop, UV_RUN_DEFAULT);
}

/* Stops and joins the I/O thread, frees a (unlisted first). */
static void teardown(plush_attachment *a) {
  uv_async_send(&a->stop);
  uv_thread_join(&a->io);
  uv_loop_close(&a->loop);
  unlist(a);
  uv_cond_destroy(&a->cond);
  uv_mutex_destroy(&a->mu);
  uv_mutex_destroy(&a->statelock);
  memset(&a->cf, 0, sizeof a->cf); /* the key */
  free(a);
}

/* ---- the API ---- */

static int waitfor(plush_attachment *a, int *flag, double secs) {
  uint64_t until = uv_hrtime() + (uint64_t)(secs * 1e9);
  uv_mutex_lock(&a->mu);
  while (!*flag && !a->ended) {
    uint64_t now = uv_hrtime();
    if (secs < 0)
      uv_cond_wait(&a->cond, &a->mu);
    else if (now >= until ||
             uv_cond_timedwait(&a->cond, &a->mu, until - now) != 0)
      break;
  }
  uv_mutex_unlock(&a->mu);
  return *flag || a->ended;
}

int plush_engine_attach(lua_State *L, const char *connection_file,
                        const plush_attach_opts *opts, plush_attachment **out) {
  plush_attach_opts dflt;
  plush_attachment *a;
  struct sigaction sa;
  char err[512];
  double timeout;
  int code;
  uv_once(&once, initlist);
  errmsg[0] = '\0';
  if (out) *out = NULL;
  memset(&dflt, 0, sizeof dflt);
  if (opts == NULL) opts = &dflt;
  if (L == NULL || out == NULL)
    return fail(PLUSH_EMBED_EINVAL, "plush_engine_attach: %s is NULL",
                L == NULL ? "the lua_State" : "out");
  if (opts->timeout < 0 || opts->reconnect < 0 || opts->id < 0 ||
      (opts->id_set && opts->id > 0x7fffffff))
    return fail(PLUSH_EMBED_EINVAL, "plush_engine_attach: bad option "
                "(timeout, reconnect and id must be 0 or more)");
  if ((a = calloc(1, sizeof *a)) == NULL)
    return fail(PLUSH_EMBED_ENOMEM, "plush_engine_attach: out of memory");
  if (connection_file == NULL) {
    if (plush_connfile_path(NULL, 0, a->file, sizeof a->file) < 0) {
      free(a);
      return fail(PLUSH_EMBED_EFILE, "no connection file: name one");
    }
  } else
    snprintf(a->file, sizeof a->file, "%s", connection_file);
  if (plush_connfile_read(a->file, &a->cf, err, sizeof err) < 0) {
    free(a);
    return fail(PLUSH_EMBED_EFILE, "%s", err);
  }
  /* One attachment per state, reserved before anything starts. */
  uv_mutex_lock(&listmu);
  for (plush_attachment *p = live; p; p = p->next)
    if (p->L == L) {
      uv_mutex_unlock(&listmu);
      memset(&a->cf, 0, sizeof a->cf);
      free(a);
      return fail(PLUSH_EMBED_EATTACHED,
                  "plush_engine_attach: this lua_State is already attached");
    }
  a->L = L;
  a->next = live;
  live = a;
  uv_mutex_unlock(&listmu);

  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);
  plush_log_level(opts->quiet ? PLUSH_LOG_ERROR + 1 : PLUSH_LOG_WARN);
  uv_mutex_init(&a->statelock);
  uv_mutex_init(&a->mu);
  uv_cond_init(&a->cond);
  a->id = -1;
  uv_loop_init(&a->loop);
  uv_async_init(&a->loop, &a->stop, onstop);
  a->stop.data = a;
  a->o.host = a->cf.host;
  a->o.port = a->cf.port;
  a->o.key = a->cf.key;
  a->o.encrypt = a->cf.encrypt;
  a->o.id = opts->id_set || opts->id > 0 ? opts->id : -1;
  a->o.file = a->file;
  a->o.reconnect = opts->reconnect;
  a->o.setup = setup;
  a->o.on_exit = onexit;
  a->o.data = a;
  a->o.state = L;
  a->o.statelock = &a->statelock;
  if (uv_thread_create(&a->io, iomain, a) != 0) {
    uv_close((uv_handle_t *)&a->stop, NULL);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    uv_loop_close(&a->loop);
    unlist(a);
    uv_cond_destroy(&a->cond);
    uv_mutex_destroy(&a->mu);
    uv_mutex_destroy(&a->statelock);
    memset(&a->cf, 0, sizeof a->cf);
    free(a);
    return fail(PLUSH_EMBED_ENOMEM, "cannot start the engine's thread");
  }
  timeout = opts->timeout > 0 ? opts->timeout : 30;
  waitfor(a, &a->ready, timeout);
  uv_mutex_lock(&a->mu);
  if (a->ready && !a->ended) {
    uv_mutex_unlock(&a->mu);
    *out = a;
    return 0;
  }
  if (a->ended) {
    code = strncmp(a->reason, "cannot make the state", 21) == 0 ||
                   strncmp(a->reason, "cannot adopt", 12) == 0 ||
                   strncmp(a->reason, "engine setup failed", 19) == 0
               ? PLUSH_EMBED_ESTATE
               : PLUSH_EMBED_ECONNECT;
    fail(code, "%s", a->reason);
  } else
    fail(PLUSH_EMBED_ECONNECT, "no welcome from the controller at %s:%d "
         "within %g s", a->cf.host, a->cf.port, timeout);
  code = a->ended ? code : PLUSH_EMBED_ECONNECT;
  uv_mutex_unlock(&a->mu);
  teardown(a);
  return code;
}

int plush_engine_detach(plush_attachment *a) {
  int rc = check(a, "plush_engine_detach"), held;
  uv_thread_t self = uv_thread_self();
  if (rc < 0) return rc;
  uv_mutex_lock(&listmu);
  if (a->detaching) { /* another thread got there first */
    uv_mutex_unlock(&listmu);
    return fail(PLUSH_EMBED_ENOTATTACHED,
                "plush_engine_detach: already being detached");
  }
  a->detaching = 1;
  uv_mutex_unlock(&listmu);
  uv_mutex_lock(&a->mu);
  held = a->owned && uv_thread_equal(&a->owner, &self);
  if (held) a->owned = 0;
  uv_mutex_unlock(&a->mu);
  if (held) uv_mutex_unlock(&a->statelock);
  teardown(a);
  return 0;
}

int plush_engine_lock(plush_attachment *a) {
  int rc = check(a, "plush_engine_lock");
  uv_thread_t self = uv_thread_self();
  if (rc < 0) return rc;
  uv_mutex_lock(&a->mu);
  rc = a->owned && uv_thread_equal(&a->owner, &self);
  uv_mutex_unlock(&a->mu);
  if (rc)
    return fail(PLUSH_EMBED_ELOCK,
                "plush_engine_lock: this thread holds the lock already");
  uv_mutex_lock(&a->statelock);
  uv_mutex_lock(&a->mu);
  a->owned = 1;
  a->owner = self;
  uv_mutex_unlock(&a->mu);
  return 0;
}

int plush_engine_unlock(plush_attachment *a) {
  int rc = check(a, "plush_engine_unlock");
  uv_thread_t self = uv_thread_self();
  if (rc < 0) return rc;
  uv_mutex_lock(&a->mu);
  rc = a->owned && uv_thread_equal(&a->owner, &self);
  if (rc) a->owned = 0;
  uv_mutex_unlock(&a->mu);
  if (!rc)
    return fail(PLUSH_EMBED_ELOCK,
                "plush_engine_unlock: this thread does not hold the lock");
  uv_mutex_unlock(&a->statelock);
  return 0;
}

int plush_engine_call(plush_attachment *a, int (*fn)(lua_State *L, void *ud),
                      void *ud) {
  int rc;
  if (fn == NULL) return fail(PLUSH_EMBED_EINVAL, "plush_engine_call: fn is NULL");
  if ((rc = plush_engine_lock(a)) < 0) return rc;
  rc = fn(a->L, ud);
  plush_engine_unlock(a);
  return rc;
}

int plush_engine_wait(plush_attachment *a, double seconds) {
  int rc = check(a, "plush_engine_wait");
  int never = 0;
  if (rc < 0) return rc;
  return waitfor(a, &never, seconds);
}

int plush_attach_id(plush_attachment *a) {
  int rc = check2(a, "plush_attach_id", 1);
  if (rc < 0) return rc;
  uv_mutex_lock(&a->mu);
  rc = a->ended ? fail(PLUSH_EMBED_EENDED, "the engine has ended: %s",
                       a->reason)
                : a->id;
  uv_mutex_unlock(&a->mu);
  return rc;
}
