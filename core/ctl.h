/*
** ctl.h — the controller's insides, shared by its files:
**   controller.c  connections, routing, replies, engines, heartbeats
**   controller_main.c  the plush-controller program (options, signals)
**   ctl_guard.c   protected calls, payloads checked by shape, caps on
**                 handshakes and connections
**   ctl_sched.c   a task's life: submission, options, dependencies,
**                 the balanced queue, timeouts
**   ctl_steal.c   idle engines take back tasks queued behind a long one
**   ctl_relay.c   big requests and replies passed on as they arrive
**   ctl_park.c    replies parked for a client that is not reading
**   ctl_store.c   the result store (SQLite and memory), group commit
**   ctl_rows.c    its rows, inserted behind, many per statement
**   ctl_ops.c     control requests (CTRL) and the replies to them
**   ctl_msg.c     messages between engines (MSG), who is up (PEERS)
**   ctl_tuples.c  the tuple space: its ops and waiters (ctl_tuples.h);
**   ctl_tuples_db.c  its persistence in the store's database
** Everything runs on the controller's one loop thread. Functions declared
** here are PLUSH_INTERNAL: not part of libplush's API.
*/
#ifndef PLUSH_CTL_H
#define PLUSH_CTL_H

#include <lua.h>
#include <sqlite3.h>

#include "conn.h"
#include "controller.h"
#include "frame.h"
#include "map.h"
#include "plush.h"

typedef struct task task;
typedef struct peer peer;
typedef struct parked parked;

enum { P_NEW, P_ENGINE, P_CLIENT };

/*
** A task lives from the REQ's arrival until its reply (or failure) is
** stored. While queued it sits in ctl->queue; while assigned, in its
** engine's list. A balanced task keeps its request frame so that it can
** be resubmitted when its engine dies.
*/
struct task {
  uint64_t id;
  plush_ctl *ctl;
  peer *engine;
  plush_frame *req;
  uint32_t off;       /* the request starts here in req's payload */
  uv_timer_t *timer;
  int deaths;
  int attempts;       /* times assigned to an engine (engine.task.attempt) */
  int runs;           /* times it started on an engine (STARTED frames) */
  int balanced;
  int timedout;
  int retries;        /* resubmissions left after the task's own error */
  int waiting;        /* in ctl->waiting: dependencies not done yet */
  int reclaiming;     /* RECLAIM sent to its engine, no answer yet */
  int detached;       /* runs on when its client leaves (else cancelled) */
  int durable;        /* PLUSH_F_DURABLE: its reply waits for the commit */
  int parked;         /* its engine said it waits on subtasks (ctl_sched.c) */
  uint32_t *targets;  /* balanced: the engines allowed (NULL: any) */
  int ntargets;
  uint32_t *avoid;    /* engines where it failed */
  int navoid;
  uint64_t *after;    /* dependencies still to finish */
  int nafter;
  double submitted, started;
  task *prev, *next;
};

struct peer {
  plush_ctl *ctl;
  plush_conn *conn;
  int kind;
  int stalled_out;    /* client: disconnected for not reading (ctl_park.c) */
  uint32_t id;
  long pid;
  char host[128];
  int rank, size;
  int inflight;
  double pace;        /* engine: recent seconds per task (EWMA), 0 unknown */
  int parked;         /* engine: of inflight, tasks parked on subtasks */
  uint64_t running;
  uint64_t last_seen; /* uv_now() of the last frame from this engine */
  task tasks;         /* sentinel of the engine's task list */
  int holds;          /* engine: clients too slow to take its output */
  plush_frame *relay; /* engine: the big reply passed on as it arrives;
                         client: the big request submitted as it arrives */
  uint32_t relay_to;  /* ... to this client / engine */
  size_t relay_sent;  /* ... payload bytes of it written so far */
  size_t relay_mark;  /* client: relay_sent at the last heartbeat */
  int relay_mode;     /* RELAY_* (ctl_relay.c): the request or reply relay */
  int relay_idle;     /* client: heartbeats its spliced request stalled */
  uint32_t *held;     /* client: ids of the engines it paused */
  int nheld;
  parked *park, *park_tail; /* client: frames waiting for it to read */
  uint64_t park_sent; /* client: plush_conn_sent at the last look */
  uint64_t park_seen; /* client: uv_now() when it last read (ctl_park_check) */
  int msgsub;         /* engine: told of engines up and down (ctl_msg.c) */
  double since;       /* client: ctl_clock() when it connected */
  int following;      /* client: follows another's work (ctl_follow.c) */
  uint32_t follows;   /* ... that client's, or PLUSH_ANY: every other's */
  int follow_dropped; /* ... events lost while it did not keep up */
  peer *prev, *next;  /* every connection, for shutdown */
};

