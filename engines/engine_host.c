/*
** engine_host.c — the engine's I/O side: the connection to the controller
** and everything that must be answered while Lua runs (PING, INTERRUPT,
** SHUTDOWN). The Lua side is engine_lua.c; engine_int.h says who owns
** what.
**
** Life of an engine: start (connect, Lua thread builds its state in
** parallel) -> handshake -> REGISTER -> WELCOME (the Lua thread learns its
** id and may serve) -> requests ... -> finish (SHUTDOWN, stop, or the
** connection lost for good): the Lua thread is told to stop (interrupted
** if it runs user code), the connection closed; once both are gone the
** thread is joined, the handles closed, and on_exit runs.
**
** Losing the link after a WELCOME does not end the engine when
** o.reconnect is set: the queues are emptied (see engine_int.h, "Links"),
** the Lua thread goes on with whatever it runs, and the loop dials again
** with exponential back-off, re-reading the connection file each time,
** until a WELCOME comes back (the same namespace, the same id asked for)
** or the time is up.
**
** Over 600 lines: the I/O thread's three parts here (messages from the
** controller, frames from the Lua thread, start and end) share the
** loop-thread fields of one plush_engine and one conn's callbacks;
** reconnecting is engine_link.c, the queue between the threads queue.c,
** the Lua side engine_lua.c.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <lauxlib.h>

#include <sodium.h>

#include "codec.h"
#include "connfile.h"
#include "engine_int.h"
#include "log.h"
#include "mem.h"
#include "plush.h"

#define DEFAULT_HIGH_WATER ((size_t)8 << 20)
#define LUA_STACK ((size_t)8 << 20)


static void maybedone(plush_engine *e);

static void freequeues(plush_engine *e) {
  eng_msg_free(e);
  eng_infree(&e->in);
  eng_outfree(&e->out);
  eng_outfree(&e->spare);
  eng_outfree(&e->drop);
  eng_outfree(&e->dropping);
}

/* ---- messages from the controller -------------------------------- */

/*
** REGISTER {pid, host, id?, rank?, size?, reconnect?}: what the
** controller shows in %engines, and the id this engine would like (a
** restarted engine asks for its old one, and so does one that lost its
** link and comes back, with reconnect = true).
*/
typedef struct regmsg {
  plush_engine *e;
  plush_buf b;
  char err[200];
} regmsg;

/* Runs under lua_pcall (e->cl's only work is this and welcome's: both
** protected, so no message can raise through the I/O loop). */
static int buildregister(lua_State *L) {
  regmsg *m = lua_touserdata(L, 1);
  plush_engine *e = m->e;
  lua_Integer want;
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)getpid());
  lua_setfield(L, -2, "pid");
  lua_pushstring(L, e->hostname);
  lua_setfield(L, -2, "host");
  /* Back after a lost link: the id it had, namespace and all, and says
  ** so (reconnect = true), so that a controller still holding a stale
  ** link of the same engine can tell. */
  want = e->registered ? (lua_Integer)atomic_load(&e->id) : e->o.id;
  if (want >= 0) {
    lua_pushinteger(L, want);
    lua_setfield(L, -2, "id");
  }
  if (e->registered) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "reconnect");
  }
  if (e->rank >= 0) {
    lua_pushinteger(L, e->rank);
    lua_setfield(L, -2, "rank");
    lua_pushinteger(L, e->size);
    lua_setfield(L, -2, "size");
  }
  lua_pushboolean(L, plush_encode(L, -1, &m->b, "register", m->err,
                                  sizeof m->err) == 0);
  return 1;
}

static void sendregister(plush_engine *e) {
  lua_State *L = e->cl;
  plush_hdr h = {.type = PLUSH_T_REGISTER, .engine = PLUSH_ANY};
  regmsg m = {e, PLUSH_BUF_INIT, "out of memory"};
  size_t n;
  char *d;
  int ok;
  lua_pushcfunction(L, buildregister);
  lua_pushlightuserdata(L, &m);
  ok = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (!ok) {
    plush_buf_free(&m.b);
    eng_finish(e, PLUSH_ENGINE_FAILED, m.err);
    return;
  }
  d = plush_buf_steal(&m.b, &n);
  plush_conn_write_owned(e->conn, &h, d, n);
}

