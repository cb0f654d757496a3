/*
** ctl_sched.c — the life of a task in the controller: submission, its
** scheduling options, dependencies, the balanced queue and the choice of
** engine, timeouts, and freeing. Replies end a task in controller.c
** (onreply); ctl_steal.c moves queued tasks between engines.
*/
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ctl.h"
#include "log.h"
#include "plush.h"

/* ---- freeing and requeueing -------------------------------------- */

static void timerclosed(uv_handle_t *h) { free(h); }

/* Freed tasks kept for reuse, at most (a task is ~170 bytes). */
#define CTL_TASK_POOL 1024

/* Takes the task out of every structure and frees it (or keeps it). */
void ctl_taskfree(plush_ctl *c, task *t) {
  plush_map_del(&c->tasks, t->id);
  ctl_tlist_remove(t);
  ctl_unreclaim(c, t);
  if (t->engine) {
    if (t->balanced) c->bal_assigned--;
    t->engine->inflight--;
    if (t->parked) t->engine->parked--;
    if (t->engine->running == t->id) t->engine->running = 0;
  }
  if (t->timer) {
    uv_timer_stop(t->timer);
    uv_close((uv_handle_t *)t->timer, timerclosed);
  }
  plush_frame_unref(t->req);
  free(t->targets);
  free(t->avoid);
  free(t->after);
  if (c->ntfree < CTL_TASK_POOL) { /* kept for the next submission */
    t->next = c->tfree;
    c->tfree = t;
    c->ntfree++;
  } else {
    free(t);
  }
}

/*
** A zeroed task: one kept from an earlier one when there is, else a new
** block. With 1,000 tasks in flight malloc's thread cache (7 blocks of a
** size) is always empty, and calloc skips it anyway: ~350 instructions a
** task for its allocation and free (performance.md, "Controller per
** task, fifth session").
*/
static task *tasknew(plush_ctl *c) {
  task *t = c->tfree;
  if (t) {
    c->tfree = t->next;
    c->ntfree--;
  } else if ((t = malloc(sizeof *t)) == NULL) {
    return NULL;
  }
  memset(t, 0, sizeof *t);
  return t;
}

void ctl_taskpool_free(plush_ctl *c) {
  while (c->tfree) {
    task *t = c->tfree;
    c->tfree = t->next;
    free(t);
  }
  c->ntfree = 0;
}

void ctl_requeue(plush_ctl *c, task *t) {
  peer *e = t->engine;
  ctl_unreclaim(c, t);
  if (e) {
    if (t->balanced) c->bal_assigned--;
    e->inflight--;
    if (t->parked) e->parked--;
    if (e->running == t->id) e->running = 0;
  }
  t->parked = 0;
  t->engine = NULL;
  ctl_tlist_remove(t);
  ctl_tlist_unshift(&c->queue, t);
  c->queued++;
}


/* ---- choosing an engine ------------------------------------------ */

static int has(const uint32_t *ids, int n, uint32_t id) {
  int i;
  for (i = 0; i < n; i++)
    if (ids[i] == id) return 1;
  return 0;
}

/* ---- the live engines, in id order --------------------------------- */

/*
** c->elist mirrors c->engines in id order: the scheduler and work
** stealing walk it after every request and reply, and a walk of the map
** visits every slot (16 or more for 2 engines: ~700 instructions a
** balanced task, performance.md "Controller per task, fifth session").
*/
int ctl_engine_add(plush_ctl *c, peer *e) {
  size_t i;
  if (c->nelist == c->elistcap) {
    size_t n = c->elistcap ? 2 * c->elistcap : 16;
    peer **l = realloc(c->elist, n * sizeof *l);
    if (l == NULL) return -1;
    c->elist = l;
    c->elistcap = n;
  }
  if (plush_map_put(&c->engines, e->id, e) < 0) return -1;
  for (i = c->nelist; i > 0 && c->elist[i - 1]->id > e->id; i--)
    c->elist[i] = c->elist[i - 1];
  c->elist[i] = e;
  c->nelist++;
  return 0;
}

void ctl_engine_del(plush_ctl *c, peer *e) {
  size_t i;
  if (plush_map_get(&c->engines, e->id) != e) return;
  plush_map_del(&c->engines, e->id);
  for (i = 0; i < c->nelist && c->elist[i] != e; i++) {}
  if (i == c->nelist) return;
  memmove(c->elist + i, c->elist + i + 1,
          (c->nelist - i - 1) * sizeof *c->elist);
  c->nelist--;
}

