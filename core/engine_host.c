/*
** engine_host.c — the engine's I/O side: the connection to the controller
** and everything that must be answered while Lua runs (PING, INTERRUPT,
** SHUTDOWN). The Lua side is engine_lua.c; engine_int.h says who owns
** what.
**
** Life of an engine: start (connect, Lua thread builds its state in
** parallel) -> handshake -> REGISTER -> WELCOME (the Lua thread learns its
** id and may serve) -> requests ... -> finish (SHUTDOWN, stop, or the
** connection lost): the Lua thread is told to stop (interrupted if it runs
** user code), the connection closed; once both are gone the thread is
** joined, the wake handle closed, and on_exit runs.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "codec.h"
#include "engine_int.h"
#include "log.h"
#include "plush.h"

#define DEFAULT_HIGH_WATER ((size_t)8 << 20)
#define LUA_STACK ((size_t)8 << 20)

static void finish(plush_engine *e, int status, const char *why);
static void maybedone(plush_engine *e);

/* ---- queues ------------------------------------------------------ */

int eng_outpush(outvec *q, plush_frame *f) {
  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 64;
    plush_frame **v = realloc(q->v, cap * sizeof *v);
    if (v == NULL) return PLUSH_ENOMEM;
    q->v = v;
    q->cap = cap;
  }
  q->v[q->n++] = f;
  return 0;
}

/*
** A ring, so that popping from the front costs nothing; it only grows
** (by unwrapping into a buffer twice the size) when full.
*/
int eng_inpush(inring *q, plush_frame *f) {
  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 16;
    inreq *v = malloc(cap * sizeof *v);
    if (v == NULL) return PLUSH_ENOMEM;
    for (size_t i = 0; i < q->n; i++) v[i] = q->v[(q->head + i) & (q->cap - 1)];
    free(q->v);
    q->v = v;
    q->cap = cap;
    q->head = 0;
  }
  q->v[(q->head + q->n) & (q->cap - 1)] = (inreq){f, 0};
  q->n++;
  return 0;
}

static void freequeues(plush_engine *e) {
  for (size_t i = 0; i < e->in.n; i++)
    plush_frame_unref(e->in.v[(e->in.head + i) & (e->in.cap - 1)].f);
  for (size_t i = 0; i < e->out.n; i++) plush_frame_unref(e->out.v[i]);
  for (size_t i = 0; i < e->spare.n; i++) plush_frame_unref(e->spare.v[i]);
  free(e->in.v);
  free(e->out.v);
  free(e->spare.v);
  memset(&e->in, 0, sizeof e->in);
  memset(&e->out, 0, sizeof e->out);
  memset(&e->spare, 0, sizeof e->spare);
}

/* ---- messages from the controller -------------------------------- */

/*
** REGISTER {pid, host, id?, rank?, size?}: what the controller shows in
** %engines, and the id this engine would like (a restarted engine asks
** for its old one).
*/
static void sendregister(plush_engine *e) {
  lua_State *L = e->cl;
  plush_buf b = PLUSH_BUF_INIT;
  plush_hdr h = {.type = PLUSH_T_REGISTER, .engine = PLUSH_ANY};
  char err[200];
  size_t n;
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)getpid());
  lua_setfield(L, -2, "pid");
  lua_pushstring(L, e->hostname);
  lua_setfield(L, -2, "host");
  if (e->o.id >= 0) {
    lua_pushinteger(L, e->o.id);
    lua_setfield(L, -2, "id");
  }
  if (e->rank >= 0) {
    lua_pushinteger(L, e->rank);
    lua_setfield(L, -2, "rank");
    lua_pushinteger(L, e->size);
    lua_setfield(L, -2, "size");
  }
  if (plush_encode(L, -1, &b, "register", err, sizeof err) < 0) {
    lua_pop(L, 1);
    finish(e, PLUSH_ENGINE_FAILED, err);
    return;
  }
  lua_pop(L, 1);
  {
    char *d = plush_buf_steal(&b, &n);
    plush_conn_write_owned(e->conn, &h, d, n);
  }
}

static void onready(plush_conn *c) {
  plush_engine *e = plush_conn_data(c);
  plush_debug("connected to controller %s", plush_conn_peer(c));
  sendregister(e);
}