/* A stored reply: the frame as the engine (or controller) sent it. */
typedef struct stored {
  uint64_t id;
  double completed;  /* ctl_clock() when stored, as the database's column */
  plush_frame *f;
  struct stored *prev, *next; /* oldest first */
} stored;

struct plush_ctl {
  uv_loop_t *loop;
  uv_tcp_t server;
  uv_pipe_t local;    /* the Unix socket beside it (ctl_local.c) */
  int local_open;     /* ... listening */
  uv_timer_t beat;
  plush_ctl_opts o;
  lua_State *L;       /* for control messages only: never runs user code */
  plush_map engines;  /* id -> peer, live engines */
  peer **elist;       /* ... the same, in id order, to walk (ctl_sched.c) */
  size_t nelist, elistcap;
  plush_map clients;  /* id -> peer */
  plush_map tasks;    /* id -> task */
  plush_map store;    /* id -> stored */
  stored *oldest, *newest;
  size_t store_used;
  size_t store_big;   /* ... of it in replies of CTL_BIG_REPLY or more */
  task queue;         /* sentinel: balanced tasks waiting for an engine */
  task waiting;       /* sentinel: tasks waiting for their dependencies */
  sqlite3 *db;        /* result store on disk (NULL: memory only) */
  sqlite3_stmt *ins, *sel, *begin, *commit;
  sqlite3_stmt *insn[16 + 1]; /* n rows (ctl_rows.c), prepared when used */
  int64_t *insbound[16 + 1];  /* what insn[n]'s integer columns hold */
  struct ctl_row *rows;       /* replies not inserted yet (ctl_rows.c) */
  size_t nrows, rowcap;
  task *tfree;                /* freed tasks kept for reuse (ctl_sched.c) */
  size_t ntfree;
  size_t db_count;
  size_t db_bytes;    /* reply bytes in the database (bounded: db_max) */
  plush_map evicted;  /* client id -> highest task sequence evicted */
  int txn;            /* a store transaction is open (ctl_store.c) */
  uv_prepare_t commit_before; /* ... committed by these two: before the */
  uv_check_t commit_after;    /* loop polls, and after its I/O callbacks */
  uv_timer_t commit_timer;    /* ... or a little later (CTL_COMMIT_WAIT) */
  uint64_t txn_since;         /* uv_now() when the transaction began */
  uv_timer_t ckpt_timer;      /* the WAL checkpointed when quiet (ctl_store.c) */
  int wal_pages;              /* ... pages in the WAL after the last commit */
  int wal_max;                /* ... at once past this many, busy or not */
  size_t ckpts, ckpts_busy;   /* ... checkpoints; of them at wal_max, busy */
  size_t npend_held;          /* of pend: replies not sent before it */
  uv_prepare_t flush_before;  /* peers' corked writes written (ctl_flush.c) */
  uv_check_t flush_after;
  uv_idle_t spin;             /* the loop awake after a round trip's frame */
  uint64_t spin_last, spin_ns; /* ... since uv_hrtime() then, for so long */
  uint64_t *corked;           /* ... those peers: kind << 32 | id */
  size_t ncorked, corkcap;
  struct held_reply *pend;    /* replies waiting for that commit */
  size_t npend, pendcap;
  peer peers;         /* sentinel: every connection */
  size_t queued;
  size_t reclaims;    /* tasks with RECLAIM sent, not answered yet */
  size_t bal_assigned;/* balanced tasks on an engine (ctl_steal: none, nothing to take back) */
  size_t stolen;      /* tasks given back by one engine for another */
  uv_timer_t steal;   /* looks again when a running task is old enough */
  size_t relayed;     /* replies passed on as they arrived (ctl_relay.c) */
  size_t relay_void;  /* ... of which their engine died mid-way */
  size_t teed;        /* ... of which the rest went by tee (conn_tee.c) */
  size_t park_mem;    /* bytes of parked frames held in memory */
  size_t parked;      /* frames parked so far (ctl_park.c) */
  size_t spills;      /* ... of which written to the spill file */
  size_t disconnected;/* clients disconnected for not reading */
  plush_map spilled;  /* id -> spill record: replies parked on disk */
  int spill_fd;       /* the spill file (unlinked), -1 until needed */
  uint64_t spill_end;
  uint32_t next_engine, next_client;
  int conns;          /* open connections */
  int nfollow;        /* clients following others (ctl_follow.c) */
  int stopping;
  int open_handles;
  void (*done)(void *);
  void *done_ud;
  uint32_t ping_seq;
  uint64_t started;
  size_t dropped;     /* handshakes dropped over a cap (ctl_guard.c) */
  size_t refused;     /* connections refused at capacity or on EMFILE */
  size_t refuse_quiet;
  int conns_peak;     /* most connections since the last trim */
  uint64_t refuse_logged;
  struct ctl_ts *ts;  /* the tuple spaces (ctl_tuples.c), NULL until used */
  struct ctl_feed *feed; /* finished tasks for the dashboard (ctl_feed.c),
                            NULL until a client asks */
};