/* May engine e run task t? Its targets, and not where it failed unless
** every live target has failed it (then any target will do). */
int ctl_eligible(plush_ctl *c, task *t, peer *e) {
  size_t i = 0;
  uint64_t k;
  void *v;
  if (t->targets && !has(t->targets, t->ntargets, e->id)) return 0;
  if (t->navoid == 0 || !has(t->avoid, t->navoid, e->id)) return 1;
  while (plush_map_next(&c->engines, &i, &k, &v)) {
    peer *o = v;
    if ((t->targets == NULL || has(t->targets, t->ntargets, o->id)) &&
        !has(t->avoid, t->navoid, o->id))
      return 0;
  }
  return 1;
}

/* Does any live engine match t's targets? */
static int reachable(plush_ctl *c, task *t) {
  int i;
  if (t->targets == NULL) return 1;
  for (i = 0; i < t->ntargets; i++)
    if (plush_map_get(&c->engines, t->targets[i])) return 1;
  return 0;
}

static void assign(plush_ctl *c, task *t, peer *e) {
  plush_hdr h = t->req->hdr;
  ctl_tlist_remove(t);
  ctl_tlist_push(&e->tasks, t);
  t->engine = e;
  t->started = 0; /* of this attempt: STARTED sets it */
  e->inflight++;
  if (t->balanced) c->bal_assigned++;
  h.engine = e->id;
  h.flags &= (uint8_t)~(PLUSH_F_OPTS | PLUSH_F_DURABLE);
  h.status = (uint16_t)(++t->attempts); /* the engine's engine.task.attempt */
  if (ctl_relay_req_assigned(c, t, e)) {
    /* still arriving: relayed as it comes, or written when whole */
  } else if (e->conn) {
    ctl_cork(c, e); /* a turn's tasks for e in one writev: ctl_flush.c */
    plush_conn_write_hdr_slice(e->conn, &h, t->req, t->off,
                               t->req->hdr.len - t->off);
  }
  /* A direct task is never resubmitted: drop the request, unless the
  ** store wants to keep it with the result. */
  if (!t->balanced && (c->db == NULL || h.len > c->o.request_max)) {
    plush_frame_unref(t->req);
    t->req = NULL;
  }
}

/*
** How many balanced tasks engine e may hold: hwm (2), and more while its
** tasks are short, as many as it runs in CTL_QUEUE_TIME at its recent
** pace (up to CTL_HWM_MAX). With 2 in flight, an engine running 40 us
** tasks waits idle through most of every round trip to the controller
** (each reply must come back before the next task goes out); a
** millisecond of queued work hides that wait (no-op tasks: 16k -> 33k/s
** on this project's 2-vCPU VMs). The cap of 128 lets no-op tasks (a few
** microseconds each) keep that millisecond: with 16 an engine ran dry
** whenever the controller lost its CPU for 50 us (2 engines: 80-92k/s
** against 96-112k/s with 128; performance.md, "The twelfth session").
** The pace only knows the tasks that ran, so a long task that follows
** short ones may be assigned with others queued behind it: once it has
** run CTL_STEAL_AFTER, idle engines take those back (ctl_steal.c).
** --hwm N fixes the limit at N.
*/
#define CTL_QUEUE_TIME 1e-3
#define CTL_HWM_MAX 128

static int limit(plush_ctl *c, peer *e) {
  double n;
  if (e->pace <= 0 || c->o.fixed_hwm) return c->o.hwm;
  n = CTL_QUEUE_TIME / e->pace;
  if (n <= c->o.hwm || c->o.hwm >= CTL_HWM_MAX) return c->o.hwm;
  return n >= CTL_HWM_MAX ? CTL_HWM_MAX : (int)n;
}

/*
** Task t waits on subtasks, parked on its engine, which runs other tasks
** meanwhile: it no longer counts against the engine's limit, so that
** the tasks it waits for (and other work) can be sent there. Without
** this, nested tasks deadlock once every slot holds a waiting parent.
*/
void ctl_parked(plush_ctl *c, task *t) {
  if (t->parked) return;
  t->parked = 1;
  t->engine->parked++;
  ctl_schedule(c);
}

