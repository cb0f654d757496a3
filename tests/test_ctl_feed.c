/*
** test_ctl_feed.c — control op `feed` (core/ctl_feed.c), what the
** dashboard reads: nothing recorded before a client asks; then every
** finished task once, in order, columnar, after `since`; each client's
** tasks in flight; what each engine runs, labelled by a peek at its
** request (an exec's first line, else the op). A real controller, fake
** peers (tests/harness/ctl_harness.h); answers decoded and compared exactly.
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <unistd.h>
#include <uv.h>

#include "ctl_harness.h"
#include "plush.h"

static void setup(void) { h_start(NULL, 2, 2); }
static void teardown(void) { h_stop(); }
TestSuite(feed, .init = setup, .fini = teardown);

#define CLI (&H.cli[0])
#define CLI2 (&H.cli[1])
#define E0 (&H.eng[0])
#define E1 (&H.eng[1])

static void feed(const char *expr, const char *cond) {
  uint64_t id = h_ctrl(CLI, expr);
  plush_frame *f = h_next(CLI, PLUSH_T_CTRL_REPLY, id);
  cr_assert_eq(f->hdr.status, PLUSH_S_OK, "%s: status %d", expr, f->hdr.status);
  h_expect(f, cond);
}

static void setid(const char *name, uint64_t v) {
  lua_pushinteger(H.L, (lua_Integer)v);
  lua_setglobal(H.L, name);
}

/* One direct task of client p run by engine e to its reply. */
static uint64_t run(h_fake *p, h_fake *e, int status, const char *reply) {
  uint64_t t = h_submit(p, e->id, 0, 0, "{op = 'exec', code = 'return 1'}");
  h_next(e, PLUSH_T_REQ, t);
  h_sendhdr(e, PLUSH_T_STARTED, t);
  h_reply(e, t, status, reply);
  h_next(p, PLUSH_T_REPLY, t);
  return t;
}

Test(feed, records_only_once_asked_then_every_task_in_order) {
  uint64_t a, b, c;
  run(CLI, E0, PLUSH_S_OK, "{r = {n = 1, 1}}"); /* before any feed: not kept */
  feed("{op = 'feed'}", "v.seq == 0 and v.lost == 0 and #v.id == 0"
                        " and type(v.now) == 'number'");
  a = run(CLI, E0, PLUSH_S_OK, "{r = {n = 1, 1}}");
  b = run(CLI2, E1, PLUSH_S_ERROR, "{kind = 'RemoteError', message = 'boom'}");
  c = run(CLI, E1, PLUSH_S_OK, "{r = {n = 1, 'abc'}}");
  setid("A", a);
  setid("B", b);
  setid("C", c);
  feed("{op = 'feed', since = 0}",
       "v.seq == 3 and v.lost == 0 and #v.id == 3"
       " and v.id[1] == A and v.id[2] == B and v.id[3] == C"
       " and v.engine[1] == 0 and v.engine[2] == 1 and v.engine[3] == 1"
       " and v.status[1] == 0 and v.status[2] == 1 and v.status[3] == 0"
       " and v.bytes[1] > 0"
       " and v.submitted[1] > 0 and v.started[1] >= v.submitted[1]"
       " and v.completed[1] >= v.started[1] and v.completed[3] <= v.now");
  feed("{op = 'feed', since = 2}", "v.seq == 3 and #v.id == 1 and v.id[1] == C");
  feed("{op = 'feed', since = 3}", "v.seq == 3 and #v.id == 0 and #v.engine == 0");
  /* a reader ahead of this controller (it restarted): from the end */
  feed("{op = 'feed', since = 99}", "v.seq == 3 and #v.id == 0");
}

/* A reader more than one call's worth behind gets the oldest 4,096 first
** and the rest on its next call: none skipped, none lost. */
Test(feed, a_reader_far_behind_gets_every_task_over_several_calls) {
  uint64_t first = 0, last = 0;
  feed("{op = 'feed'}", "v.seq == 0");
  for (int i = 0; i < 4100; i++) {
    last = run(CLI, E0, PLUSH_S_OK, "{r = {n = 1, 1}}");
    if (i == 0) first = last;
    h_forget(CLI);
    h_forget(E0);
  }
  setid("FIRST", first);
  setid("LAST", last);
  feed("{op = 'feed', since = 0}",
       "v.seq == 4096 and v.lost == 0 and #v.id == 4096 and v.id[1] == FIRST"
       " and #v.completed == 4096");
  feed("{op = 'feed', since = 4096}",
       "v.seq == 4100 and v.lost == 0 and #v.id == 4 and v.id[4] == LAST");
}

