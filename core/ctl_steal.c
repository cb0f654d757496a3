/*
** ctl_steal.c — work stealing: idle engines take back the balanced tasks
** queued behind a long one.
**
** An engine holds up to its limit of balanced tasks (controller.c,
** limit()): the one running and the ones queued behind it, sent ahead so
** that it never waits for the controller between two short tasks. When
** the running one turns out long, the ones behind it would wait for it
** while other engines sit idle. So once a running task has run for
** CTL_STEAL_AFTER and some engine is idle with nothing in the queue for
** it, the controller sends RECLAIM for the newest task still queued on
** the busy engine. The engine's I/O thread takes it out of its queue,
** under the lock its Lua thread takes requests by, and answers RECLAIMED;
** the task goes back to the head of the controller's queue and on to the
** idle engine. A task the engine took before the RECLAIM arrived runs and
** replies as usual: either way it runs exactly once. At most one RECLAIM
** is outstanding per idle engine; a timer looks again when a running task
** will be old enough, since nothing else may happen meanwhile.
*/
#include <math.h>

#include "ctl.h"
#include "log.h"
#include "plush.h"

static void onsteal(uv_timer_t *tm) { ctl_schedule(tm->data); }

void ctl_steal_start(plush_ctl *c) {
  uv_timer_init(c->loop, &c->steal);
  c->steal.data = c;
  c->open_handles++;
}

void ctl_unreclaim(plush_ctl *c, task *t) {
  if (!t->reclaiming) return;
  t->reclaiming = 0;
  c->reclaims--;
}

/* Is some idle engine allowed to run t? */
static int wanted(plush_ctl *c, task *t) {
  size_t i;
  for (i = 0; i < c->nelist; i++) {
    peer *e = c->elist[i];
    if (e->inflight - e->parked == 0 && e->conn && ctl_eligible(c, t, e))
      return 1;
  }
  return 0;
}

void ctl_steal(plush_ctl *c) {
  size_t i, idle = 0;
  double now, soonest = 0;
  /* Only balanced tasks are taken back: with none on an engine (direct
  ** work, %px on 1,000 engines) there is nothing to look for, and the
  ** walks below, over every engine after every request and reply, were
  ** most of the controller's time (share/doc/performance.md). */
  if (c->stopping || c->bal_assigned == 0) return;
  for (i = 0; i < c->nelist; i++) {
    peer *e = c->elist[i];
    if (e->inflight - e->parked == 0 && e->conn) idle++; /* parked: waiting */
  }
  if (idle <= c->reclaims) return;
  now = ctl_clock();
  for (i = 0; idle > c->reclaims && i < c->nelist; i++) {
    peer *e = c->elist[i];
    task *run, *t;
    if (e->inflight - e->parked < 2 || e->running == 0 || e->conn == NULL)
      continue;
    run = plush_map_get(&c->tasks, e->running);
    if (run == NULL || run->started <= 0) continue;
    if (now - run->started < CTL_STEAL_AFTER) {
      double at = run->started + CTL_STEAL_AFTER;
      if (soonest == 0 || at < soonest) soonest = at;
      continue;
    }
    /* newest first: the ones that would wait longest */
    for (t = e->tasks.prev; t != &e->tasks && idle > c->reclaims;
         t = t->prev) {
      if (!t->balanced || t->started > 0 || t->reclaiming || t->timedout ||
          t->id == e->running || !wanted(c, t))
        continue;
      t->reclaiming = 1;
      c->reclaims++;
      ctl_send(c, e, PLUSH_T_RECLAIM, t->id);
    }
  }
  if (soonest > 0 && idle > c->reclaims) {
    uint64_t ms = (uint64_t)ceil((soonest - now) * 1000);
    uv_timer_start(&c->steal, onsteal, ms ? ms : 1, 0);
  }
}

/*
** RECLAIMED id from engine e: the task never ran there. Back to the head
** of the queue for an idle engine; one that timed out meanwhile (its
** TimeoutError is already out) just ends.
*/
void ctl_reclaimed(plush_ctl *c, peer *e, plush_frame *f) {
  uint64_t id = f->hdr.id;
  task *t = plush_map_get(&c->tasks, id);
  plush_frame_unref(f);
  if (t == NULL || t->engine != e || !t->reclaiming) {
    plush_warn("engine %u gave back task %llu, which it did not hold", e->id,
               (unsigned long long)id);
    return;
  }
  if (t->timedout) {
    ctl_taskfree(c, t);
    ctl_wakedeps(c);
  } else {
    ctl_requeue(c, t);
    c->stolen++;
  }
  ctl_schedule(c);
}
