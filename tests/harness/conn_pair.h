/*
** conn_pair.h — the fixture of the conn tests (test_cork.c,
** test_direct.c): two conns over a socketpair on one loop of the test's
** own thread, handshaken, each side keeping what it receives in order.
** a is the client side, b the server side; UNTIL runs the loop until a
** condition holds (30 s: then the test fails), so no test sleeps.
*/
#ifndef PLUSH_CONN_PAIR_H
#define PLUSH_CONN_PAIR_H

#include <criterion/criterion.h>
#include <sys/socket.h>

#include "auth.h"
#include "conn.h"
#include "plush.h"

#define MAXF 8192

typedef struct side {
  plush_conn *conn;
  int ready, closed;
  size_t n;
  plush_frame *f[MAXF];
} side;

static struct {
  uv_loop_t loop;
  uint8_t key[PLUSH_KEY_SIZE];
  side a, b;
} T;

static void onready(plush_conn *c) { ((side *)plush_conn_data(c))->ready = 1; }

static void onframe(plush_conn *c, plush_frame *f) {
  side *s = plush_conn_data(c);
  if (s->n < MAXF) s->f[s->n++] = f;
  else plush_frame_unref(f);
}

static void onclose(plush_conn *c, int reason, const char *msg) {
  side *s = plush_conn_data(c);
  (void)reason, (void)msg;
  s->closed = 1;
  s->conn = NULL;
}

static const plush_conn_cbs cbs = {onready, onframe, NULL, onclose, NULL, NULL};

#define UNTIL(cond)                                                    \
  do {                                                                 \
    uint64_t dl_ = uv_now(&T.loop) + 30000;                            \
    while (!(cond) && uv_now(&T.loop) < dl_) uv_run(&T.loop, UV_RUN_ONCE); \
    cr_assert(cond, "timed out waiting for " #cond);                   \
  } while (0)

/* a and b, handshaken; sealed frames with encrypt. */
static void pair(int encrypt) {
  int sv[2];
  plush_conn_opts o = {.key = T.key, .role = PLUSH_ROLE_CLIENT,
                       .encrypt = encrypt};
  memset(&T, 0, sizeof T);
  cr_assert_eq(plush_auth_init(), 0);
  plush_key_generate(T.key, NULL);
  cr_assert_eq(uv_loop_init(&T.loop), 0);
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  cr_assert_eq(plush_conn_open(&T.loop, sv[0], 0, &o, &cbs, &T.a, &T.a.conn), 0);
  cr_assert_eq(plush_conn_open(&T.loop, sv[1], 1, &o, &cbs, &T.b, &T.b.conn), 0);
}

/* Both closed, the loop closed, every frame received freed. */
static void unpair(void) {
  size_t i;
  if (T.a.conn) plush_conn_close(T.a.conn, 0, NULL);
  if (T.b.conn) plush_conn_close(T.b.conn, 0, NULL);
  UNTIL(T.a.closed && T.b.closed);
  uv_run(&T.loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&T.loop), 0);
  for (i = 0; i < T.a.n; i++) plush_frame_unref(T.a.f[i]);
  for (i = 0; i < T.b.n; i++) plush_frame_unref(T.b.f[i]);
}

/* After pair: waits for both handshakes. */
static void pair_ready(void) { UNTIL(T.a.ready && T.b.ready); }

#endif