/* Tasks that hold e's Lua thread or its queue: parked ones do not. */
static int busy(const peer *e) { return e->inflight - e->parked; }

/* A task of e's took secs from its start to its reply. */
void ctl_paced(peer *e, double secs) {
  if (secs < 0) secs = 0;
  e->pace = e->pace > 0 ? 0.75 * e->pace + 0.25 * secs : secs;
}

/*
** Least outstanding work first, with at most limit() tasks in flight on
** one engine, so a slow engine cannot hoard the queue. Tasks restricted to
** some engines (targets, or engines to avoid) are passed over, in order,
** when none of theirs has room; the others keep their FIFO order.
*/
void ctl_schedule(plush_ctl *c) {
  task *t = c->queue.next;
  while (t != &c->queue) {
    task *next = t->next;
    peer *best = NULL;
    size_t i, room = 0;
    for (i = 0; i < c->nelist; i++) {
      peer *e = c->elist[i];
      if (busy(e) >= limit(c, e)) continue;
      room++;
      if (!ctl_eligible(c, t, e)) continue;
      if (best == NULL || busy(e) < busy(best) ||
          (busy(e) == busy(best) && e->id < best->id))
        best = e;
    }
    if (room == 0) break;
    if (best) {
      c->queued--;
      assign(c, t, best);
    }
    t = next;
  }
  ctl_steal(c);
}

static void ontimeout(uv_timer_t *tm);
static void release(plush_ctl *c, task *t);

/* ---- scheduling options ------------------------------------------ */

/*
** Field k of the table on top: absent (1, nothing set), or a list of
** integers in [lo, hi] (1, *out a malloc'd copy: uint32_t when hi fits,
** else uint64_t; *out stays NULL when absent), or anything else (0). Any other type -- a string
** "targets" -- is refused rather than read as "no restriction".
*/
static int ids(lua_State *L, const char *k, lua_Integer lo, uint64_t hi,
               void **out, int *nout) {
  int t = lua_getfield(L, -1, k), ok = 1, wide = hi > UINT32_MAX;
  size_t n, i;
  char *v;
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return 1;
  }
  if (t != LUA_TTABLE || (n = lua_rawlen(L, -1)) > (1u << 20)) {
    lua_pop(L, 1);
    return 0;
  }
  if ((v = malloc((n ? n : 1) * (wide ? 8 : 4))) == NULL) {
    lua_pop(L, 1);
    return 0;
  }
  for (i = 1; ok && i <= n; i++) {
    lua_Integer x;
    lua_rawgeti(L, -1, (lua_Integer)i);
    x = lua_tointeger(L, -1);
    ok = lua_isinteger(L, -1) && x >= lo && (uint64_t)x <= hi;
    if (wide) ((uint64_t *)v)[i - 1] = (uint64_t)x;
    else ((uint32_t *)v)[i - 1] = (uint32_t)x;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  *out = v;
  *nout = (int)n;
  return ok;
}

/*
** Reads the scheduling options ahead of the request (PLUSH_F_OPTS):
** {targets = {ids}, retries = n, after = {task ids}, detached = b}.
** 0, or -1 with the task failed.
*/
static int readopts(plush_ctl *c, task *t, plush_frame *f) {
  lua_State *L = c->L;
  int top = lua_gettop(L);
  size_t used = 0;
  char err[200];
  const char *bad = NULL;
  if (plush_decode(L, plush_frame_payload(f), f->hdr.len, &used, err,
                   sizeof err) < 0) {
    ctl_fail(c, t, t->id, PLUSH_ANY, PLUSH_S_BADREQ, "BadRequest",
             "bad scheduling options: %s", err);
    return -1;
  }
  t->off = (uint32_t)used;
  if (!lua_istable(L, -1)) bad = "a table expected";
  if (!bad && lua_getfield(L, -1, "retries") != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 ||
        lua_tointeger(L, -1) > INT32_MAX)
      bad = "retries: a count expected";
    else
      t->retries = (int)lua_tointeger(L, -1);
  }
  lua_settop(L, top + 1);
  if (!bad && lua_getfield(L, -1, "detached") != LUA_TNIL) {
    if (!lua_isboolean(L, -1)) bad = "detached: a boolean expected";
    t->detached = lua_toboolean(L, -1);
  }
  lua_settop(L, top + 1);
  if (!bad) {
    void *v = NULL;
    if (!ids(L, "targets", 0, PLUSH_ANY - 1, &v, &t->ntargets))
      bad = "targets: a list of engine ids expected";
    t->targets = v;
  }
  if (!bad) {
    void *v = NULL;
    if (!ids(L, "after", 1, UINT64_MAX >> 1, &v, &t->nafter))
      bad = "after: a list of task ids expected";
    t->after = v;
  }
  lua_settop(L, top);
  if (bad) {
    ctl_fail(c, t, t->id, PLUSH_ANY, PLUSH_S_BADREQ, "BadRequest",
             "bad scheduling options: %s", bad);
    return -1;
  }
  return 0;
}

