/*
** test_steal.c — the controller's balanced scheduling against fake
** engines whose every frame the test sends by hand: which engine gets what,
** when the controller takes a queued task back (RECLAIM), and that a task
** runs once whatever the engine answers. One thread: the test drives the
** loop (uv_run once at a time) until what it waits for has arrived.
*/
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <uv.h>

#include "auth.h"
#include "conn.h"
#include "controller.h"
#include "frame.h"

#define NFAKE 2
#define MAXF 64

/* A peer of the controller: what it was sent, in order. */
typedef struct fake {
  plush_conn *conn;
  uint32_t id;     /* engine id, or client id, from WELCOME */
  int welcomed;
  plush_hdr got[MAXF];
  int ngot, seen;  /* frames received; how many the test has looked at */
} fake;

static struct {
  uv_loop_t loop;
  plush_ctl *ctl;
  uint8_t key[PLUSH_KEY_SIZE];
  fake eng[NFAKE], cli;
  int stopped;
} S;

static void f_ready(plush_conn *c) {
  static const char reg[] = "\x82\xa3pid\x01\xa4host\xa4" "fake";
  plush_hdr h = {.type = PLUSH_T_REGISTER};
  if (plush_conn_role(c) == PLUSH_ROLE_ENGINE)
    plush_conn_write(c, &h, reg, sizeof reg - 1);
}

static void f_frame(plush_conn *c, plush_frame *f) {
  fake *p = plush_conn_data(c);
  if (f->hdr.type == PLUSH_T_WELCOME) {
    p->id = f->hdr.engine;
    p->welcomed = 1;
  } else if (f->hdr.type == PLUSH_T_PING) {
    plush_hdr h = {.type = PLUSH_T_PONG, .engine = p->id, .aux = f->hdr.aux};
    plush_conn_write(c, &h, NULL, 0);
  } else {
    cr_assert_lt(p->ngot, MAXF);
    p->got[p->ngot++] = f->hdr;
  }
  plush_frame_unref(f);
}

static void f_close(plush_conn *c, int reason, const char *msg) {
  fake *p = plush_conn_data(c);
  (void)reason, (void)msg;
  p->conn = NULL;
}

static const plush_conn_cbs fcbs = {f_ready, f_frame, NULL, f_close, NULL,
                                    NULL};

/* Runs the loop until *flag is set (or 5 s pass: a failure). */
static void until(const int *flag, const char *what) {
  uint64_t end = uv_now(&S.loop) + 5000;
  while (!*flag) {
    cr_assert_lt(uv_now(&S.loop), end, "timed out waiting for %s", what);
    uv_run(&S.loop, UV_RUN_ONCE);
  }
}

/* The next frame p was sent, waiting for it: its type and id checked. */
static plush_hdr next(fake *p, int type, uint64_t id) {
  uint64_t end = uv_now(&S.loop) + 5000;
  plush_hdr h;
  while (p->seen == p->ngot) {
    cr_assert_lt(uv_now(&S.loop), end, "timed out waiting for frame %d", type);
    uv_run(&S.loop, UV_RUN_ONCE);
  }
  h = p->got[p->seen++];
  cr_assert_eq(h.type, type, "frame type %d, not %d", h.type, type);
  cr_assert_eq(h.id, id, "frame for task %llx, not %llx",
               (unsigned long long)h.id, (unsigned long long)id);
  return h;
}

static void noop(uv_timer_t *t) { (void)t; }

/* Runs the loop for ms milliseconds: nothing may arrive at p meanwhile. */
static void quiet(fake *p, uint64_t ms) {
  uint64_t end = uv_now(&S.loop) + ms;
  uv_timer_t t;
  uv_timer_init(&S.loop, &t);
  uv_timer_start(&t, noop, ms, 0);
  while (uv_now(&S.loop) < end) uv_run(&S.loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&S.loop, UV_RUN_NOWAIT);
  cr_assert_eq(p->seen, p->ngot, "frame type %d arrived, none expected",
               p->got[p->seen].type);
}

static void sendhdr(fake *p, int type, uint64_t id) {
  plush_hdr h = {.type = (uint8_t)type, .engine = p->id, .id = id};
  cr_assert_eq(plush_conn_write(p->conn, &h, NULL, 0), 0);
}

/* An engine's reply {r = {n = 0}}. */
static void reply(fake *p, uint64_t id) {
  static const char ok[] = "\x81\xa1r\x81\xa1n\x00";
  plush_hdr h = {.type = PLUSH_T_REPLY, .engine = p->id, .id = id};
  cr_assert_eq(plush_conn_write(p->conn, &h, ok, sizeof ok - 1), 0);
}