static void onready(plush_conn *c) {
  plush_engine *e = plush_conn_data(c);
  plush_debug("connected to controller %s", plush_conn_peer(c));
  sendregister(e);
}

/*
** A link can die without a word (a cable, a NAT, a suspended machine):
** no reset ever comes. The controller pings every heartbeat; when its
** WELCOME says after how long it gives a silent engine up (dead_after),
** the engine gives a silent controller up after as long, and reconnects.
*/
static void onwatch(uv_timer_t *t) {
  plush_engine *e = t->data;
  char msg[96];
  plush_mem_trim(PLUSH_MEM_AGE); /* big blocks kept for reuse go back */
  if (e->conn == NULL || e->silence == 0) return;
  if (uv_now(e->loop) - e->heard <= e->silence) return;
  snprintf(msg, sizeof msg, "no word from the controller for %.3g s",
           (double)e->silence / 1000);
  uv_timer_stop(&e->watch);
  plush_conn_close(e->conn, UV_ETIMEDOUT, msg);
}

/*
** WELCOME {id, dead_after?}: from now on the Lua thread may build the
** `engine` table and serve. Requests that arrived before it are queued
** meanwhile. After a reconnection the link is up again; the controller
** may have given another id than the one asked for (it was taken): the
** Lua thread updates engine.id before the next request.
*/
typedef struct welcomemsg {
  plush_frame *f;
  lua_Integer id;
  lua_Number dead;
} welcomemsg;

/* Reads WELCOME's fields under lua_pcall; a bad shape leaves id -1. */
static int readwelcome(lua_State *L) {
  welcomemsg *m = lua_touserdata(L, 1);
  char err[200];
  if (plush_decode(L, plush_frame_payload(m->f), m->f->hdr.len, NULL, err,
                   sizeof err) < 0 || !lua_istable(L, -1))
    return 0;
  if (lua_getfield(L, -1, "id") == LUA_TNUMBER && lua_isinteger(L, -1))
    m->id = lua_tointeger(L, -1);
  if (lua_getfield(L, -2, "dead_after") == LUA_TNUMBER)
    m->dead = lua_tonumber(L, -1);
  return 0;
}

static void welcome(plush_engine *e, plush_frame *f) {
  lua_State *L = e->cl;
  welcomemsg m = {f, -1, 0};
  lua_Integer id;
  uint32_t old;
  lua_pushcfunction(L, readwelcome);
  lua_pushlightuserdata(L, &m);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1), m.id = -1;
  id = m.id;
  if (id < 0 || id >= (lua_Integer)PLUSH_ANY) {
    eng_finish(e, PLUSH_ENGINE_FAILED, "bad WELCOME from the controller");
    return;
  }
  old = atomic_load(&e->id);
  atomic_store(&e->id, (uint32_t)id);
  uv_mutex_lock(&e->mu);
  e->welcomed = 1;
  e->online = 1;
  if (e->registered) e->stats.reconnects++;
  uv_cond_signal(&e->inc);
  uv_mutex_unlock(&e->mu);
  if (!e->registered)
    plush_info("registered with %s:%d as engine %lld", e->ctlhost, e->o.port,
               (long long)id);
  else if ((uint32_t)id == old)
    plush_info("reconnected to %s:%d as engine %lld", e->ctlhost, e->o.port,
               (long long)id);
  else
    plush_warn("reconnected to %s:%d as engine %lld (id %u was not granted "
               "again)", e->ctlhost, e->o.port, (long long)id, old);
  e->registered = 1;
  e->retrying = 0;
  uv_timer_stop(&e->retry);
  e->silence = m.dead > 0 && m.dead < 1e6 ? (uint64_t)(m.dead * 1000) : 0;
  if (e->silence) {
    uint64_t every = e->silence / 4 > 10 ? e->silence / 4 : 10;
    uv_timer_start(&e->watch, onwatch, every, every);
  }
}