/* Task lists: circular, with a sentinel head. */
static inline void ctl_tlist_init(task *head) { head->prev = head->next = head; }

static inline void ctl_tlist_push(task *head, task *t) {
  t->prev = head->prev;
  t->next = head;
  head->prev->next = t;
  head->prev = t;
}

static inline void ctl_tlist_unshift(task *head, task *t) {
  t->next = head->next;
  t->prev = head;
  head->next->prev = t;
  head->next = t;
}

static inline void ctl_tlist_remove(task *t) {
  t->prev->next = t->next;
  t->next->prev = t->prev;
  t->prev = t->next = t;
}

/* ctl_guard.c */
/* REGISTER {pid, host, id?, rank?, size?, reconnect?} as read (bad: why
** it was refused, else NULL). */
typedef struct ctl_reg {
  plush_ctl *c;
  plush_frame *f;
  long pid;
  char host[128];
  lua_Integer want;
  int rank, size, back;
  const char *bad;
  char err[200];
} ctl_reg;
PLUSH_INTERNAL void ctl_read_register(plush_ctl *c, plush_frame *f,
                                      ctl_reg *r);
/* Runs fn(ud) under lua_pcall on c->L: 0, or an error with its message
** in err (n bytes). Every frame's handling in the controller runs so. */
PLUSH_INTERNAL int ctl_protect(plush_ctl *c, void (*fn)(void *), void *ud,
                               char *err, size_t n);
/* Caps from the options and the descriptor limit; the panic handler. */
PLUSH_INTERNAL void ctl_guard_init(plush_ctl *c);
/* Over max_conns: the pending connection is told so; 1. Else 0. */
PLUSH_INTERNAL int ctl_guard_full(plush_ctl *c, uv_stream_t *server);
/* New peer p accepted: over a handshake cap, the oldest is dropped. */
PLUSH_INTERNAL void ctl_guard_admit(plush_ctl *c, peer *p);
PLUSH_INTERNAL void ctl_guard_acceptfail(plush_ctl *c, int status);
/* Each heartbeat: memory back to the system after a flood. */
PLUSH_INTERNAL void ctl_guard_beat(plush_ctl *c);