/*
** WELCOME {id}: from now on the Lua thread may build the `engine` table
** and serve. Requests that arrived before it are queued meanwhile.
*/
static void welcome(plush_engine *e, plush_frame *f) {
  lua_State *L = e->cl;
  char err[200];
  lua_Integer id = -1;
  if (plush_decode(L, plush_frame_payload(f), f->hdr.len, NULL, err,
                   sizeof err) == 0) {
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "id");
      if (lua_isinteger(L, -1)) id = lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  if (id < 0 || id >= (lua_Integer)PLUSH_ANY) {
    finish(e, PLUSH_ENGINE_FAILED, "bad WELCOME from the controller");
    return;
  }
  atomic_store(&e->id, (uint32_t)id);
  uv_mutex_lock(&e->mu);
  e->welcomed = 1;
  uv_cond_signal(&e->inc);
  uv_mutex_unlock(&e->mu);
  plush_info("registered with %s as engine %lld", e->ctlhost, (long long)id);
}

static void request(plush_engine *e, plush_frame *f) {
  int r;
  if (e->exiting) {
    plush_frame_unref(f);
    return;
  }
  uv_mutex_lock(&e->mu);
  r = eng_inpush(&e->in, f);
  if (r == 0) uv_cond_signal(&e->inc);
  uv_mutex_unlock(&e->mu);
  if (r < 0) {
    plush_frame_unref(f);
    finish(e, PLUSH_ENGINE_FAILED, "out of memory queueing a request");
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
  } else if (id != 0) {
    for (size_t i = 0; i < e->in.n; i++) {
      inreq *r = &e->in.v[(e->in.head + i) & (e->in.cap - 1)];
      if (r->f->hdr.id == id) r->cancelled = 1;
    }
  }
  uv_mutex_unlock(&e->mu);
}

/* PONG straight from the loop: a busy Lua thread does not delay it. */
static void pong(plush_engine *e, plush_frame *f) {
  plush_hdr h = {.type = PLUSH_T_PONG,
                 .engine = atomic_load(&e->id),
                 .id = f->hdr.id,
                 .aux = f->hdr.aux};
  plush_conn_write(e->conn, &h, NULL, 0);
}