#define HOLD_MS 1

/*
** A STARTED held back by the Lua thread (engine_lua.c's take) goes out
** HOLD_MS after the request came at the latest. While requests wait
** behind the running task the timer goes on: each may hold one when it
** is taken.
*/
static void onwake(plush_engine *e);

static void onhold(uv_timer_t *t) {
  plush_engine *e = t->data;
  int held, queued;
  uv_mutex_lock(&e->mu);
  held = e->held;
  queued = e->in.n > 0;
  uv_mutex_unlock(&e->mu);
  if (held) onwake(e);
  if (queued) uv_timer_start(&e->hold, onhold, HOLD_MS, 0);
}

static void request(plush_engine *e, plush_frame *f) {
  int r;
  if (e->exiting) {
    plush_frame_unref(f);
    return;
  }
  uv_mutex_lock(&e->mu);
  r = eng_inpush(&e->in, f);
  if (r == 0) eng_co_kick(e);
  uv_mutex_unlock(&e->mu);
  /* after the unlock: the Lua thread wakes to a free mu, not to wait on
  ** it again (a futex wait and wake more per request) */
  if (r == 0) uv_cond_signal(&e->inc);
  if (r == 0 && !uv_is_active((uv_handle_t *)&e->hold))
    uv_timer_start(&e->hold, onhold, HOLD_MS, 0);
  if (r < 0) {
    plush_frame_unref(f);
    eng_finish(e, PLUSH_ENGINE_FAILED, "out of memory queueing a request");
  }
}

/*
** INTERRUPT id: the running task (id == it, or id == 0) gets the hook,
** the one call on a lua_State that is safe from another thread; the Lua
** thread raises "interrupted" at its next instruction. A task still
** queued is marked and will be answered "interrupted" without running.
** A blocked print is woken so that the hook gets its chance.
*/
static void interrupt(plush_engine *e, uint64_t id) {
  uint64_t run;
  uv_mutex_lock(&e->mu);
  run = atomic_load(&e->running);
  if (!e->stopping && run != 0 && e->L && (id == 0 || id == run)) {
    atomic_store(&e->intr, run);
    eng_hook(e);
    uv_cond_broadcast(&e->outc);
    eng_watch(e, run, 0);
  } else if (id != 0) {
    for (size_t i = 0; i < e->in.n; i++) {
      inreq *r = eng_inat(&e->in, i);
      if (r->f->hdr.id == id) r->cancelled = 1;
    }
  }
  if (!e->stopping) eng_co_interrupt(e, id); /* a parked task (engine_co.c) */
  uv_mutex_unlock(&e->mu);
}

/*
** RESTART: a fresh namespace. The marker joins the request queue, so what
** arrives after it runs in the new state, in order; what it overtakes
** does not run in either: the running task is interrupted (the hook keeps
** raising while restarting is set, as when halting, so a pcall loop
** cannot hold the restart up) and the requests queued before it are
** answered "interrupted" without running. The Lua thread builds the new
** state when it takes the marker. Nothing is answered for the RESTART
** itself. Takes f.
*/
static void restart(plush_engine *e, plush_frame *f) {
  uint64_t run;
  int r;
  if (e->exiting) {
    plush_frame_unref(f);
    return;
  }
  uv_mutex_lock(&e->mu);
  for (size_t i = 0; i < e->in.n; i++) {
    inreq *q = eng_inat(&e->in, i);
    if (q->f->hdr.type == PLUSH_T_REQ) q->cancelled = CANCEL_RESTART;
  }
  r = eng_inpush(&e->in, f);
  if (r == 0) {
    atomic_fetch_add(&e->restarting, 1);
    run = atomic_load(&e->running);
    if (run != 0 && e->L) eng_hook(e);
    uv_cond_signal(&e->inc);
    uv_cond_broadcast(&e->outc);
    eng_co_kick(e);
    eng_watch(e, run, 1);
  }
  uv_mutex_unlock(&e->mu);
  if (r < 0) {
    plush_frame_unref(f);
    eng_finish(e, PLUSH_ENGINE_FAILED, "out of memory queueing a restart");
    return;
  }
  plush_info("restart asked: a fresh namespace follows");
}