/* The client submits balanced task seq, with a timeout of ms (0: none);
** its payload is not looked at. */
static uint64_t submit_within(uint32_t seq, uint32_t ms) {
  plush_hdr h = {.type = PLUSH_T_REQ, .flags = PLUSH_F_BALANCED,
                 .engine = PLUSH_ANY, .id = (uint64_t)S.cli.id << 32 | seq,
                 .aux = ms};
  cr_assert_eq(plush_conn_write(S.cli.conn, &h, "\x80", 1), 0);
  return h.id;
}


static void stopped(void *ud) {
  (void)ud;
  S.stopped = 1;
}

static void setup(void) {
  plush_ctl_opts o;
  char hex[2 * PLUSH_KEY_SIZE + 1];
  plush_conn_opts eo, co;
  signal(SIGPIPE, SIG_IGN);
  memset(&S, 0, sizeof S);
  cr_assert_eq(plush_auth_init(), 0);
  plush_key_generate(S.key, hex);
  uv_loop_init(&S.loop);
  memset(&o, 0, sizeof o);
  memcpy(o.key, S.key, sizeof o.key);
  cr_assert_eq(plush_ctl_start(&S.loop, &o, &S.ctl), 0);
  eo = (plush_conn_opts){.key = S.key, .role = PLUSH_ROLE_ENGINE};
  co = (plush_conn_opts){.key = S.key, .role = PLUSH_ROLE_CLIENT};
  /* one at a time, so that the first gets the lower id */
  for (int i = 0; i < NFAKE; i++) {
    cr_assert_eq(plush_conn_connect(&S.loop, "127.0.0.1",
                                    plush_ctl_port(S.ctl), &eo, &fcbs,
                                    &S.eng[i], &S.eng[i].conn), 0);
    until(&S.eng[i].welcomed, "an engine's WELCOME");
  }
  cr_assert_lt(S.eng[0].id, S.eng[1].id);
  cr_assert_eq(plush_conn_connect(&S.loop, "127.0.0.1", plush_ctl_port(S.ctl),
                                  &co, &fcbs, &S.cli, &S.cli.conn), 0);
  until(&S.cli.welcomed, "the client's WELCOME");
}

static void teardown(void) {
  for (int i = 0; i < NFAKE; i++)
    if (S.eng[i].conn) plush_conn_close(S.eng[i].conn, 0, "done");
  if (S.cli.conn) plush_conn_close(S.cli.conn, 0, "done");
  plush_ctl_stop(S.ctl, stopped, NULL);
  until(&S.stopped, "the controller's stop");
  uv_run(&S.loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&S.loop), 0);
}

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
  next(&S.cli, PLUSH_T_REPLY, t[1]);
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
  next(&S.cli, PLUSH_T_REPLY, t2);
  quiet(a, 20); /* a's task may not have started: nothing to take yet */
  sendhdr(a, PLUSH_T_STARTED, t1);
  next(a, PLUSH_T_RECLAIM, t3);
  sendhdr(a, PLUSH_T_RECLAIMED, t3);
  next(b, PLUSH_T_REQ, t3);
  sendhdr(b, PLUSH_T_STARTED, t3);
  reply(b, t3);
  next(&S.cli, PLUSH_T_REPLY, t3);
  reply(a, t1);
  next(&S.cli, PLUSH_T_REPLY, t1);
  quiet(&S.cli, 20); /* each answered once */
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
  next(&S.cli, PLUSH_T_REPLY, t[0]);
  next(&S.cli, PLUSH_T_REPLY, t[2]);
  quiet(b, 20); /* t3 never went to b */
  quiet(&S.cli, 0);
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
  next(&S.cli, PLUSH_T_EVENT, 0); /* engine_down */
  for (int i = 0; i < 2; i++) {
    while (b->seen == b->ngot) uv_run(&S.loop, UV_RUN_ONCE);
    got[i] = b->got[b->seen].id;
    next(b, PLUSH_T_REQ, got[i]);
  }
  cr_assert((got[0] == t[0] && got[1] == t[2]) ||
            (got[0] == t[2] && got[1] == t[0]), "b got the wrong tasks");
  for (int i = 0; i < 2; i++) {
    sendhdr(b, PLUSH_T_STARTED, got[i]);
    reply(b, got[i]);
    h = next(&S.cli, PLUSH_T_REPLY, got[i]);
    cr_assert_eq(h.status, PLUSH_S_OK);
  }
  quiet(&S.cli, 20);
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
  h = next(&S.cli, PLUSH_T_REPLY, t[2]);
  cr_assert_eq(h.status, PLUSH_S_TIMEOUT);
  sendhdr(a, PLUSH_T_RECLAIMED, t[2]);
  quiet(b, 30); /* not resubmitted */
  reply(a, t[0]);
  next(&S.cli, PLUSH_T_REPLY, t[0]);
  quiet(&S.cli, 20);
}