/* ctl_ops.c */
/* Answers request id of p with {kind = "BadRequest", message} as a
** frame of type (status PLUSH_S_BADREQ), and logs it. */
PLUSH_INTERNAL void ctl_badreq(plush_ctl *c, peer *p, int type, uint64_t id,
                               uint32_t engine, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
PLUSH_INTERNAL void ctl_ctrl(plush_ctl *c, peer *p, plush_frame *f);
/* Answers control request rid of p with the value on top of c->L
** (popped); ctl_refuse with a BadRequest. */
PLUSH_INTERNAL void ctl_answer(plush_ctl *c, peer *p, uint64_t rid, int status);
/* t[k] = v on the table on top of L's stack (ctl_ops.c) */
PLUSH_INTERNAL void ctl_setint(lua_State *L, const char *k, lua_Integer v);
PLUSH_INTERNAL void ctl_setstr(lua_State *L, const char *k, const char *v);
PLUSH_INTERNAL void ctl_refuse(plush_ctl *c, peer *p, uint64_t rid, const char *msg);

/* ctl_msg.c: f is taken */
PLUSH_INTERNAL void ctl_msg(plush_ctl *c, peer *src, plush_frame *f);
PLUSH_INTERNAL void ctl_peers(plush_ctl *c, peer *e, plush_frame *f);
PLUSH_INTERNAL void ctl_peer_event(plush_ctl *c, peer *e, int up);

/* ctl_tuples.c: the ctlops entries (request table on top of c->L) */
PLUSH_INTERNAL void ctl_ts_out(plush_ctl *c, peer *p, uint64_t rid);
PLUSH_INTERNAL void ctl_ts_take(plush_ctl *c, peer *p, uint64_t rid);
PLUSH_INTERNAL void ctl_ts_read(plush_ctl *c, peer *p, uint64_t rid);
PLUSH_INTERNAL void ctl_ts_cancel(plush_ctl *c, peer *p, uint64_t rid);
PLUSH_INTERNAL void ctl_ts_count(plush_ctl *c, peer *p, uint64_t rid);
PLUSH_INTERNAL void ctl_ts_sync(plush_ctl *c, peer *p, uint64_t rid);
/* p (an engine or client) is gone: what it waited for is dropped. */
PLUSH_INTERNAL void ctl_ts_gone(plush_ctl *c, peer *p);
/* The store: tuples loaded at open, written in its transactions, their
** answers sent once it commits; freed with it. */
PLUSH_INTERNAL int ctl_ts_load(plush_ctl *c);
PLUSH_INTERNAL void ctl_ts_precommit(plush_ctl *c);
/* The tuple spaces have work for the open transaction (answers that wait
** for it, tuples to write, rows to delete): it commits this turn. */
PLUSH_INTERNAL int ctl_ts_commit_waits(const plush_ctl *c);
PLUSH_INTERNAL void ctl_ts_committed(plush_ctl *c);
PLUSH_INTERNAL void ctl_ts_close(plush_ctl *c);
PLUSH_INTERNAL void ctl_ts_free(plush_ctl *c);

/* ctl_store.c */
/* Opens the loop turn's transaction if none is: 0 when one is open. */
PLUSH_INTERNAL int ctl_store_begin(plush_ctl *c);
PLUSH_INTERNAL int ctl_store_open(plush_ctl *c, const char *path);
PLUSH_INTERNAL void ctl_store_close(plush_ctl *c);
PLUSH_INTERNAL void ctl_store(plush_ctl *c, plush_frame *f, task *t);
/*
** A transaction nothing waits for (no held reply, no tuple space) is
** committed at most CTL_COMMIT_WAIT ms after it began rather than at the
** end of its turn: a client's serial requests share one commit.
*/
#define CTL_COMMIT_WAIT 1
/* Starts the group-commit handles (3 in c->open_handles). */
PLUSH_INTERNAL void ctl_store_start(plush_ctl *c);
/* Commits the open transaction, then delivers the replies held for it. */
PLUSH_INTERNAL void ctl_store_commit(plush_ctl *c);
/* Reply f (from engine, PLUSH_ANY: the controller's own) waits for the
** open transaction: 1, f referenced; 0 when none is open. */
PLUSH_INTERNAL int ctl_store_hold(plush_ctl *c, uint32_t engine, plush_frame *f);
/* Reply f was sent before the open transaction commits (not durable):
** referenced until the commit, kept in memory if the commit fails. */
PLUSH_INTERNAL void ctl_store_sent(plush_ctl *c, plush_frame *f);
/*
** Replies of CTL_BIG_REPLY bytes or more (those beyond the SQLite store's
** blob_max; frames of 1 MiB or more are mem.h's big blocks, whole 2 MiB
** grains) are kept in memory within a sixteenth of the budget (32 MiB by
** default; the newest always stays), counted by the memory they hold. A
** big reply about to arrive makes its room first, so the block of the
** reply it displaces becomes its frame (mem.h's reuse); smaller ones are
** malloc's to reuse. Every reply kept beyond that share would be fresh
** pages, which cost more than the transfer on a VM whose host backs a
** page on first touch (~10 us each: 2.5 ms per 1 MB reply, the
** controller's main cost in a stream of 1 MB pulls). A stream of 10 MB
** pulls keeps three, 100 MB pulls one.
*/
#define CTL_BIG_REPLY ((size_t)64 << 10)
#define CTL_BIG_SHARE(c) ((c)->o.store_bytes / 16)
PLUSH_INTERNAL void ctl_store_make_room(plush_ctl *c, size_t len);
PLUSH_INTERNAL plush_frame *ctl_store_get(plush_ctl *c, uint64_t id);
PLUSH_INTERNAL int ctl_store_status(plush_ctl *c, uint64_t id);
PLUSH_INTERNAL size_t ctl_store_count(plush_ctl *c);
/* 1 when id's result was evicted (memory budget, db_max, prune). */
PLUSH_INTERNAL int ctl_store_evicted(plush_ctl *c, uint64_t id);
/* Removes all but the newest keep results of each tier; how many went. */
PLUSH_INTERNAL size_t ctl_store_prune(plush_ctl *c, size_t keep);
PLUSH_INTERNAL void ctl_store_history(plush_ctl *c, lua_Integer limit);
PLUSH_INTERNAL void ctl_store_records(plush_ctl *c);
PLUSH_INTERNAL void ctl_store_free(plush_ctl *c);
/* Keeps reply f in the memory tier (its row could not be written). */
PLUSH_INTERNAL void ctl_store_keep(plush_ctl *c, plush_frame *f);

/* ctl_rows.c */
/* Rows per multi-row INSERT of the waiting replies, at most. */
#define CTL_ROWS_PER_INSERT 16
/* Reply f of task t (or NULL) for the database: waits for the next write
** while a transaction is open, else is inserted now. */
PLUSH_INTERNAL void ctl_rows_add(plush_ctl *c, plush_frame *f, task *t);
/* Inserts the waiting rows (before a commit and before every read). */
PLUSH_INTERNAL void ctl_rows_write(plush_ctl *c);
PLUSH_INTERNAL void ctl_rows_free(plush_ctl *c);
/* Fails task id (t: its task, or NULL) for its client with a reply the
** controller writes: stored, and forwarded when the client is connected. */
PLUSH_INTERNAL void ctl_fail(plush_ctl *c, task *t, uint64_t id, uint32_t engine,
              int status, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* EngineError "engine N is not connected", left = true: a direct task for
** an engine that had an id and is gone. */
PLUSH_INTERNAL void ctl_fail_left(plush_ctl *c, task *t, uint32_t engine);
/* Sends value at the top of c->L (popped) to every client as EVENT. */
PLUSH_INTERNAL void ctl_event(plush_ctl *c);

/* ctl_feed.c: the dashboard's feed of finished tasks (op `feed`) */
PLUSH_INTERNAL void ctl_feed_task(plush_ctl *c, plush_frame *f, task *t);
PLUSH_INTERNAL void ctl_feed_op(plush_ctl *c);
PLUSH_INTERNAL void ctl_feed_free(plush_ctl *c);

/* ctl_relay.c: big replies passed on to their client as they arrive */
PLUSH_INTERNAL void ctl_relay_partial(plush_ctl *c, peer *e, plush_frame *f, size_t got);
/* Reply f of task t (NULL if none) arrived whole from e: 1 when it was
** relayed (finished here; not to be forwarded again), else 0. */
PLUSH_INTERNAL int ctl_relay_done(plush_ctl *c, peer *e, plush_frame *f, task *t);
/* p's connection closed (engine or client): a relay under way ends void. */
PLUSH_INTERNAL void ctl_relay_abort(plush_ctl *c, peer *p);
/* The same for big requests from client p to one engine: submitted on
** their first bytes, relayed on to the engine as they come. */
PLUSH_INTERNAL void ctl_relay_req_partial(plush_ctl *c, peer *p, plush_frame *f, size_t got);
/* Request f arrived whole from p: 1 when it was submitted early (finished
** here), else 0 (submit it). */
PLUSH_INTERNAL int ctl_relay_req_done(plush_ctl *c, peer *p, plush_frame *f);
/* assign() of task t to e: 1 when t's request is still arriving (the
** relay writes it), else 0 (write it now). */
PLUSH_INTERNAL int ctl_relay_req_assigned(plush_ctl *c, task *t, peer *e);
/* Each heartbeat: a relayed request that made no progress since the last
** one is given up (voided on the engine, written whole once it arrives),
** so a client that stopped sending cannot hold an engine's link. */
PLUSH_INTERNAL void ctl_relay_check(plush_ctl *c);

/* ctl_follow.c: collaboration. The ops "clients" and "follow"; each
** request, output and reply of a client copied to its followers (frame f
** of client owner; nothing to do while no one follows); p left. */
PLUSH_INTERNAL void ctl_op_clients(plush_ctl *c, peer *p, uint64_t rid);
PLUSH_INTERNAL void ctl_op_follow(plush_ctl *c, peer *p, uint64_t rid);
PLUSH_INTERNAL void ctl_follow(plush_ctl *c, uint32_t owner, plush_frame *f);
PLUSH_INTERNAL void ctl_follow_gone(plush_ctl *c, peer *p);

/* ctl_park.c: replies parked for a client that is not reading */
/* Frames parked in memory, all clients together; past it replies go to
** the spill file and balanced tasks' output is dropped. */
#define CTL_PARK_MEM(c) ((c)->o.store_bytes / 8)
/* Frame f for client cl from engine e (NULL: the controller): 1 when it
** was parked (or dropped), 0 when the caller writes it now. */
PLUSH_INTERNAL int ctl_park(plush_ctl *c, peer *e, peer *cl, plush_frame *f);
/* cl drained: parked frames go out while it keeps up; 1 when none is
** left parked (the engines it held may go on). */
PLUSH_INTERNAL int ctl_park_pump(plush_ctl *c, peer *cl);
/* Is cl behind: frames parked, or its queue past the high-water mark? */
PLUSH_INTERNAL int ctl_park_behind(plush_ctl *c, peer *cl);
/* cl's connection closed: its parked replies stay fetchable by id. */
PLUSH_INTERNAL void ctl_park_close(plush_ctl *c, peer *cl);
/* A reply parked on disk, as a new frame, or NULL (ctl_store_get). */
PLUSH_INTERNAL plush_frame *ctl_park_get(plush_ctl *c, uint64_t id);
/* Each heartbeat: clients behind with no progress for stall_timeout
** seconds are disconnected. */
PLUSH_INTERNAL void ctl_park_check(plush_ctl *c);
PLUSH_INTERNAL void ctl_park_free(plush_ctl *c);

/* ctl_flush.c: what goes to a peer in one loop turn, in one writev */
PLUSH_INTERNAL void ctl_flush_start(plush_ctl *c); /* 2 in open_handles */
PLUSH_INTERNAL void ctl_cork(plush_ctl *c, peer *p); /* before a write to p */
PLUSH_INTERNAL void ctl_flush(plush_ctl *c);       /* writes what waits */
PLUSH_INTERNAL void ctl_flush_free(plush_ctl *c);

/* ctl_spin.c: the loop awake for a while after a frame of a round trip */
PLUSH_INTERNAL void ctl_spin_start(plush_ctl *c); /* 1 in open_handles */
PLUSH_INTERNAL void ctl_spin_after(plush_ctl *c, int type); /* each frame */

/* ctl_local.c: the Unix socket beside the TCP port, listening with cb
** (1 in open_handles, closed with closed; nothing when the TCP address
** is not local or the name is taken) */
PLUSH_INTERNAL void ctl_local_start(plush_ctl *c, uv_connection_cb cb,
                                    uv_close_cb closed);
PLUSH_INTERNAL void ctl_local_close(plush_ctl *c, uv_close_cb closed);

/* ctl_steal.c: idle engines take back tasks queued behind a long one */
#define CTL_STEAL_AFTER 1e-3 /* seconds a task runs before its followers go */
PLUSH_INTERNAL void ctl_steal_start(plush_ctl *c);   /* the timer: 1 in open_handles */
PLUSH_INTERNAL void ctl_steal(plush_ctl *c);         /* after every schedule() */
PLUSH_INTERNAL void ctl_reclaimed(plush_ctl *c, peer *e, plush_frame *f); /* takes f */
PLUSH_INTERNAL void ctl_unreclaim(plush_ctl *c, task *t); /* t leaves its engine */

/* ctl_sched.c */
PLUSH_INTERNAL void ctl_submit(plush_ctl *c, peer *p, plush_frame *f);
PLUSH_INTERNAL void ctl_schedule(plush_ctl *c);
/* Tasks whose dependencies are all done leave the waiting list. */
PLUSH_INTERNAL void ctl_wakedeps(plush_ctl *c);
/* May engine e run balanced task t (its targets, the engines to avoid)? */
PLUSH_INTERNAL int ctl_eligible(plush_ctl *c, task *t, peer *e);
/* Live engine e joins (0, or -1 without memory: not added) or leaves
** c->engines and c->elist, the list the scheduler walks. */
PLUSH_INTERNAL int ctl_engine_add(plush_ctl *c, peer *e);
PLUSH_INTERNAL void ctl_engine_del(plush_ctl *c, peer *e);
/* ctl_sched.c: t's engine said it is parked on subtasks. */
PLUSH_INTERNAL void ctl_parked(plush_ctl *c, task *t);
/* Balanced task t goes back to the head of the queue, off its engine. */
PLUSH_INTERNAL void ctl_requeue(plush_ctl *c, task *t);
/* Queued tasks restricted to engines that are all gone fail now. */
PLUSH_INTERNAL void ctl_failunreachable(plush_ctl *c);
/* A task of e's took secs from its start to its reply (e's pace). */
PLUSH_INTERNAL void ctl_paced(peer *e, double secs);
/* Client cid left: its tasks not submitted detached are cancelled. */
PLUSH_INTERNAL void ctl_cancel_client(plush_ctl *c, uint32_t cid);
/* Takes the task out of every structure and frees it. */
PLUSH_INTERNAL void ctl_taskfree(plush_ctl *c, task *t);
/* Frees the tasks kept for reuse (at the controller's end). */
PLUSH_INTERNAL void ctl_taskpool_free(plush_ctl *c);

/* controller.c */
/* Wall-clock seconds since the epoch (stored with results). */
PLUSH_INTERNAL double ctl_clock(void);

/* Sends reply f to its client once the store has it (ctl_store_hold);
** e, its engine (NULL: the controller's own reply), is paused when the
** client falls behind. ctl_deliver_now sends at once. ctl_deliver_early
** sends task t's reply at once, then stores it in the open transaction
** (ctl_store_sent): for a client that did not ask for durability. */
PLUSH_INTERNAL void ctl_deliver(plush_ctl *c, peer *e, plush_frame *f);
PLUSH_INTERNAL void ctl_deliver_early(plush_ctl *c, peer *e, plush_frame *f,
                                      task *t);
PLUSH_INTERNAL void ctl_deliver_now(plush_ctl *c, uint32_t engine, plush_frame *f);
PLUSH_INTERNAL peer *ctl_client_of(plush_ctl *c, uint64_t id);
/* Back-pressure after a write to client: may pause engine e (forward). */
PLUSH_INTERNAL void ctl_hold(plush_ctl *c, peer *e, peer *client);
PLUSH_INTERNAL void ctl_interrupt(plush_ctl *c, peer *e, uint64_t id);
/* Sends a header-only frame of type to engine e. */
PLUSH_INTERNAL void ctl_send(plush_ctl *c, peer *e, int type, uint64_t id);
PLUSH_INTERNAL void ctl_sorted_ids(plush_ctl *c, uint32_t *ids);

#endif