/*
** RECLAIM id: the controller takes back a balanced task that has not
** started, for an idle engine to run (work stealing, controller.c). Still
** queued: it leaves the queue here, under the lock the Lua thread takes
** its next request by, and RECLAIMED says so; already taken (running or
** done): nothing, its reply follows as usual. Either way it runs once.
*/
static void reclaim(plush_engine *e, uint64_t id) {
  inring *q = &e->in;
  plush_frame *f = NULL;
  plush_hdr h = {.type = PLUSH_T_RECLAIMED, .id = id};
  uv_mutex_lock(&e->mu);
  for (size_t i = 0; i < q->n && f == NULL; i++) {
    inreq *r = eng_inat(q, i);
    if (r->f->hdr.type != PLUSH_T_REQ || r->f->hdr.id != id || r->cancelled)
      continue;
    f = r->f;
    for (size_t j = i; j + 1 < q->n; j++)
      *eng_inat(q, j) = *eng_inat(q, j + 1);
    q->n--;
  }
  uv_mutex_unlock(&e->mu);
  if (f == NULL) return;
  plush_frame_unref(f);
  h.engine = atomic_load(&e->id);
  plush_conn_write(e->conn, &h, NULL, 0);
}

/* PONG straight from the loop: a busy Lua thread does not delay it. */
static void pong(plush_engine *e, plush_frame *f) {
  plush_hdr h = {.type = PLUSH_T_PONG,
                 .engine = atomic_load(&e->id),
                 .id = f->hdr.id,
                 .aux = f->hdr.aux};
  plush_conn_write(e->conn, &h, NULL, 0);
}

/*
** A big request the controller relays while it arrives (frame.h's
** PLUSH_F_RELAYED) runs once the RELAY_END behind it says it is whole; a
** void one (its client left mid-way) is dropped unrun.
*/
static void onframe(plush_conn *c, plush_frame *f) {
  plush_engine *e = plush_conn_data(c);
  int r;
  e->heard = uv_now(e->loop);
  if ((r = plush_relay_take(&e->relayed, &f)) == PLUSH_RELAY_HELD) return;
  if (r < 0) {
    plush_conn_close(c, PLUSH_EPROTO,
                     "protocol error: a relayed request without its end");
    return;
  }
  switch (f->hdr.type) {
  case PLUSH_T_REQ: request(e, f); return;
  case PLUSH_T_RESTART: restart(e, f); return;
  case PLUSH_T_MSG: eng_msg_in(e, f); return;
  case PLUSH_T_CTRL_REPLY: eng_ts_reply(e, f); return;
  case PLUSH_T_PEERS: eng_msg_peers(e, f); return;
  case PLUSH_T_PING: pong(e, f); break;
  case PLUSH_T_INTERRUPT: interrupt(e, f->hdr.id); break;
  case PLUSH_T_RECLAIM: reclaim(e, f->hdr.id); break;
  case PLUSH_T_WELCOME: welcome(e, f); break;
  case PLUSH_T_SHUTDOWN:
    eng_finish(e, PLUSH_ENGINE_DONE, "shut down by the controller");
    break;
  default:
    plush_warn("ignoring a frame of type %d from the controller",
               f->hdr.type);
  }
  plush_frame_unref(f);
}

/*
** The socket's queue fell to half the high-water mark: a print blocked on
** it may go on.
*/
static void ondrain(plush_conn *c) {
  plush_engine *e = plush_conn_data(c);
  uv_mutex_lock(&e->mu);
  e->sockbytes = plush_conn_queued(c);
  uv_cond_broadcast(&e->outc);
  uv_mutex_unlock(&e->mu);
  eng_fd_resume(e);
}

static void onclose(plush_conn *c, int reason, const char *msg) {
  plush_engine *e = plush_conn_data(c);
  e->conn = NULL;
  plush_frame_unref(e->relayed); /* half a request: never to be whole */
  e->relayed = NULL;
  uv_timer_stop(&e->watch);
  if (!e->exiting)
    eng_lost(e, reason, msg);
  else
    maybedone(e);
}

