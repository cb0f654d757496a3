/*
** test_direct.c — a second thread writing small frames straight into a
** conn's socket (core/conn_direct.c): whole frames, in order with the
** loop's own writes, and refused (nothing written) whenever the loop's
** queue, a cork, sealing, the size or a missing lock says so. Two conns
** over a socketpair, on one loop (conn_pair.h), as test_cork.c.
*/
#include <pthread.h>

#include "conn_pair.h"

#define N 3000

static struct {
  uv_mutex_t wmu; /* a's writer lock, shared */
  int refused;    /* direct writes the conn said no to */
  int done;       /* the second writer has written all */
} D;

/* a (shared writes) and b, handshaken; sealed frames with encrypt. */
static void direct_pair(int encrypt) {
  memset(&D, 0, sizeof D);
  pair(encrypt);
  cr_assert_eq(uv_mutex_init_recursive(&D.wmu), 0);
  plush_conn_share_writes(T.a.conn, &D.wmu);
  pair_ready();
}

static void direct_unpair(void) {
  unpair();
  uv_mutex_destroy(&D.wmu);
}

/* Frame k's payload: len bytes, each (k + j) & 0xff. */
static void fill(char *p, uint64_t k, size_t len) {
  for (size_t j = 0; j < len; j++) p[j] = (char)((k + j) & 0xff);
}

static size_t lenof(uint64_t k) { return (size_t)(k * 7 % 600); }

static int direct(uint64_t k, size_t len) {
  plush_hdr h = {.len = (uint32_t)len, .type = PLUSH_T_MSG, .id = k};
  char p[8192];
  int r;
  fill(p, k, len);
  uv_mutex_lock(&D.wmu);
  r = plush_conn_write_direct(T.a.conn, &h, p, len);
  uv_mutex_unlock(&D.wmu);
  return r;
}

static void loopwrite(uint64_t k, size_t len) {
  plush_hdr h = {.type = PLUSH_T_REPLY, .id = k};
  char *p = malloc(len ? len : 1);
  fill(p, k, len);
  cr_assert_eq(plush_conn_write_owned(T.a.conn, &h, p, len), 0);
}

static void check(plush_frame *f, uint64_t k, size_t len) {
  const unsigned char *p = (const unsigned char *)plush_frame_payload(f);
  cr_assert_eq(f->hdr.id, k, "id %llu, not %llu", (unsigned long long)f->hdr.id,
               (unsigned long long)k);
  cr_assert_eq(f->hdr.len, len, "frame %llu: %u bytes, not %zu",
               (unsigned long long)k, f->hdr.len, len);
  for (size_t j = 0; j < len; j++)
    cr_assert_eq(p[j], (k + j) & 0xff, "frame %llu byte %zu",
                 (unsigned long long)k, j);
}

Test(direct, frames_written_by_another_thread_arrive_whole_and_in_order) {
  uint64_t sent, bytes = 0;
  direct_pair(0);
  sent = plush_conn_sent(T.a.conn);
  for (uint64_t k = 1; k <= 100; k++) {
    cr_assert_eq(direct(k, lenof(k)), 1, "frame %llu not taken",
                 (unsigned long long)k);
    bytes += PLUSH_HDR_SIZE + lenof(k);
  }
  cr_assert_eq(plush_conn_sent(T.a.conn), sent + bytes, "counted as sent");
  cr_assert_eq(plush_conn_queued(T.a.conn), 0);
  UNTIL(T.b.n == 100);
  for (uint64_t k = 1; k <= 100; k++) check(T.b.f[k - 1], k, lenof(k));
  direct_unpair();
}

/* The second writer: frames 1..N straight into the socket when the conn
** takes them, each waiting (the loop drains) when it does not. */
static void *writer(void *arg) {
  (void)arg;
  for (uint64_t k = 1; k <= N;) {
    if (direct(k, lenof(k))) {
      k++;
    } else {
      __atomic_add_fetch(&D.refused, 1, __ATOMIC_RELAXED);
      sched_yield();
    }
  }
  __atomic_store_n(&D.done, 1, __ATOMIC_RELEASE);
  return NULL;
}

