/*
** engine_int.h — the insides of an engine, shared by engine_host.c (the
** I/O side, on the uv loop) and engine_lua.c (the Lua thread).
**
** Ownership, by thread:
**   loop thread   conn, wake, retry, cl, spare, dropping, exiting/status/reason,
**                 the reconnection state
**   Lua thread    L's contents, enc, mem, nsid
**   both          everything under mu; running/intr/id/halting/restarting
**                 (atomic)
** With o.state (an embedder's lua_State, engine_embed.c) the Lua thread
** also holds o.statelock whenever it uses L; the embedder takes it to use
** L between requests.
** The two sides meet in two queues under one mutex: `in` carries REQ
** frames to the Lua thread (cond inc wakes it), `out` carries frames to
** the socket (eng_wake; the loop drains all of it per
** wake-up by swapping it with `spare`). Only the frames themselves are
** allocated per message: both queues keep their capacity. Requests the
** Lua thread is done with go back the same way (`drop`, swapped with
** `dropping`), to be freed by the thread that allocated them.
**
** Links. Every connection that got a WELCOME is one link, numbered by
** gen. A task belongs to the link it arrived on (rungen): its STARTED,
** OUTPUT and REPLY go out only while that link is up. When it drops, the
** queues are emptied (requests of a controller that is gone are not run,
** output for it is not kept), gen moves on, and whatever the task still
** produces is counted and dropped until it ends.
*/
#ifndef PLUSH_ENGINE_INT_H
#define PLUSH_ENGINE_INT_H

#include <stdatomic.h>
#include <stddef.h>

#include "buf.h"
#include "conn.h"
#include "engine_host.h"
#include "engine_msg.h"
#include "frame.h"
#include "queue.h"

#define CODEPTH 16

/*
** Tasks as coroutines (engine_co.c): a task that waits on its subtasks
** (a Deferred of engine.client()) is parked, and the Lua thread serves
** other requests meanwhile. Fields marked mu are shared with the I/O
** side, which kicks efd while the Lua thread waits on it.
*/
typedef struct eng_costate {
  int efd;                  /* eventfd, -1 until engine.client() */
  int waiting;              /* mu: the Lua thread polls efd */
  size_t nparked;           /* mu: tasks parked */
  uint64_t *intr;           /* mu: INTERRUPTs for parked tasks */
  size_t nintr, capintr;
  int intrall;              /* mu: an INTERRUPT 0 came */
  lua_State *taskco;        /* mu: the task coroutine being resumed */
  void *cur;                /* Lua thread: its eng_cotask */
  int base;                 /* Lua thread: L's stack between tasks (an
                               embedder's state may hold values there) */
  struct plush_map *parked; /* Lua thread: id -> eng_cotask (map.h) */
  void *spare;              /* Lua thread: a finished task's eng_cotask and
                               its coroutine, kept for the next task */
} eng_costate;

/*
** What the namespace allocates (engine_lua.c's allocator). Lua thread
** only. limit 0: none. While lifted the limit is not enforced: the
** engine's own work in the state (building replies, error tables) must
** not fail because user code filled the namespace.
*/
typedef struct memacct {
  size_t used, limit;
  int lifted;
} memacct;