const plush_conn_cbs eng_cbs = {onready, onframe, ondrain, onclose, NULL, NULL};

/* ---- frames from the Lua thread ---------------------------------- */

/*
** A batch (engine_lua.c's slot) was allocated with room to spare; it may
** wait in the socket's queue a while, so it gives the rest back first.
** Nobody else holds it yet, so moving it is safe.
*/
static plush_frame *trimbatch(plush_frame *f) {
  size_t n = plush_frame_size(f->hdr.len);
  plush_frame *g;
  /* under 1 KiB to give back (a small task's first batch): not worth a
  ** realloc, which takes the Lua thread's malloc arena lock */
  if (f->size - n < 1024) return f;
  g = plush_mem_realloc(f, f->size, n);
  if (g == NULL) return f;
  g->size = n;
  return g;
}

/*
** A sealed connection seals frame by frame (secure.h): a batch is taken
** apart there. Sealing copies each frame anyway.
*/
static void unbatch(plush_conn *c, plush_frame *b) {
  const unsigned char *p = b->raw;
  const unsigned char *end = b->raw + PLUSH_HDR_SIZE + b->hdr.len;
  while (p + PLUSH_HDR_SIZE <= end) {
    plush_hdr h;
    plush_hdr_unpack(p, &h);
    plush_conn_write(c, &h, p + PLUSH_HDR_SIZE, h.len);
    p += PLUSH_HDR_SIZE + h.len;
  }
}

/*
** The Lua thread queued frames (or finished). The whole queue is taken in
** one swap, so the lock is held for two pointer moves, not for the
** writes. Afterwards the Lua thread learns the socket's backlog, which is
** what its back-pressure wait compares against the high-water mark.
*/
static void onwake(plush_engine *e) {
  outvec t;
  int done;
  /* the Lua thread writes straight into the socket only when the out
  ** queue is empty (engine_out.c): the frames taken here go out before
  ** it may again, under the conn's writer lock, taken before mu */
  uv_mutex_lock(&e->wmu);
  uv_mutex_lock(&e->mu);
  t = e->out;
  e->out = e->spare;
  e->spare = t;
  t = e->drop;
  e->drop = e->dropping;
  e->dropping = t;
  e->outbytes = 0;
  e->batch = NULL;
  e->held = 0;
  uv_mutex_unlock(&e->mu);
  for (size_t i = 0; i < e->dropping.n; i++) plush_frame_unref(e->dropping.v[i]);
  e->dropping.n = 0;
  for (size_t i = 0; i < e->spare.n; i++) {
    plush_frame *f = e->spare.v[i];
    if (e->conn && f->hdr.type == 0 && plush_conn_secure(e->conn)) {
      unbatch(e->conn, f);
    } else if (e->conn) {
      if (f->hdr.type == 0) f = trimbatch(f);
      plush_conn_write_frame(e->conn, f);
    }
    plush_frame_unref(f);
  }
  e->spare.n = 0;
  uv_mutex_unlock(&e->wmu);
  uv_mutex_lock(&e->mu);
  e->sockbytes = e->conn ? plush_conn_queued(e->conn) : 0;
  uv_cond_broadcast(&e->outc);
  done = e->luadone;
  uv_mutex_unlock(&e->mu);
  eng_fd_resume(e);
  if (done) {
    if (!e->exiting) eng_finish(e, PLUSH_ENGINE_FAILED, e->luaerr);
    maybedone(e);
  }
}