/* ---- dependencies and the queue ---------------------------------- */

/*
** Checks t's dependencies: 1 when all succeeded, 0 while some are still
** pending, -1 after failing t because one failed or is unknown.
*/
static int depsdone(plush_ctl *c, task *t) {
  int i, pending = 0;
  for (i = 0; i < t->nafter; i++) {
    uint64_t d = t->after[i];
    int st;
    if (d == 0) continue;
    if (plush_map_get(&c->tasks, d)) {
      pending = 1;
      continue;
    }
    st = ctl_store_status(c, d);
    if (st == PLUSH_S_OK) {
      t->after[i] = 0;
      continue;
    }
    ctl_fail(c, t, t->id, PLUSH_ANY, PLUSH_S_ERROR, "DependencyError",
             st < 0 ? "dependency %llu is unknown (no such task)"
                    : "dependency %llu failed",
             (unsigned long long)d);
    return -1;
  }
  return pending ? 0 : 1;
}

/* Queued tasks restricted to engines that are all gone fail now rather
** than wait forever. */
void ctl_failunreachable(plush_ctl *c) {
  task *t = c->queue.next;
  while (t != &c->queue) {
    task *next = t->next;
    if (!reachable(c, t)) {
      c->queued--;
      ctl_fail(c, t, t->id, PLUSH_ANY, PLUSH_S_ENGINE, "EngineError",
               "none of the task's target engines is connected");
      ctl_taskfree(c, t);
    }
    t = next;
  }
}

/* Puts a task whose dependencies are done where it can run. */
static void enqueue(plush_ctl *c, task *t) {
  if (t->balanced) {
    if (!reachable(c, t)) {
      ctl_fail(c, t, t->id, PLUSH_ANY, PLUSH_S_ENGINE, "EngineError",
               "none of the task's target engines is connected");
      release(c, t);
      return;
    }
    ctl_tlist_push(&c->queue, t);
    c->queued++;
    return;
  }
  /* No such engine now: one that never had this id (the controller gives
  ** ids in order, and never twice) is a bad request; one that left is an
  ** EngineError marked left. */
  if (plush_map_get(&c->engines, t->req->hdr.engine) == NULL) {
    if (t->req->hdr.engine >= c->next_engine)
      ctl_fail(c, t, t->id, t->req->hdr.engine, PLUSH_S_BADREQ, "BadRequest",
               "unknown engine %u", t->req->hdr.engine);
    else
      ctl_fail_left(c, t, t->req->hdr.engine);
    release(c, t);
    return;
  }
  assign(c, t, plush_map_get(&c->engines, t->req->hdr.engine));
}

/* A task finished: wake the tasks that waited for it. */
void ctl_wakedeps(plush_ctl *c) {
  task *t = c->waiting.next;
  while (t != &c->waiting) {
    task *next = t->next;
    int r = depsdone(c, t);
    if (r != 0) {
      ctl_tlist_remove(t);
      t->waiting = 0;
      if (r > 0) enqueue(c, t);
      else release(c, t);
    }
    t = next;
  }
}

/* ---- submission -------------------------------------------------- */