struct plush_engine {
  /* ---- loop thread ---- */
  uv_loop_t *loop;
  plush_conn *conn;         /* NULL once closed */
  plush_frame *relayed;     /* a RELAYED request waiting for its end */
  uv_poll_t wake;           /* Lua thread -> loop: output or "done", on */
  int wakefd;               /* ... this eventfd (eng_wake) */
  uv_timer_t retry;         /* next reconnection attempt / its deadline */
  uv_timer_t watch;         /* the controller's silence, when it says */
  uv_timer_t nag;           /* looks again after an interrupt/restart */
  uv_timer_t hold;          /* writes a STARTED held back (HOLD_MS) */
  struct {                  /* fd 1 and 2 captured (engine_fd.c) */
    int on, paused;
    int rfd[2];             /* the pipes' read ends (the Lua thread polls) */
    int ep;                 /* an epoll set of the two (-1: poll them) */
    int orig[2];            /* fd 1 and 2 as they were */
    uv_poll_t poll[2];
  } fds;
  int fdhandles;            /* 2 when fds.on */
  uint64_t nagged;          /* the task it looks at */
  int nagrestart;           /* after a RESTART (else an INTERRUPT) */
  int handles;              /* of wake, retry and watch not yet closed */
  lua_State *cl;            /* control messages (REGISTER, WELCOME) only */
  outvec spare;             /* the out queue being written */
  outvec dropping;          /* drop, being freed */
  plush_engine_opts o;      /* o.host and o.key point at the copies here */
  char ctlhost[256];
  uint8_t key[PLUSH_KEY_SIZE];
  int thread_started, joined;
  int exiting, status;
  char reason[256];
  char *file;               /* connection file re-read on reconnection */
  int registered;           /* a WELCOME was seen once */
  int retrying;             /* the link is down, reconnecting */
  uint64_t deadline;        /* uv_now when reconnection gives up */
  uint64_t delay;           /* ms before the next attempt, before jitter */
  uint64_t rng;             /* jitter */
  uint64_t heard;           /* uv_now of the last frame received */
  uint64_t silence;         /* ms of silence that mean the link is dead */

  /* ---- read-only once started ---- */
  char hostname[256];       /* this machine (engine.host) */
  int rank, size;           /* MPI rank and size from the launcher, or -1 */

  /* ---- shared, under mu ---- */
  uv_mutex_t mu;
  uv_mutex_t wmu; /* recursive: the conn's writes (core/conn_direct.c) */
  uint64_t sentat; /* Lua thread, mu: its last frame's time (engine_out.c) */
  uv_cond_t inc;            /* Lua waits: request, welcome or stop */
  uv_cond_t outc;           /* Lua waits: output drained */
  inring in;
  outvec out;
  outvec drop;              /* requests the Lua thread is done with: the
                               I/O thread frees them (their allocator's
                               arena), swapped with dropping in onwake */
  plush_frame *batch;       /* open batch: the last of out, or NULL */
  size_t outbytes;          /* bytes in out */
  size_t sockbytes;         /* bytes the conn had queued at last look */
  size_t high_water;
  int needwake;             /* out went non-empty: eng_unlock wakes the loop */
  int held;                 /* out holds a STARTED that did not wake it:
                               the next frame queued does (engine_out.c) */
  int welcomed, stopping, luadone, luafailed;
  int online;               /* a link is up (WELCOME seen on this conn) */
  uint64_t gen;             /* the current link's number */
  uint64_t rungen;          /* link the task being served came on */
  char luaerr[200];
  lua_State *L;             /* set once built; the I/O side only hooks it */
  lua_State *costack[CODEPTH]; /* coroutines being resumed, outermost first */
  int codepth;
  plush_engine_stats stats;
  eng_mbox mbox;            /* engine_msg.h: messages, the tuple space */
  eng_costate co;           /* engine_co.c: parked tasks */

  /* ---- lock-free ---- */
  _Atomic uint64_t running; /* id of the task in Lua, 0 when idle */
  _Atomic uint64_t intr;    /* task an interrupt is aimed at */
  _Atomic uint32_t id;      /* engine id, PLUSH_ANY before WELCOME */
  _Atomic int halting;      /* stopping: the hook raises every time */
  _Atomic int restarting;   /* RESTARTs queued: the hook raises too */