/*
** The wake-up is an eventfd of the engine's own, not a uv_async_t:
** libuv's (1.44) loop spins, up to ~1,000 PAUSEs and then a yield, while
** the sender is between marking the handle and writing its eventfd, and
** a Lua thread preempted there by the very I/O thread its write woke
** (on the same vCPU) costs a spin per wake-up. Nothing to coalesce here:
** only the first frame queued after the loop's swap wakes it (the out
** queue's emptiness, under mu), and the loop reads the eventfd before it
** swaps, so a frame queued after the swap always wakes it again.
*/
void eng_wake(plush_engine *e) {
  uint64_t one = 1;
  while (write(e->wakefd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

static void onwakefd(uv_poll_t *p, int status, int events) {
  plush_engine *e = p->data;
  uint64_t n;
  (void)status;
  (void)events;
  while (read(e->wakefd, &n, sizeof n) < 0 && errno == EINTR) {
  }
  onwake(e);
}

/* ---- the end ----------------------------------------------------- */

static void closed(uv_handle_t *h) {
  plush_engine *e = h->data;
  if (--e->handles > 0) return;
  if (e->o.on_exit) e->o.on_exit(e, e->status, e->reason, e->o.data);
  close(e->wakefd);
  free(e->file);
  uv_cond_destroy(&e->inc);
  uv_cond_destroy(&e->outc);
  uv_mutex_destroy(&e->mu);
  uv_mutex_destroy(&e->wmu);
  free(e);
}

/*
** Runs after each of: finish, the connection's close, the Lua thread's
** last wake-up. Only when all three have happened is it safe to join
** (the thread has returned) and to free what both threads touched.
*/
static void maybedone(plush_engine *e) {
  int done = 1;
  if (!e->exiting || e->conn != NULL || e->joined) return;
  if (e->thread_started) {
    uv_mutex_lock(&e->mu);
    done = e->luadone;
    uv_mutex_unlock(&e->mu);
    if (!done) return;
    uv_thread_join(&e->thread);
  }
  e->joined = 1;
  freequeues(e);
  lua_close(e->cl);
  e->cl = NULL;
  e->handles = 5 + e->fdhandles;
  uv_close((uv_handle_t *)&e->hold, closed);
  uv_close((uv_handle_t *)&e->wake, closed);
  uv_close((uv_handle_t *)&e->retry, closed);
  uv_close((uv_handle_t *)&e->watch, closed);
  uv_close((uv_handle_t *)&e->nag, closed);
  eng_fd_stop(e, closed);
}

/*
** Stops everything, once. Running user code is interrupted with a hook
** that keeps raising while the engine halts, so a pcall in a loop cannot
** hold the engine up; a print blocked on back-pressure is released.
*/
void eng_finish(plush_engine *e, int status, const char *why) {
  if (e->exiting) return;
  e->exiting = 1;
  e->status = status;
  snprintf(e->reason, sizeof e->reason, "%s", why);
  uv_timer_stop(&e->retry);
  uv_timer_stop(&e->watch);
  uv_timer_stop(&e->nag);
  uv_timer_stop(&e->hold);
  if (status == PLUSH_ENGINE_DONE)
    plush_info("%s", why);
  else
    plush_error("%s", why);
  uv_mutex_lock(&e->mu);
  e->stopping = 1;
  atomic_store(&e->halting, 1);
  if (atomic_load(&e->running) != 0 && e->L) eng_hook(e);
  uv_cond_broadcast(&e->inc);
  uv_cond_broadcast(&e->outc);
  eng_co_kick(e);
  uv_mutex_unlock(&e->mu);
  if (e->conn) plush_conn_close(e->conn, 0, why);
  maybedone(e);
}

void plush_engine_stop(plush_engine *e) {
  eng_finish(e, PLUSH_ENGINE_DONE, "stopped");
}

/* ---- start ------------------------------------------------------- */

/*
** mpiexec tells each process its place through the environment: Open
** MPI as OMPI_COMM_WORLD_*, MPICH/Hydra and Slurm's PMI as PMI_*.
*/
static void mpienv(int *rank, int *size) {
  const char *r = getenv("OMPI_COMM_WORLD_RANK");
  const char *s = getenv("OMPI_COMM_WORLD_SIZE");
  if (r == NULL || s == NULL) {
    r = getenv("PMI_RANK");
    s = getenv("PMI_SIZE");
  }
  *rank = *size = -1;
  if (r && s && *r && *s) {
    *rank = atoi(r);
    *size = atoi(s);
  }
}

int plush_engine_start(uv_loop_t *loop, const plush_engine_opts *o,
                       plush_engine **out) {
  plush_engine *e;
  uv_thread_options_t to;
  size_t hl;
  int r;
  *out = NULL;
  if (o->has_fd ? o->fd < 0 || o->key == NULL
                : o->host == NULL || o->key == NULL || o->port <= 0 ||
                      o->port > 65535 || strlen(o->host) >= sizeof e->ctlhost)
    return PLUSH_EINVAL;
  if ((e = calloc(1, sizeof *e)) == NULL) return PLUSH_ENOMEM;
  if (o->file && (e->file = strdup(o->file)) == NULL) {
    free(e);
    return PLUSH_ENOMEM;
  }
  e->loop = loop;
  e->o = *o;
  snprintf(e->ctlhost, sizeof e->ctlhost, "%s",
           o->has_fd ? "in-process" : o->host);
  if (o->has_fd) e->o.reconnect = 0, e->o.file = NULL, e->o.argv = NULL;
  memcpy(e->key, o->key, PLUSH_KEY_SIZE);
  e->o.host = e->ctlhost;
  e->o.key = e->key;
  e->high_water = o->high_water ? o->high_water : DEFAULT_HIGH_WATER;
  atomic_init(&e->running, 0);
  atomic_init(&e->intr, 0);
  atomic_init(&e->id, PLUSH_ANY);
  atomic_init(&e->halting, 0);
  atomic_init(&e->restarting, 0);
  eng_co_init(e);
  e->rng = (uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)e) | 1;
  hl = sizeof e->hostname;
  if (uv_os_gethostname(e->hostname, &hl) < 0)
    snprintf(e->hostname, sizeof e->hostname, "localhost");
  mpienv(&e->rank, &e->size);
  if ((e->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
    r = uv_translate_sys_error(errno);
    free(e->file);
    free(e);
    return r;
  }
  if ((e->cl = luaL_newstate()) == NULL) {
    close(e->wakefd);
    free(e->file);
    free(e);
    return PLUSH_ENOMEM;
  }
  uv_mutex_init(&e->mu);
  uv_mutex_init_recursive(&e->wmu);
  uv_cond_init(&e->inc);
  uv_cond_init(&e->outc);
  r = eng_dial(e, 0);
  if (r < 0) {
    close(e->wakefd);
    lua_close(e->cl);
    uv_cond_destroy(&e->inc);
    uv_cond_destroy(&e->outc);
    uv_mutex_destroy(&e->mu);
    uv_mutex_destroy(&e->wmu);
    free(e->file);
    free(e);
    return r;
  }
  uv_poll_init(loop, &e->wake, e->wakefd);
  e->wake.data = e;
  uv_poll_start(&e->wake, UV_READABLE, onwakefd);
  uv_timer_init(loop, &e->retry);
  e->retry.data = e;
  uv_timer_init(loop, &e->watch);
  e->watch.data = e;
  uv_timer_init(loop, &e->hold);
  e->hold.data = e;
  eng_watch_init(e);
  e->fdhandles = eng_fd_start(e);
  /* Deep Lua recursion needs C stack; untouched pages cost nothing. */
  to.flags = UV_THREAD_HAS_STACK_SIZE;
  to.stack_size = LUA_STACK;
  if (uv_thread_create_ex(&e->thread, &to, eng_luamain, e) == 0)
    e->thread_started = 1;
  else
    eng_finish(e, PLUSH_ENGINE_FAILED, "cannot start the Lua thread");
  *out = e;
  return 0;
}

int plush_engine_id(plush_engine *e) {
  uint32_t id = atomic_load(&e->id);
  return id == PLUSH_ANY ? -1 : (int)id;
}

void *plush_engine_data(plush_engine *e) { return e->o.data; }

void plush_engine_stats_get(plush_engine *e, plush_engine_stats *s) {
  uv_mutex_lock(&e->mu);
  *s = e->stats;
  s->online = e->online;
  uv_mutex_unlock(&e->mu);
}
