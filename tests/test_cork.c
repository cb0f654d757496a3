/*
** test_cork.c — a corked conn (conn_cork.c): small writes wait, counted as
** queued, until the uncork writes them all; a big write, more than 64 kB
** waiting, a normal close and a sealed conn keep every frame in order.
** Two conns over a socketpair, on one loop (conn_pair.h).
*/
#include "conn_pair.h"

/* a and b, handshaken; sealed frames with encrypt. */
static void cork_pair(int encrypt) {
  pair(encrypt);
  pair_ready();
  cr_assert_eq(plush_conn_secure(T.a.conn), encrypt);
}

/* Frame k: REPLY id k, a payload of len bytes, each (k + j) & 0xff. */
static void put(plush_conn *c, uint64_t k, size_t len) {
  plush_hdr h = {.type = PLUSH_T_REPLY, .id = k};
  char *p = malloc(len ? len : 1);
  size_t j;
  for (j = 0; j < len; j++) p[j] = (char)((k + j) & 0xff);
  cr_assert_eq(plush_conn_write_owned(c, &h, p, len), 0);
}

static void check(side *s, size_t i, uint64_t k, size_t len) {
  plush_frame *f = s->f[i];
  const unsigned char *p = (const unsigned char *)plush_frame_payload(f);
  size_t j;
  cr_assert_eq(f->hdr.id, k, "frame %zu: id %llu, not %llu", i,
               (unsigned long long)f->hdr.id, (unsigned long long)k);
  cr_assert_eq(f->hdr.len, len, "frame %zu: %u bytes, not %zu", i, f->hdr.len, len);
  for (j = 0; j < len; j++)
    cr_assert_eq(p[j], (k + j) & 0xff, "frame %zu byte %zu", i, j);
}

Test(cork, small_writes_wait_for_the_uncork_then_all_go_in_order) {
  uint64_t k, sent;
  cork_pair(0);
  sent = plush_conn_sent(T.a.conn);
  plush_conn_cork(T.a.conn);
  cr_assert(plush_conn_corked(T.a.conn));
  for (k = 1; k <= 1000; k++) put(T.a.conn, k, 16); /* 1000 x 40 bytes */
  cr_assert_eq(plush_conn_sent(T.a.conn), sent, "nothing written while corked");
  cr_assert_eq(plush_conn_queued(T.a.conn), 40000);
  uv_run(&T.loop, UV_RUN_NOWAIT);
  cr_assert_eq(T.b.n, 0, "nothing arrives while corked");
  cr_assert_eq(plush_conn_uncork(T.a.conn), 0);
  cr_assert_not(plush_conn_corked(T.a.conn));
  cr_assert_eq(plush_conn_sent(T.a.conn), sent + 40000, "all written by the uncork");
  cr_assert_eq(plush_conn_queued(T.a.conn), 0);
  UNTIL(T.b.n == 1000);
  for (k = 1; k <= 1000; k++) check(&T.b, k - 1, k, 16);
  unpair();
}

Test(cork, a_big_write_or_64_kB_waiting_writes_what_waits_first) {
  uint64_t sent;
  cork_pair(0);
  sent = plush_conn_sent(T.a.conn);
  plush_conn_cork(T.a.conn);
  put(T.a.conn, 1, 100);
  put(T.a.conn, 2, 200);
  cr_assert_eq(plush_conn_sent(T.a.conn), sent);
  put(T.a.conn, 3, 70000); /* not held: what waits goes first, then it */
  cr_assert_eq(plush_conn_queued(T.a.conn) + plush_conn_sent(T.a.conn) - sent,
               124 + 224 + 70024);
  cr_assert_geq(plush_conn_sent(T.a.conn), sent + 124 + 224);
  cr_assert(plush_conn_corked(T.a.conn), "still corked after it");
  put(T.a.conn, 4, 30000);
  put(T.a.conn, 5, 30000);
  put(T.a.conn, 6, 30000); /* past 64 kB waiting: 4 and 5 leave first */
  put(T.a.conn, 7, 5);
  cr_assert_eq(plush_conn_uncork(T.a.conn), 0);
  UNTIL(T.b.n == 7);
  check(&T.b, 0, 1, 100);
  check(&T.b, 1, 2, 200);
  check(&T.b, 2, 3, 70000);
  check(&T.b, 3, 4, 30000);
  check(&T.b, 4, 5, 30000);
  check(&T.b, 5, 6, 30000);
  check(&T.b, 6, 7, 5);
  unpair();
}

Test(cork, a_full_socket_keeps_the_rest_queued_in_order) {
  uint64_t k;
  cork_pair(0);
  plush_conn_pause(T.b.conn); /* b reads nothing: the socket fills */
  plush_conn_cork(T.a.conn);
  for (k = 1; k <= 2000; k++) put(T.a.conn, k, 1000); /* ~2 MB */
  cr_assert_eq(plush_conn_uncork(T.a.conn), 0);
  cr_assert_gt(plush_conn_queued(T.a.conn), 0, "the socket took only part");
  plush_conn_resume(T.b.conn);
  UNTIL(T.b.n == 2000 && plush_conn_queued(T.a.conn) == 0);
  for (k = 1; k <= 2000; k++) check(&T.b, k - 1, k, 1000);
  unpair();
}

Test(cork, a_normal_close_writes_what_waits) {
  uint64_t k;
  cork_pair(0);
  plush_conn_cork(T.a.conn);
  for (k = 1; k <= 50; k++) put(T.a.conn, k, 8);
  plush_conn_close(T.a.conn, 0, NULL);
  UNTIL(T.b.n == 50);
  for (k = 1; k <= 50; k++) check(&T.b, k - 1, k, 8);
  unpair();
}

Test(cork, a_failed_close_drops_what_waits) {
  uint64_t k;
  cork_pair(0);
  plush_conn_cork(T.a.conn);
  for (k = 1; k <= 50; k++) put(T.a.conn, k, 8);
  plush_conn_close(T.a.conn, PLUSH_EPROTO, "test");
  UNTIL(T.a.closed && T.b.closed);
  cr_assert_eq(T.b.n, 0);
  unpair(); /* ASan: the waiting writes were freed */
}

Test(cork, sealed_frames_keep_their_order) {
  uint64_t k;
  cork_pair(1);
  plush_conn_cork(T.a.conn);
  for (k = 1; k <= 300; k++) put(T.a.conn, k, (size_t)(k * 7 % 500));
  cr_assert_eq(T.b.n, 0);
  cr_assert_eq(plush_conn_uncork(T.a.conn), 0);
  UNTIL(T.b.n == 300);
  for (k = 1; k <= 300; k++) check(&T.b, k - 1, k, (size_t)(k * 7 % 500));
  unpair();
}