Test(feed, counts_each_clients_tasks_in_flight) {
  uint64_t t1, t2;
  feed("{op = 'feed'}", "#v.clients == 2");
  t1 = h_submit(CLI2, E0->id, 0, 0, "{op = 'exec', code = 'x = 1'}");
  t2 = h_submit(CLI2, E1->id, 0, 0, "{op = 'exec', code = 'x = 2'}");
  h_next(E0, PLUSH_T_REQ, t1);
  h_next(E1, PLUSH_T_REQ, t2);
  setid("C1", CLI->id);
  setid("C2", CLI2->id);
  setid("PID", (uint64_t)getpid());
  /* the harness's clients are this process, on the Unix socket */
  feed("{op = 'feed'}",
       "(function() local p = {} for _, c in ipairs(v.clients) do"
       " p[c.id] = c.pending; assert(c.addr == 'local:' .. PID) end"
       " return p[C1] == 0 and p[C2] == 2 end)()");
}

Test(feed, labels_what_each_engine_runs) {
  uint64_t t1, t2;
  /* balanced tasks: the controller keeps their request (direct ones it
  ** does not, and they have no label) */
  t1 = h_submit(CLI, PLUSH_ANY, PLUSH_F_BALANCED, 0,
                "{op = 'exec', code = 'local x = 1\\nreturn x', name = 'execute'}");
  h_next(E0, PLUSH_T_REQ, t1);
  t2 = h_submit(CLI, PLUSH_ANY, PLUSH_F_BALANCED, 0, "{op = 'apply', f = function(a) return a end,"
                " args = {n = 2, {1, {x = 2}}, 'y'}}");
  h_next(E1, PLUSH_T_REQ, t2);
  h_sendhdr(E0, PLUSH_T_STARTED, t1);
  h_sendhdr(E1, PLUSH_T_STARTED, t2);
  h_quiet(CLI, 10);
  setid("T1", t1);
  setid("T2", t2);
  feed("{op = 'feed'}",
       "v.running[0].id == T1 and v.running[0].label == 'local x = 1'"
       " and v.running[0].started > 0"
       " and v.running[1].id == T2 and v.running[1].label == 'apply'");
  /* a direct task: running, no label */
  h_reply(E0, t1, PLUSH_S_OK, "{r = {n = 0}}");
  h_next(CLI, PLUSH_T_REPLY, t1);
  t1 = h_submit(CLI, E0->id, 0, 0, "{op = 'exec', code = 'return 1'}");
  h_next(E0, PLUSH_T_REQ, t1);
  h_sendhdr(E0, PLUSH_T_STARTED, t1);
  h_quiet(CLI, 10);
  setid("T1", t1);
  feed("{op = 'feed'}", "v.running[0].id == T1 and v.running[0].label == nil");
}

/* Once the ring exists an engine's reply still takes the controller's
** unprotected path (no follower, nothing waiting: controller.c onframe);
** balanced and direct replies, results and errors, are each recorded
** once, in the order they came. */
Test(feed, records_balanced_and_direct_replies_once_the_ring_exists) {
  uint64_t t[3];
  feed("{op = 'feed'}", "v.seq == 0");
  t[0] = h_submit(CLI, PLUSH_ANY, PLUSH_F_BALANCED, 0,
                  "{op = 'exec', code = 'return 1', name = 'execute'}");
  h_next(E0, PLUSH_T_REQ, t[0]);
  h_sendhdr(E0, PLUSH_T_STARTED, t[0]);
  h_reply(E0, t[0], PLUSH_S_ERROR, "{kind = 'RemoteError', message = 'no'}");
  h_next(CLI, PLUSH_T_REPLY, t[0]);
  t[1] = run(CLI2, E1, PLUSH_S_OK, "{r = {n = 1, 2}}");
  t[2] = h_submit(CLI, PLUSH_ANY, PLUSH_F_BALANCED, 0,
                  "{op = 'exec', code = 'return 3', name = 'execute'}");
  h_next(E0, PLUSH_T_REQ, t[2]);
  h_reply(E0, t[2], PLUSH_S_OK, "{r = {n = 1, 3}}");
  h_next(CLI, PLUSH_T_REPLY, t[2]);
  setid("T1", t[0]);
  setid("T2", t[1]);
  setid("T3", t[2]);
  feed("{op = 'feed', since = 0}",
       "v.seq == 3 and v.lost == 0 and #v.id == 3"
       " and v.id[1] == T1 and v.id[2] == T2 and v.id[3] == T3"
       " and v.status[1] == 1 and v.status[2] == 0 and v.status[3] == 0"
       " and v.engine[1] == 0 and v.engine[2] == 1 and v.engine[3] == 0"
       " and v.completed[1] <= v.completed[2]"
       " and v.completed[2] <= v.completed[3]");
}
