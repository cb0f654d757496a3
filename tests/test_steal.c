/*
** test_steal.c — the controller's balanced scheduling against fake
** engines whose every frame the test sends by hand (tests/harness/
** ctl_harness.h): which engine gets what, when the controller takes a
** queued task back (RECLAIM), and that a task runs once whatever the
** engine answers.
*/
#include <criterion/criterion.h>

#include "ctl_harness.h"

#define NFAKE 2

/* The harness's loop driving, under this file's short names. */
typedef h_fake fake;
#define S H

static plush_hdr next(fake *p, int type, uint64_t id) {
  return h_next(p, type, id)->hdr;
}

static void quiet(fake *p, uint64_t ms) { h_quiet(p, ms); }

static void sendhdr(fake *p, int type, uint64_t id) {
  h_sendhdr(p, type, id);
}

/* An engine's reply {r = {n = 0}}. */
static void reply(fake *p, uint64_t id) { h_reply(p, id, 0, "{r = {n = 0}}"); }

/* The client submits balanced task seq, with a timeout of ms (0: none);
** its payload is not looked at. */
static uint64_t submit_within(uint32_t seq, uint32_t ms) {
  plush_hdr h = {.type = PLUSH_T_REQ, .flags = PLUSH_F_BALANCED,
                 .engine = PLUSH_ANY, .id = (uint64_t)S.cli[0].id << 32 | seq,
                 .aux = ms};
  cr_assert_eq(plush_conn_write(S.cli[0].conn, &h, "\x80", 1), 0);
  return h.id;
}

static void setup(void) { h_start(NULL, NFAKE, 1); }
static void teardown(void) { h_stop(); }

TestSuite(steal, .init = setup, .fini = teardown);

/* Three balanced tasks: the first and third go to engine 0 (a tie goes to
** the lower id), the second to engine 1, which runs and answers it. */
static void three(uint64_t t[3], uint32_t ms3) {
  fake *a = &S.eng[0], *b = &S.eng[1];
  for (int i = 0; i < 3; i++)
    t[i] = submit_within((uint32_t)i + 1, i == 2 ? ms3 : 0);
  next(a, PLUSH_T_REQ, t[0]);
  next(b, PLUSH_T_REQ, t[1]);
  next(a, PLUSH_T_REQ, t[2]);
}

/* three(), then engine 0 starts the first, engine 1 runs the second and
** falls idle: the controller asks engine 0 for the third back. */
static void asked_back(uint64_t t[3], uint32_t ms3) {
  fake *a = &S.eng[0], *b = &S.eng[1];
  three(t, ms3);
  sendhdr(a, PLUSH_T_STARTED, t[0]);
  sendhdr(b, PLUSH_T_STARTED, t[1]);
  reply(b, t[1]);
  next(&S.cli[0], PLUSH_T_REPLY, t[1]);
  next(a, PLUSH_T_RECLAIM, t[2]); /* after the first ran 1 ms */
}

/*
** A task queued behind one that runs long goes to the engine that falls
** idle, taken back with RECLAIM, even when the long one's STARTED comes in
** only after the other engine went idle (nothing else happens then: the
** STARTED itself must set the clock going).
*/
Test(steal, a_task_behind_a_long_one_goes_to_the_idle_engine) {
  fake *a = &S.eng[0], *b = &S.eng[1];
  uint64_t t[3], t1, t2, t3;
  three(t, 0);
  t1 = t[0], t2 = t[1], t3 = t[2];
  sendhdr(b, PLUSH_T_STARTED, t2);
  reply(b, t2);
  next(&S.cli[0], PLUSH_T_REPLY, t2);
  quiet(a, 20); /* a's task may not have started: nothing to take yet */
  sendhdr(a, PLUSH_T_STARTED, t1);
  next(a, PLUSH_T_RECLAIM, t3);
  sendhdr(a, PLUSH_T_RECLAIMED, t3);
  next(b, PLUSH_T_REQ, t3);
  sendhdr(b, PLUSH_T_STARTED, t3);
  reply(b, t3);
  next(&S.cli[0], PLUSH_T_REPLY, t3);
  reply(a, t1);
  next(&S.cli[0], PLUSH_T_REPLY, t1);
  quiet(&S.cli[0], 20); /* each answered once */
  quiet(a, 0);
  quiet(b, 0);
}

/*
** The engine had taken the task when the RECLAIM came: it says nothing,
** the task stays where it is and its one reply goes to the client.
*/
Test(steal, a_task_already_taken_stays_and_answers_once) {
  fake *a = &S.eng[0], *b = &S.eng[1];
  uint64_t t[3];
  asked_back(t, 0);
  reply(a, t[0]); /* ... and a took the third meanwhile */
  sendhdr(a, PLUSH_T_STARTED, t[2]);
  reply(a, t[2]);
  next(&S.cli[0], PLUSH_T_REPLY, t[0]);
  next(&S.cli[0], PLUSH_T_REPLY, t[2]);
  quiet(b, 20); /* t3 never went to b */
  quiet(&S.cli[0], 0);
}

/*
** The engine dies with a RECLAIM unanswered: its balanced tasks, the one
** it ran and the one asked back, go to the other engine, once each.
*/
Test(steal, an_engine_dying_mid_reclaim_gives_its_tasks_to_the_other) {
  fake *a = &S.eng[0], *b = &S.eng[1];
  uint64_t t[3], got[2];
  plush_hdr h;
  asked_back(t, 0);
  plush_conn_close(a->conn, 0, "the fake engine dies");
  next(&S.cli[0], PLUSH_T_EVENT, 0); /* engine_down */
  for (int i = 0; i < 2; i++) {
    while (b->seen == b->ngot) uv_run(&S.loop, UV_RUN_ONCE);
    got[i] = b->got[b->seen]->hdr.id;
    next(b, PLUSH_T_REQ, got[i]);
  }
  cr_assert((got[0] == t[0] && got[1] == t[2]) ||
            (got[0] == t[2] && got[1] == t[0]), "b got the wrong tasks");
  for (int i = 0; i < 2; i++) {
    sendhdr(b, PLUSH_T_STARTED, got[i]);
    reply(b, got[i]);
    h = next(&S.cli[0], PLUSH_T_REPLY, got[i]);
    cr_assert_eq(h.status, PLUSH_S_OK);
  }
  quiet(&S.cli[0], 20);
}

/*
** A task asked back times out before its engine answers: its one answer
** is the TimeoutError, and the RECLAIMED that follows ends it: it goes
** nowhere else.
*/
Test(steal, a_task_timing_out_while_asked_back_ends_there) {
  fake *a = &S.eng[0], *b = &S.eng[1];
  uint64_t t[3];
  plush_hdr h;
  asked_back(t, 50);
  next(a, PLUSH_T_INTERRUPT, t[2]); /* 50 ms later */
  h = next(&S.cli[0], PLUSH_T_REPLY, t[2]);
  cr_assert_eq(h.status, PLUSH_S_TIMEOUT);
  sendhdr(a, PLUSH_T_RECLAIMED, t[2]);
  quiet(b, 30); /* not resubmitted */
  reply(a, t[0]);
  next(&S.cli[0], PLUSH_T_REPLY, t[0]);
  quiet(&S.cli[0], 20);
}
