/*
** test_relay.c — the receiving end of a relay (plush_relay_take, frame.c):
** a frame flagged RELAYED is held until its RELAY_END says whether it
** counts; anything else in between, or an end without its frame, is a
** protocol error. The controller's side is test_ctl_relay.c.
*/
#include <criterion/criterion.h>

#include "frame.h"
#include "plush.h"

static plush_frame *mk(int type, int flags, int status, uint64_t id) {
  plush_hdr h = {.type = (uint8_t)type, .flags = (uint8_t)flags,
                 .status = (uint16_t)status, .id = id};
  return plush_frame_new(&h);
}

Test(relay, a_relayed_frame_counts_once_its_end_says_so) {
  plush_frame *held = NULL, *f = mk(PLUSH_T_OUTPUT, 0, 0, 1), *r;
  cr_assert_eq(plush_relay_take(&held, &f), PLUSH_RELAY_PASS);
  plush_frame_unref(f);
  r = f = mk(PLUSH_T_REPLY, PLUSH_F_RELAYED, 0, 7);
  cr_assert_eq(plush_relay_take(&held, &f), PLUSH_RELAY_HELD);
  cr_assert_eq(held, r);
  f = mk(PLUSH_T_RELAY_END, 0, PLUSH_S_OK, 7);
  cr_assert_eq(plush_relay_take(&held, &f), PLUSH_RELAY_DONE);
  cr_assert_eq(f, r);
  cr_assert_null(held);
  cr_assert_eq(f->hdr.flags & PLUSH_F_RELAYED, 0);
  plush_frame_unref(f);
  f = mk(PLUSH_T_REQ, PLUSH_F_RELAYED, 0, 8); /* requests relay alike */
  cr_assert_eq(plush_relay_take(&held, &f), PLUSH_RELAY_HELD);
  f = mk(PLUSH_T_RELAY_END, 0, PLUSH_S_ENGINE, 8); /* void: dropped */
  cr_assert_eq(plush_relay_take(&held, &f), PLUSH_RELAY_HELD);
  cr_assert_null(held);
}

Test(relay, anything_out_of_order_is_a_protocol_error) {
  plush_frame *held = NULL, *f = mk(PLUSH_T_RELAY_END, 0, 0, 3);
  cr_assert_eq(plush_relay_take(&held, &f), PLUSH_EPROTO); /* no frame */
  f = mk(PLUSH_T_REPLY, PLUSH_F_RELAYED, 0, 4);
  cr_assert_eq(plush_relay_take(&held, &f), PLUSH_RELAY_HELD);
  f = mk(PLUSH_T_OUTPUT, 0, 0, 4); /* something in between */
  cr_assert_eq(plush_relay_take(&held, &f), PLUSH_EPROTO);
  cr_assert_null(held);
  f = mk(PLUSH_T_REPLY, PLUSH_F_RELAYED, 0, 5);
  cr_assert_eq(plush_relay_take(&held, &f), PLUSH_RELAY_HELD);
  f = mk(PLUSH_T_RELAY_END, 0, 0, 6); /* another task's end */
  cr_assert_eq(plush_relay_take(&held, &f), PLUSH_EPROTO);
  cr_assert_null(held);
}