  /* ---- Lua thread ---- */
  uv_thread_t thread;
  plush_buf enc;            /* reply encoding, kept between requests:
                               encoff bytes of frame prefix, then it */
  size_t encoff;            /* PLUSH_FRAME_PREFIX, or 0 when that was refused */
  uint64_t fired;           /* task the interrupt hook raised in */
  memacct mem;              /* the namespace's allocations */
  int inuser;               /* user code runs (or a request is decoded) */
  int errkept;              /* engine_ops.c's handler kept an error value */
  int base;                 /* stack levels below the user's call: an
                               embedding host's (left out of tracebacks) */
  uint32_t nsid;            /* engine.id as the namespace has it */
  struct {                  /* the idle collection (engine_gc.c) */
    size_t base;            /* the heap's bytes after the last one */
    size_t mark;            /* ... when the engine last went idle */
    uint64_t at;            /* uv_hrtime when it is due, if due */
    int due;
  } gc;
  int chunks;               /* entries of exec's chunk cache (engine_chunk.c) */
};

/* One request while it is being served (Lua thread). */
typedef struct eng_task {
  plush_engine *e;
  plush_frame *req;
  double started, completed;  /* epoch seconds */
  int status;                 /* PLUSH_S_OK / _ERROR / _BADREQ */
  int autoret;                /* exec of an expression line (auto = true) */
} eng_task;

static inline plush_engine *eng_self(lua_State *L) {
  return *(plush_engine **)lua_getextraspace(L);
}

/* engine_debug.c */
/* Keeps the frames above `level` (the handler's caller: 1) of an error,
** but for the `bottom` levels at the bottom of the stack. */
PLUSH_INTERNAL void eng_dbg_capture(lua_State *L, int value, int level, int bottom);
/* Keeps the text of a chunk an exec ran, for ??name. */
PLUSH_INTERNAL void eng_dbg_keep(lua_State *L, int code, const char *chunkname);

/* engine_gc.c */
/* The engine goes idle: a step if the heap grew much, the idle collection
** due (gc.due, gc.at). */
PLUSH_INTERNAL void eng_gc_idle(plush_engine *e, lua_State *L);
/* The engine stayed idle until gc.at: a full collection if the heap grew,
** else steps until a cycle ends. */
PLUSH_INTERNAL void eng_gc_collect(plush_engine *e, lua_State *L);

/* engine_chunk.c */
/* Pushes the function of the text at index code, named name, as
** luaL_loadbufferx(..., "t") would (its status; the error pushed on
** failure), from a cache of the chunks exec ran twice. */
PLUSH_INTERNAL int eng_chunk_load(lua_State *L, int code, const char *name);

/* engine_reply.c */
/* The OK reply of the n scalar results from index first, written into
** e->enc without building its tables: 1, or 0 when they are not all
** scalars (nothing written; eng_encok's general path then). */
PLUSH_INTERNAL int eng_reply_fast(lua_State *L, eng_task *t, int first, int n);
/* engine_reply.c: the r on top becomes the OK payload (or an ERROR, when
** a result cannot travel); the error table on top the ERROR payload. */
PLUSH_INTERNAL void eng_encok(lua_State *L, eng_task *t);
PLUSH_INTERNAL void eng_encerr(lua_State *L, eng_task *t);
/* engine_ops.c: pushes {message = msg, traceback = ""}. */
PLUSH_INTERNAL void eng_errtable(lua_State *L, const char *msg);

/* engine_req.c */
/* apply's request {op = "apply", f = F, args = A} read without its
** tables: pushes F and A (nil for {n = 0}) and returns 1, or returns 0
** with nothing pushed (the general path reads the request then). */
PLUSH_INTERNAL int eng_req_apply(lua_State *L, const char *data, size_t len);
/* exec's request {op = "exec", code, name?, auto?} read the same way:
** pushes code, name (or nil) and auto (a boolean) and returns 1, or 0. */
PLUSH_INTERNAL int eng_req_exec(lua_State *L, const char *data, size_t len);