void ctl_submit(plush_ctl *c, peer *p, plush_frame *f) {
  plush_hdr *h = &f->hdr;
  task *t;
  if ((uint32_t)(h->id >> 32) != p->id || plush_map_get(&c->tasks, h->id)) {
    /* to the sender itself: the id may name another client's task */
    ctl_badreq(c, p, PLUSH_T_REPLY, h->id, h->engine,
               "task id %llu is not a fresh id of client %u",
               (unsigned long long)h->id, p->id);
    plush_frame_unref(f);
    return;
  }
  if ((t = tasknew(c)) == NULL ||
      plush_map_put(&c->tasks, h->id, t) < 0) {
    free(t);
    ctl_badreq(c, p, PLUSH_T_REPLY, h->id, h->engine,
               "controller out of memory");
    plush_frame_unref(f);
    return;
  }
  t->id = h->id;
  t->ctl = c;
  t->req = f;
  t->submitted = ctl_clock();
  t->balanced = (h->flags & PLUSH_F_BALANCED) != 0;
  t->durable = (h->flags & PLUSH_F_DURABLE) != 0;
  ctl_tlist_init(t);
  if ((h->flags & PLUSH_F_OPTS) && readopts(c, t, f) < 0) {
    release(c, t);
    return;
  }
  if (h->aux > 0 && (t->timer = malloc(sizeof *t->timer)) != NULL) {
    uv_timer_init(c->loop, t->timer);
    t->timer->data = t;
    uv_timer_start(t->timer, ontimeout, h->aux, 0);
  }
  switch (depsdone(c, t)) {
  case 0:
    t->waiting = 1;
    ctl_tlist_push(&c->waiting, t);
    return;
  case -1: release(c, t); return;
  }
  enqueue(c, t);
  ctl_schedule(c);
}

/* ---- timeouts and cancelling ------------------------------------- */

/*
** A task out of time fails at once with TimeoutError; its engine is
** interrupted and keeps the task (and its slot) until it answers, so the
** scheduler does not pile work on an engine still busy with it.
*/
static void timedout(void *ud);

static void ontimeout(uv_timer_t *tm) {
  task *t = tm->data;
  char err[200];
  uv_close((uv_handle_t *)tm, timerclosed);
  t->timer = NULL;
  if (ctl_protect(t->ctl, timedout, t, err, sizeof err) < 0)
    plush_error("task %llu timed out: %s", (unsigned long long)t->id, err);
}

static void timedout(void *ud) {
  task *t = ud;
  peer *e = t->engine;
  plush_ctl *c = t->ctl;
  ctl_fail(c, t, t->id, e ? e->id : PLUSH_ANY, PLUSH_S_TIMEOUT,
           "TimeoutError", "task %llu timed out%s",
           (unsigned long long)t->id,
           e ? "; its engine was interrupted" : " before it started");
  if (e == NULL) {
    if (!t->waiting) c->queued--;
    release(c, t);
    ctl_wakedeps(c);
    return;
  }
  t->timedout = 1;
  ctl_interrupt(c, e, t->id);
}

/*
** Client cid left. Its tasks are cancelled unless submitted detached
** (`detached = true`): a queued or waiting one fails at once (the store
** keeps the "Cancelled" error by id), a running one is interrupted (and
** one queued on its engine is answered "interrupted" without running);
** neither is retried elsewhere. A detached task runs on; its result is
** kept in the store for rc:result(id) from any client.
*/
void ctl_cancel_client(plush_ctl *c, uint32_t cid) {
  size_t i = 0, n = 0, k;
  uint64_t key, *ids;
  void *v;
  if (c->tasks.count == 0) return;
  if ((ids = malloc(c->tasks.count * sizeof *ids)) == NULL) return;
  while (plush_map_next(&c->tasks, &i, &key, &v))
    if ((uint32_t)(key >> 32) == cid && !((task *)v)->detached) ids[n++] = key;
  for (k = 0; k < n; k++) {
    task *t = plush_map_get(&c->tasks, ids[k]);
    if (t == NULL) continue;
    t->retries = 0;
    t->deaths = c->o.max_deaths;
    if (t->engine) {
      if (!t->timedout) ctl_interrupt(c, t->engine, t->id);
      continue;
    }
    if (!t->waiting) c->queued--;
    ctl_fail(c, t, t->id, PLUSH_ANY, PLUSH_S_ERROR, "Cancelled",
             "task %llu cancelled: its client %u disconnected",
             (unsigned long long)t->id, cid);
    release(c, t);
  }
  if (n) plush_info("client %u left: %zu of its tasks cancelled", cid, n);
  free(ids);
  if (c->waiting.next != &c->waiting) ctl_wakedeps(c);
}

/* Frees a task that was answered (or failed) and is in no engine. */
static void release(plush_ctl *c, task *t) {
  ctl_taskfree(c, t);
}

