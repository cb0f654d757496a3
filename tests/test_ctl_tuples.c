/*
** test_ctl_tuples.c — cancelling waiting tuple-space requests
** (core/ctl_tuples.c, ts_cancel): a waiter is found by its key (kind,
** who, rid) in one lookup, requests whose keys are equal chain, and only
** the sender's own request is cancelled. A real controller, fake clients
** (tests/harness/ctl_harness.h), answers decoded by the real codec.
*/
#include <criterion/criterion.h>
#include <stdio.h>

#include "ctl_harness.h"
#include "ctl_tuples.h"
#include "plush.h"

static void setup(void) { h_start(NULL, 1, 2); }
static void teardown(void) { h_stop(); }

TestSuite(tscancel, .init = setup, .fini = teardown);

#define A (&H.cli[0])
#define B (&H.cli[1])

static const char *TAKE = "{op = 'ts_take', space = 's', pattern = {'x', {['plush.ANY'] = true}}, "
                          "wait = true}";

/* Everything p sent before has been handled: an answered count. */
static void handled(h_fake *p) {
  uint64_t id = h_ctrl(p, "{op = 'ts_count', space = 's'}");
  h_next(p, PLUSH_T_CTRL_REPLY, id);
}

/* p cancels request rid. */
static void cancel(h_fake *p, uint64_t rid) {
  char expr[96];
  /* in hex: a Lua integer for every 64-bit rid (a decimal one past 2^63
  ** would be a float) */
  snprintf(expr, sizeof expr, "{op = 'ts_cancel', rid = 0x%llx}", (unsigned long long)rid);
  h_ctrl(p, expr);
}

/* p puts out {'x', n}; its answer (after the commit) waited for. */
static void out(h_fake *p, int n) {
  char expr[96];
  snprintf(expr, sizeof expr, "{op = 'ts_out', space = 's', tuple = {'x', %d}}", n);
  h_next(p, PLUSH_T_CTRL_REPLY, h_ctrl(p, expr));
}

/*
** Waiting takes of engine 0 and client A whose keys are equal: a client's
** request ids carry its own id (others are refused), an engine's may be
** any, so e (the engine's) is chosen from a (A's).
*/
#define E (&H.eng[0])
static void colliding(uint64_t *a, uint64_t *e) {
  const uint64_t k = 0x9e3779b97f4a7c15ULL;
  *a = h_taskid(A);
  *e = *a ^ ((uint64_t)A->id * k) ^ ((uint64_t)E->id * k) ^ (uint64_t)P_CLIENT ^
       (uint64_t)P_ENGINE;
  cr_assert_eq(ctl_ts_wkey(P_CLIENT, A->id, *a), ctl_ts_wkey(P_ENGINE, E->id, *e));
  h_send(A, PLUSH_T_CTRL, 0, 0, *a, 0, 0, TAKE);
  handled(A);
  h_send(E, PLUSH_T_CTRL, 0, 0, *e, 0, 0, TAKE);
  handled(E);
}

/* Nobody took the tuple {'x', n} put out by B: it is in the space. */
static void kept(int n) {
  char expr[96];
  out(B, n);
  snprintf(expr, sizeof expr, "{op = 'ts_count', space = 's', pattern = {'x', %d}}", n);
  h_expect(h_next(B, PLUSH_T_CTRL_REPLY, h_ctrl(B, expr)), "v == 1");
}

Test(tscancel, equal_keys_chain_and_the_newest_is_cancelled_alone) {
  uint64_t a, e;
  colliding(&a, &e);
  cancel(A, e); /* the engine's rid from A: not A's request, nothing */
  handled(A);
  h_quiet(E, 50);
  cancel(E, e); /* the head of the key's chain */
  h_expect(h_next(E, PLUSH_T_CTRL_REPLY, e), "v == 'cancelled'");
  cancel(A, a); /* still found: it heads the chain now */
  h_expect(h_next(A, PLUSH_T_CTRL_REPLY, a), "v == 'cancelled'");
  kept(1);
}

Test(tscancel, equal_keys_chain_and_the_oldest_is_cancelled_alone) {
  uint64_t a, e;
  colliding(&a, &e);
  cancel(E, a); /* A's rid from the engine: nothing */
  handled(E);
  h_quiet(A, 50);
  cancel(A, a); /* behind the engine's in the chain */
  h_expect(h_next(A, PLUSH_T_CTRL_REPLY, a), "v == 'cancelled'");
  cancel(E, e);
  h_expect(h_next(E, PLUSH_T_CTRL_REPLY, e), "v == 'cancelled'");
  kept(2);
}

Test(tscancel, a_thousand_waiting_takes_cancelled_take_nothing) {
  enum { N = 1000 };
  static uint64_t ids[N];
  for (int i = 0; i < N; i++) ids[i] = h_ctrl(A, TAKE);
  handled(A);
  h_forget(A);
  /* newest first, then the rest in a fixed shuffle: each answered once */
  for (int i = N - 1; i >= N / 2; i--) {
    cancel(A, ids[i]);
    h_expect(h_next(A, PLUSH_T_CTRL_REPLY, ids[i]), "v == 'cancelled'");
    h_forget(A);
  }
  for (int k = 0; k < N / 2; k++) {
    int i = (k * 317) % (N / 2); /* 317 is prime to 500: each once */
    cancel(A, ids[i]);
    h_expect(h_next(A, PLUSH_T_CTRL_REPLY, ids[i]), "v == 'cancelled'");
    h_forget(A);
  }
  cancel(A, ids[0]); /* already cancelled: nothing */
  out(B, 3);
  uint64_t id = h_ctrl(B, "{op = 'ts_count', space = 's'}");
  h_expect(h_next(B, PLUSH_T_CTRL_REPLY, id), "v == 1");
  h_quiet(A, 50);
}