/* engine_out.c */
/* Replaces print, io.write and file:write with capturing versions. */
PLUSH_INTERNAL void eng_capture(lua_State *L);
/* Pushes the original of a replaced library function (or io.stdout...). */
PLUSH_INTERNAL void eng_pushorig(lua_State *L, const char *name);
/* mod[name] = f; the original is kept for eng_pushorig(orig). */
PLUSH_INTERNAL void eng_replace(lua_State *L, int mod, const char *name, const char *orig,
                 lua_CFunction f);
/* Queues a frame of the running task with a copy of data (STARTED,
** REPLY): 0, 1 when dropped because the task's link is down, or
** PLUSH_ENOMEM. */
PLUSH_INTERNAL int eng_sendcopy(plush_engine *e, int type, uint64_t id, int status,
                 const void *data, size_t len);

/* mu held: a small frame or reply queued inside the caller's critical
** section (engine_out.c); 2 when it is not small (nothing done). */
PLUSH_INTERNAL int eng_sendsmall(plush_engine *e, int type, uint64_t id,
                                 int status, const void *data, size_t len);
PLUSH_INTERNAL int eng_replysmall(plush_engine *e, uint64_t id, int status);
/*
** e->enc starts with room for a frame's bookkeeping and header, so a big
** reply is encoded once and becomes its own frame (eng_sendreply) instead
** of being copied into one: 100 MB less to move per 100 MB pulled.
** eng_enc_reset empties it to that prefix; the payload is what follows.
*/
PLUSH_INTERNAL void eng_enc_reset(plush_engine *e);
static inline size_t eng_enc_len(const plush_engine *e) {
  return plush_buf_total(&e->enc) - e->encoff; /* big strings: segments */
}
/* Queues e->enc's reply to task id like eng_sendcopy (same results); a
** big one takes e->enc's memory along, leaving e->enc empty. */
PLUSH_INTERNAL int eng_sendreply(plush_engine *e, uint64_t id, int status);

/* engine_intr.c: the timer that tells a client its interrupt is stuck
** (in a C call, or caught), and re-executes an engine whose RESTART is
** (see there). Loop thread. */
PLUSH_INTERNAL void eng_watch_init(plush_engine *e);
PLUSH_INTERNAL void eng_watch(plush_engine *e, uint64_t task, int restart);

/* engine_fd.c: fd 1 and 2 as task output (see there). */
PLUSH_INTERNAL int eng_fd_start(plush_engine *e);
PLUSH_INTERNAL void eng_fd_resume(plush_engine *e);
PLUSH_INTERNAL void eng_fd_restore(plush_engine *e);
PLUSH_INTERNAL void eng_fd_stop(plush_engine *e, uv_close_cb cb);
PLUSH_INTERNAL void eng_fd_settle(plush_engine *e);
/* engine_out.c, loop thread: fd output of the running task. */
PLUSH_INTERNAL int eng_sendout(plush_engine *e, uint32_t stream, const char *data,
                               size_t n);

/* engine_lua.c */
PLUSH_INTERNAL void eng_luamain(void *arg);
PLUSH_INTERNAL double eng_now(void);
/* Sets the interrupt hook on e->L and the coroutines it is resuming.
** Caller holds mu and saw a task run. */
PLUSH_INTERNAL void eng_hook(plush_engine *e);
/* Runs the Lua source api (len bytes, chunk "=engine") with the engine
** table on top of L as its argument; raises its error. */
PLUSH_INTERNAL void eng_runapi(lua_State *L, const char *api, size_t len);
/* mu held: the running task's link is up (its frames may go out). */
static inline int eng_live(plush_engine *e) {
  return e->online && e->rungen == e->gen;
}

/* engine_embed.c: an embedder's state (o.state) as the namespace. Lua
** thread, under o.statelock. eng_adopt builds it with build (NULL and
** luaerr on failure, the state given back); eng_giveback undoes it; eng_keep
** answers a RESTART (the state is kept). */
PLUSH_INTERNAL lua_State *eng_adopt(plush_engine *e, lua_CFunction build);
PLUSH_INTERNAL void eng_giveback(plush_engine *e, lua_State *L);
PLUSH_INTERNAL void eng_keep(plush_engine *e);

