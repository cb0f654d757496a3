/*
** test_ctl_flush.c — what the controller forwards to a client in one turn
** of its loop leaves corked, in one writev (ctl_flush.c, conn_cork.c):
** every reply still arrives, whole and once; one made by a timer arrives
** without waiting for another event; a client that leaves with replies
** waiting for it leaves nothing behind. The requests of one turn go to
** an engine corked too: a burst written by a client in one write reaches
** its engines whole, in order and once, and each task gets one reply,
** errors included.
*/
#include <criterion/criterion.h>
#include <stdio.h>

#include "ctl_harness.h"
#include "plush.h"

#define CLI (&H.cli[0])

static void teardown(void) { h_stop(); }

TestSuite(flush, .fini = teardown);

static void answer_all(uint64_t *t) {
  char expr[64];
  int i;
  for (i = 0; i < H_MAXENG; i++)
    t[i] = h_submit(CLI, H.eng[i].id, 0, 0, "{op = 'exec', code = 'return engine.id'}");
  for (i = 0; i < H_MAXENG; i++) h_next(&H.eng[i], PLUSH_T_REQ, t[i]);
  /* every engine answers before the controller's loop runs again */
  for (i = H_MAXENG - 1; i >= 0; i--) {
    snprintf(expr, sizeof expr, "{r = {n = 1, %d}}", 100 + i);
    h_reply(&H.eng[i], t[i], PLUSH_S_OK, expr);
  }
}

Test(flush, the_replies_of_one_turn_all_reach_the_client_once) {
  uint64_t t[H_MAXENG];
  int seen[H_MAXENG] = {0}, i, k;
  h_start(NULL, H_MAXENG, 1);
  for (k = 0; k < 3; k++) {
    answer_all(t);
    for (i = 0; i < H_MAXENG; i++) {
      plush_frame *f = h_next(CLI, PLUSH_T_REPLY, ~(uint64_t)0);
      int j;
      for (j = 0; j < H_MAXENG && t[j] != f->hdr.id; j++) {}
      cr_assert_lt(j, H_MAXENG, "a reply to no task of this round");
      cr_assert_eq(seen[j], k, "task of engine %d answered twice", j);
      seen[j]++;
      cr_assert_eq(f->hdr.engine, H.eng[j].id);
      lua_pushinteger(H.L, 100 + j);
      lua_setglobal(H.L, "want");
      h_expect(f, "v.r.n == 1 and v.r[1] == want");
    }
  }
  h_quiet(CLI, 50); /* and nothing more */
}

/* A timer's TimeoutError is corked like any reply: it must still leave
** before the loop waits again (heartbeats a minute apart: no other event
** comes to flush it). */
Test(flush, a_reply_made_by_a_timer_leaves_at_once) {
  plush_ctl_opts o = {.heartbeat = 60};
  uint64_t t;
  plush_frame *f;
  h_start(&o, 1, 1);
  t = h_submit(CLI, H.eng[0].id, 0, 50, "{op = 'exec', code = 'while true do end'}");
  h_next(&H.eng[0], PLUSH_T_REQ, t);
  f = h_next(CLI, PLUSH_T_REPLY, t);
  cr_assert_eq(f->hdr.status, PLUSH_S_TIMEOUT);
  h_expect(f, "v.kind == 'TimeoutError'");
}

Test(flush, a_client_that_leaves_with_replies_corked_leaves_nothing_behind) {
  uint64_t t[H_MAXENG];
  h_fake *b;
  h_start(NULL, H_MAXENG, 1);
  answer_all(t);
  plush_conn_close(CLI->conn, PLUSH_EPROTO, "the fake client leaves");
  b = h_client();
  cr_assert_eq(h_status(b, "clients"), 1);
  cr_assert_eq(h_status(b, "pending"), 0);
}

/* A client's burst in one write: direct tasks for the engine, 2 for an
** engine that does not exist and 2 balanced ones, interleaved; the engine
** fails one of its tasks. */
Test(flush, a_burst_of_requests_in_one_write_gets_one_reply_each) {
  enum { N = 16 };
  uint64_t t[N];
  int kind[N]; /* 0: to the engine, 1: to no such engine, 2: balanced */
  int seen[N] = {0}, got[N] = {0}, i, j, last;
  char expr[64];
  h_start(NULL, 1, 1);
  plush_conn_cork(CLI->conn);
  for (i = 0; i < N; i++) {
    kind[i] = i == 3 || i == 9 ? 1 : i == 5 || i == 12 ? 2 : 0;
    snprintf(expr, sizeof expr, "{op = 'exec', code = 'return %d'}", i);
    t[i] = kind[i] == 1   ? h_submit(CLI, 777, 0, 0, expr)
           : kind[i] == 2 ? h_submit(CLI, PLUSH_ANY, PLUSH_F_BALANCED, 0, expr)
                          : h_submit(CLI, H.eng[0].id, 0, 0, expr);
  }
  cr_assert_eq(plush_conn_uncork(CLI->conn), 0);
  /* the engine gets its 14 once each, the direct ones in the order they
  ** were written (balanced ones go as the engine has room for them), and
  ** answers each as it comes */
  for (i = 0, last = -1; i < N - 2; i++) {
    plush_frame *f = h_next(&H.eng[0], PLUSH_T_REQ, ~(uint64_t)0);
    for (j = 0; j < N && t[j] != f->hdr.id; j++) {}
    cr_assert_lt(j, N, "a request of no task of the burst");
    cr_assert_neq(kind[j], 1, "task %d has no engine", j);
    cr_assert_eq(got[j]++, 0, "task %d sent twice", j);
    if (kind[j] == 0) {
      cr_assert_gt(j, last, "task %d sent after task %d", j, last);
      last = j;
    }
    snprintf(expr, sizeof expr, "{r = {n = 1, %d}}", 100 + j);
    if (j == 7)
      h_reply(&H.eng[0], t[j], PLUSH_S_ERROR, "{kind = 'RemoteError', message = 'boom'}");
    else
      h_reply(&H.eng[0], t[j], PLUSH_S_OK, expr);
  }
  for (i = 0; i < N; i++) {
    plush_frame *f = h_next(CLI, PLUSH_T_REPLY, ~(uint64_t)0);
    for (j = 0; j < N && t[j] != f->hdr.id; j++) {}
    cr_assert_lt(j, N, "a reply to no task of the burst");
    cr_assert_eq(seen[j]++, 0, "task %d answered twice", j);
    if (kind[j] == 1) {
      cr_assert_eq(f->hdr.status, PLUSH_S_BADREQ, "task %d", j);
      h_expect(f, "v.kind == 'BadRequest' and v.message:find('unknown engine 777', 1, true)");
    } else if (j == 7) {
      cr_assert_eq(f->hdr.status, PLUSH_S_ERROR);
      h_expect(f, "v.kind == 'RemoteError' and v.message == 'boom'");
    } else {
      cr_assert_eq(f->hdr.status, PLUSH_S_OK, "task %d", j);
      lua_pushinteger(H.L, 100 + j);
      lua_setglobal(H.L, "want");
      h_expect(f, "v.r.n == 1 and v.r[1] == want");
    }
  }
  h_quiet(CLI, 50);
  h_quiet(&H.eng[0], 1);
}
