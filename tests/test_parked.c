/*
** test_parked.c — the controller and a task parked on its subtasks
** (engines/engine_co.c): once its engine says so (STARTED with status
** PLUSH_STARTED_PARKED) the task no longer counts against the engine's
** share of balanced work, so the engine is sent more (the subtasks a
** parent waits for among them), until the task's reply.
*/
#include <criterion/criterion.h>

#include "ctl_harness.h"

#define S H

static void setup(void) {
  plush_ctl_opts o = {0};
  o.hwm = 2;
  o.fixed_hwm = 1;
  h_start(&o, 1, 1);
}
static void teardown(void) { h_stop(); }

TestSuite(parked, .init = setup, .fini = teardown);

static uint64_t submit(uint32_t seq) {
  plush_hdr h = {.type = PLUSH_T_REQ, .flags = PLUSH_F_BALANCED,
                 .engine = PLUSH_ANY, .id = (uint64_t)S.cli[0].id << 32 | seq};
  cr_assert_eq(plush_conn_write(S.cli[0].conn, &h, "\x80", 1), 0);
  return h.id;
}

static void parked(h_fake *e, uint64_t id) {
  h_send(e, PLUSH_T_STARTED, PLUSH_STARTED_PARKED, e->id, id, 0, 0, NULL);
}

static void answer(h_fake *e, uint64_t id) {
  h_reply(e, id, 0, "{r = {n = 0}}");
  h_next(&S.cli[0], PLUSH_T_REPLY, id);
}

Test(parked, a_parked_task_frees_its_slot_until_its_reply) {
  h_fake *e = &S.eng[0];
  uint64_t t1 = submit(1), t2 = submit(2), t3 = submit(3), t4 = submit(4);
  h_next(e, PLUSH_T_REQ, t1);
  h_next(e, PLUSH_T_REQ, t2);
  h_quiet(e, 100); /* --hwm 2: t3 waits in the controller */
  h_sendhdr(e, PLUSH_T_STARTED, t1);
  h_quiet(e, 50);  /* started is not parked */
  parked(e, t1);
  h_next(e, PLUSH_T_REQ, t3);
  h_quiet(e, 50);
  parked(e, t1);   /* said twice (it waited again): one slot, once */
  h_quiet(e, 100);
  answer(e, t2);
  h_next(e, PLUSH_T_REQ, t4);
  answer(e, t1);   /* the parked one ends: its slot counts no more */
  answer(e, t3);
  answer(e, t4);
  {
    uint64_t t5 = submit(5), t6 = submit(6), t7 = submit(7);
    h_next(e, PLUSH_T_REQ, t5);
    h_next(e, PLUSH_T_REQ, t6);
    h_quiet(e, 100); /* two in flight again, none parked */
    answer(e, t5);
    h_next(e, PLUSH_T_REQ, t7);
    answer(e, t6);
    answer(e, t7);
  }
}