Test(direct, another_thread_and_the_loop_write_at_once_and_no_frame_is_cut) {
  pthread_t t;
  size_t na = 0, nb = 0;
  direct_pair(0);
  cr_assert_eq(pthread_create(&t, NULL, writer, NULL), 0);
  /* the loop's own frames, ids N+1.., meanwhile: its queue refuses the
  ** other thread while it holds anything */
  for (uint64_t k = N + 1; k <= 2 * N; k++) {
    uv_mutex_lock(&D.wmu);
    loopwrite(k, lenof(k) * 5);
    uv_mutex_unlock(&D.wmu);
    uv_run(&T.loop, UV_RUN_NOWAIT);
  }
  /* the loop drains its queue and reads: the writer's next frame may go.
  ** Not UNTIL: its UV_RUN_ONCE would block for good once the writer's
  ** last frame is read before its done flag is set */
  {
    uint64_t dl = uv_hrtime() + (uint64_t)30e9;
    while (!__atomic_load_n(&D.done, __ATOMIC_ACQUIRE) && uv_hrtime() < dl) {
      uv_run(&T.loop, UV_RUN_NOWAIT);
      sched_yield();
    }
    cr_assert(__atomic_load_n(&D.done, __ATOMIC_ACQUIRE), "the writer never finished");
  }
  pthread_join(t, NULL);
  UNTIL(T.b.n == 2 * N);
  for (size_t i = 0; i < T.b.n; i++) { /* each writer's frames in order */
    plush_frame *f = T.b.f[i];
    if (f->hdr.id <= N) {
      na++;
      check(f, na, lenof(na));
    } else {
      nb++;
      check(f, N + nb, lenof(N + nb) * 5);
    }
  }
  cr_assert_eq(na, N);
  cr_assert_eq(nb, N);
  direct_unpair();
}

Test(direct, refused_with_anything_queued_corked_too_big_or_unshared) {
  uint64_t sent;
  direct_pair(0);
  sent = plush_conn_sent(T.a.conn);
  plush_conn_cork(T.a.conn);
  loopwrite(1, 10); /* waits in the cork: queued */
  cr_assert_eq(direct(2, 10), 0, "a frame queued before it goes first");
  cr_assert_eq(plush_conn_uncork(T.a.conn), 0);
  cr_assert_eq(direct(3, 8192), 0, "over 8 KiB: the loop's");
  cr_assert_eq(direct(4, 8192 - PLUSH_HDR_SIZE), 1);
  UNTIL(T.b.n == 2);
  check(T.b.f[0], 1, 10);
  check(T.b.f[1], 4, 8192 - PLUSH_HDR_SIZE);
  cr_assert_eq(plush_conn_sent(T.a.conn), sent + PLUSH_HDR_SIZE + 10 + 8192);
  /* a conn nobody shared: never */
  {
    plush_hdr h = {.type = PLUSH_T_MSG, .id = 5};
    cr_assert_eq(plush_conn_write_direct(T.b.conn, &h, NULL, 0), 0);
  }
  direct_unpair();
}

Test(direct, a_sealed_conn_is_left_to_its_loop) {
  direct_pair(1);
  cr_assert_eq(plush_conn_secure(T.a.conn), 1);
  cr_assert_eq(direct(1, 10), 0);
  loopwrite(2, 10);
  UNTIL(T.b.n == 1);
  check(T.b.f[0], 2, 10);
  direct_unpair();
}

Test(direct, a_closing_conn_takes_nothing) {
  direct_pair(0);
  plush_conn_close(T.a.conn, UV_ECANCELED, "test");
  if (T.a.conn) cr_assert_eq(direct(1, 10), 0);
  UNTIL(T.a.closed);
  direct_unpair();
}