/* engine_co.c */
PLUSH_INTERNAL void eng_co_init(plush_engine *e);
PLUSH_INTERNAL void eng_co_free(plush_engine *e);
/* mu held (I/O side): a request, stop or restart came: wake a poll. */
PLUSH_INTERNAL void eng_co_kick(plush_engine *e);
/* mu held (I/O side): INTERRUPT id for a task that may be parked. */
PLUSH_INTERNAL void eng_co_interrupt(plush_engine *e, uint64_t id);
/* Lua thread: the C side of engine.client() in a new namespace. */
PLUSH_INTERNAL void eng_co_open(lua_State *L);
/* engine_mr.c: mapreduce's emit and grouping pass, in the registry. */
PLUSH_INTERNAL void eng_mr_open(lua_State *L);
/* Runs task t (a fresh request) as a coroutine: 1 when it parked, else
** it ended and eng_served was called. */
PLUSH_INTERNAL int eng_co_serve(plush_engine *e, lua_State *L, eng_task *t);
/* Resumes the parked tasks that are ready; block: wait for a reply, an
** interrupt or a request (efd) first. */
PLUSH_INTERNAL void eng_co_poll(plush_engine *e, lua_State *L, int block);
/* Ends every parked task with an error reply (msg), or silently when
** msg is NULL (the engine stops: an embedder's state lock is taken). */
PLUSH_INTERNAL void eng_co_reset(plush_engine *e, lua_State *L, const char *msg);
/* An embedder's state lock held: a RESTART ends the parked tasks. */
PLUSH_INTERNAL void eng_co_restarted(plush_engine *e, lua_State *L);
/* An embedder's state lock held: engine.client()'s connection closes
** (the state is given back). */
PLUSH_INTERNAL void eng_co_close(plush_engine *e, lua_State *L);

/* engine_lua.c, for engine_co.c: engine.task of t; the end of a task
** whose call returned st (error value on top of L when not LUA_OK):
** its reply is built and sent, the frame freed. */
PLUSH_INTERNAL void eng_settask(lua_State *L, eng_task *t);
PLUSH_INTERNAL void eng_served(plush_engine *e, lua_State *L, eng_task *t, int st);

/* engine_ops.c: a lua_CFunction run under lua_pcall with the task as a
** light userdata; leaves the encoded reply in e->enc, its status in
** t->status. Raises (a string) only for failures outside user code. */
PLUSH_INTERNAL int eng_serve(lua_State *L);

/* engine_host.c: the conn's callbacks; the end of the engine (status,
** why), asked once. */
PLUSH_INTERNAL const plush_conn_cbs eng_cbs;
/* Either thread, after queueing the first frame since the loop's last
** swap (or luadone): the loop wakes and drains the out queue. */
PLUSH_INTERNAL void eng_wake(plush_engine *e);
/* Releases mu, then wakes the loop when a frame queued under it asked
** (needwake): the loop, woken, takes mu at once, so it is woken to a free
** mutex rather than to wait on it (a futex wait and wake more a frame). */
static inline void eng_unlock(plush_engine *e) {
  int w = e->needwake;
  e->needwake = 0;
  uv_mutex_unlock(&e->mu);
  if (w) eng_wake(e);
}
PLUSH_INTERNAL void eng_finish(plush_engine *e, int status, const char *why);

/* engine_link.c: dials the controller (hs: ms an attempt's handshake may
** take, 0 the default); the connection closed without eng_finish asking
** (reconnects, or ends the engine). */
PLUSH_INTERNAL int eng_dial(plush_engine *e, uint64_t hs);
PLUSH_INTERNAL void eng_lost(plush_engine *e, int reason, const char *msg);

#endif