static void onframe(plush_conn *c, plush_frame *f) {
  plush_engine *e = plush_conn_data(c);
  switch (f->hdr.type) {
  case PLUSH_T_REQ: request(e, f); return;
  case PLUSH_T_PING: pong(e, f); break;
  case PLUSH_T_INTERRUPT: interrupt(e, f->hdr.id); break;
  case PLUSH_T_WELCOME: welcome(e, f); break;
  case PLUSH_T_SHUTDOWN:
    finish(e, PLUSH_ENGINE_DONE, "shut down by the controller");
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
}

/*
** The controller went away (or never answered). For now the engine ends
** with status 1; a reconnect loop (same id asked in REGISTER, namespace
** kept) would start here instead.
*/
static void lost(plush_engine *e, int reason, const char *msg) {
  char why[640];
  int welcomed;
  uv_mutex_lock(&e->mu);
  welcomed = e->welcomed;
  uv_mutex_unlock(&e->mu);
  if (welcomed)
    snprintf(why, sizeof why, "lost the controller at %s:%d: %s", e->ctlhost,
             e->o.port, msg);
  else
    snprintf(why, sizeof why, "cannot reach the controller at %s:%d: %s",
             e->ctlhost, e->o.port,
             reason < 0 && reason > -4096 ? uv_strerror(reason) : msg);
  finish(e, PLUSH_ENGINE_FAILED, why);
}

static void onclose(plush_conn *c, int reason, const char *msg) {
  plush_engine *e = plush_conn_data(c);
  e->conn = NULL;
  if (!e->exiting)
    lost(e, reason, msg);
  else
    maybedone(e);
}

static const plush_conn_cbs cbs = {onready, onframe, ondrain, onclose};

/* ---- frames from the Lua thread ---------------------------------- */

/*
** A batch (engine_lua.c's slot) was allocated with room to spare; it may
** wait in the socket's queue a while, so it gives the rest back first.
** Nobody else holds it yet, so moving it is safe.
*/
static plush_frame *trimbatch(plush_frame *f) {
  plush_frame *g = realloc(f, sizeof *f + PLUSH_HDR_SIZE + f->hdr.len);
  return g ? g : f;
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
static void onwake(uv_async_t *a) {
  plush_engine *e = a->data;
  outvec t;
  int done;
  uv_mutex_lock(&e->mu);
  t = e->out;
  e->out = e->spare;
  e->spare = t;
  e->outbytes = 0;
  e->batch = NULL;
  uv_mutex_unlock(&e->mu);
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
  uv_mutex_lock(&e->mu);
  e->sockbytes = e->conn ? plush_conn_queued(e->conn) : 0;
  uv_cond_broadcast(&e->outc);
  done = e->luadone;
  uv_mutex_unlock(&e->mu);
  if (done) {
    if (!e->exiting) finish(e, PLUSH_ENGINE_FAILED, e->luaerr);
    maybedone(e);
  }
}

/* ---- the end ----------------------------------------------------- */

static void closed(uv_handle_t *h) {
  plush_engine *e = h->data;
  if (e->o.on_exit) e->o.on_exit(e, e->status, e->reason, e->o.data);
  uv_cond_destroy(&e->inc);
  uv_cond_destroy(&e->outc);
  uv_mutex_destroy(&e->mu);
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
  uv_close((uv_handle_t *)&e->wake, closed);
}

/*
** Stops everything, once. Running user code is interrupted with a hook
** that keeps raising while the engine halts, so a pcall in a loop cannot
** hold the engine up; a print blocked on back-pressure is released.
*/
static void finish(plush_engine *e, int status, const char *why) {
  if (e->exiting) return;
  e->exiting = 1;
  e->status = status;
  snprintf(e->reason, sizeof e->reason, "%s", why);
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
  uv_mutex_unlock(&e->mu);
  if (e->conn) plush_conn_close(e->conn, 0, why);
  maybedone(e);
}

void plush_engine_stop(plush_engine *e) {
  finish(e, PLUSH_ENGINE_DONE, "stopped");
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
  plush_conn_opts co;
  uv_thread_options_t to;
  size_t hl;
  int r;
  *out = NULL;
  if (o->host == NULL || o->key == NULL || o->port <= 0 || o->port > 65535 ||
      strlen(o->host) >= sizeof e->ctlhost)
    return PLUSH_EINVAL;
  if ((e = calloc(1, sizeof *e)) == NULL) return PLUSH_ENOMEM;
  e->loop = loop;
  e->o = *o;
  snprintf(e->ctlhost, sizeof e->ctlhost, "%s", o->host);
  memcpy(e->key, o->key, PLUSH_KEY_SIZE);
  e->o.host = e->ctlhost;
  e->o.key = e->key;
  e->high_water = o->high_water ? o->high_water : DEFAULT_HIGH_WATER;
  atomic_init(&e->running, 0);
  atomic_init(&e->intr, 0);
  atomic_init(&e->id, PLUSH_ANY);
  atomic_init(&e->halting, 0);
  hl = sizeof e->hostname;
  if (uv_os_gethostname(e->hostname, &hl) < 0)
    snprintf(e->hostname, sizeof e->hostname, "localhost");
  mpienv(&e->rank, &e->size);
  if ((e->cl = luaL_newstate()) == NULL) {
    free(e);
    return PLUSH_ENOMEM;
  }
  uv_mutex_init(&e->mu);
  uv_cond_init(&e->inc);
  uv_cond_init(&e->outc);
  memset(&co, 0, sizeof co);
  co.key = e->key;
  co.role = PLUSH_ROLE_ENGINE;
  co.max_frame = o->max_frame;
  co.encrypt = o->encrypt;
  co.high_water = e->high_water;
  r = plush_conn_connect(loop, e->ctlhost, o->port, &co, &cbs, e, &e->conn);
  if (r < 0) {
    lua_close(e->cl);
    uv_cond_destroy(&e->inc);
    uv_cond_destroy(&e->outc);
    uv_mutex_destroy(&e->mu);
    free(e);
    return r;
  }
  uv_async_init(loop, &e->wake, onwake);
  e->wake.data = e;
  /* Deep Lua recursion needs C stack; untouched pages cost nothing. */
  to.flags = UV_THREAD_HAS_STACK_SIZE;
  to.stack_size = LUA_STACK;
  if (uv_thread_create_ex(&e->thread, &to, eng_luamain, e) == 0)
    e->thread_started = 1;
  else
    finish(e, PLUSH_ENGINE_FAILED, "cannot start the Lua thread");
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
  uv_mutex_unlock(&e->mu);
}
