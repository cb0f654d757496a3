/*
** test_lend.c — big strings lent to a Unix socket (conn_lend.c, mem.h's
** plush_mem_lend): only a string sent a second time is lent; its bytes
** arrive exactly, in order with the frames around them, even when its
** string dies and its memory is written again before the reader has read
** them (a lent block is unmapped, never reused); a reader that stops
** makes the writer give up lending within LEND_PATIENCE, the rest going
** the usual way, still exact and in order. The reader is a conn on a loop
** of its own, in a thread of its own, as a controller is.
** Criterion runs each test in its own process: mem starts empty.
*/
#include <criterion/criterion.h>
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "auth.h"
#include "buf.h"
#include "codec.h"
#include "conn.h"
#include "frame.h"
#include "lua_mem.h"
#include "mem.h"
#include "seg_frame.h"

#define MiB ((size_t)1 << 20)
#define NFRAMES 4 /* at most */

static plush_mem_stats stats(void) {
  plush_mem_stats s;
  plush_mem_get_stats(&s);
  return s;
}

static uint8_t key[PLUSH_KEY_SIZE];

/* ---- the reader: a conn on its own loop and thread ------------------- */

static struct {
  uv_loop_t loop;
  uv_async_t go;           /* the writer says: read now */
  plush_conn *c;
  int fd, ready, hold;     /* hold: do not read until go */
  plush_frame *got[NFRAMES];
  int ngot, want;          /* frames come, of want */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t th;
} R;

static void r_ready(plush_conn *c) {
  if (R.hold) plush_conn_pause(c);
  pthread_mutex_lock(&R.mu);
  R.ready = 1;
  pthread_cond_broadcast(&R.cv);
  pthread_mutex_unlock(&R.mu);
}

static void r_frame(plush_conn *c, plush_frame *f) {
  (void)c;
  pthread_mutex_lock(&R.mu);
  cr_assert_lt(R.ngot, NFRAMES);
  R.got[R.ngot++] = f;
  pthread_cond_broadcast(&R.cv);
  pthread_mutex_unlock(&R.mu);
  if (R.ngot == R.want) {
    plush_conn_close(R.c, 0, NULL);
    uv_close((uv_handle_t *)&R.go, NULL);
  }
}

static void r_close(plush_conn *c, int reason, const char *msg) {
  (void)c, (void)reason, (void)msg;
  R.c = NULL;
}

static const plush_conn_cbs rcbs = {r_ready, r_frame, NULL, r_close, NULL, NULL};

static void r_go(uv_async_t *a) {
  (void)a;
  if (R.c) plush_conn_resume(R.c);
}

static void *reader(void *arg) {
  (void)arg;
  uv_run(&R.loop, UV_RUN_DEFAULT);
  return NULL;
}

/* ---- the writer: a conn on the test's loop --------------------------- */

static uv_loop_t wloop;
static plush_conn *W;
static int wready;

static void w_ready(plush_conn *c) {
  (void)c;
  wready = 1;
}

static void w_frame(plush_conn *c, plush_frame *f) {
  (void)c;
  plush_frame_unref(f);
}

static void w_close(plush_conn *c, int reason, const char *msg) {
  (void)c, (void)reason, (void)msg;
  W = NULL;
}

static const plush_conn_cbs wcbs = {w_ready, w_frame, NULL, w_close, NULL, NULL};

/* A conn pair over a socketpair; hold: the reader reads nothing until
** released. Waits until both ends are ready. */
static int sndbuf; /* the writer's socket's send buffer, as set */

static void pair(int hold, int want) {
  int sv[2], n = 4 << 20;
  socklen_t sl = sizeof sndbuf;
  plush_conn_opts o;
  signal(SIGPIPE, SIG_IGN);
  cr_assert_eq(plush_auth_init(), 0);
  plush_key_generate(key, NULL);
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &n, sizeof n);
  cr_assert_eq(getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl), 0);
  pthread_mutex_init(&R.mu, NULL);
  pthread_cond_init(&R.cv, NULL);
  R.hold = hold;
  R.want = want;
  uv_loop_init(&R.loop);
  uv_async_init(&R.loop, &R.go, r_go);
  memset(&o, 0, sizeof o);
  o.key = key;
  o.role = PLUSH_ROLE_ENGINE;
  cr_assert_eq(plush_conn_open(&R.loop, sv[1], 1, &o, &rcbs, NULL, &R.c), 0);
  uv_loop_init(&wloop);
  cr_assert_eq(plush_conn_open(&wloop, sv[0], 0, &o, &wcbs, NULL, &W), 0);
  cr_assert_eq(pthread_create(&R.th, NULL, reader, NULL), 0);
  for (int i = 0; i < 2000 && !wready; i++) uv_run(&wloop, UV_RUN_ONCE);
  cr_assert(wready, "the writer's conn is ready");
  pthread_mutex_lock(&R.mu);
  while (!R.ready) pthread_cond_wait(&R.cv, &R.mu);
  pthread_mutex_unlock(&R.mu);
}

/* The writer's loop runs until the reader has n frames (60 s at most). */
static void await_frames(int n) {
  uint64_t dl = uv_now(&wloop) + 60000;
  for (;;) {
    int got;
    pthread_mutex_lock(&R.mu);
    got = R.ngot;
    pthread_mutex_unlock(&R.mu);
    if (got >= n || uv_now(&wloop) > dl) break;
    uv_run(&wloop, UV_RUN_NOWAIT);
    uv_update_time(&wloop);
  }
  cr_assert_eq(R.ngot, n, "the reader got %d of %d frames", R.ngot, n);
}

static void unpair(void) {
  cr_assert_eq(pthread_join(R.th, NULL), 0);
  for (int i = 0; i < R.ngot; i++) plush_frame_unref(R.got[i]);
  if (W) plush_conn_close(W, 0, NULL);
  uv_run(&wloop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&wloop), 0);
  cr_assert_eq(uv_loop_close(&R.loop), 0);
}

/* ---- frames ------------------------------------------------------------ */

static lua_State *newstate(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  plush_lua_mem_install(L);
  return L;
}

/* The global s of L in a request frame, as a client encodes it (its
** string a segment, pinned: one more time sent); *flat its bytes. */
static plush_frame *frameof(lua_State *L, uint64_t id, char **flat) {
  plush_frame *f;
  lua_getglobal(L, "s");
  f = h_segframe(L, -1, id, flat);
  lua_pop(L, 1);
  cr_assert_eq(f->nsegs, 1);
  return f;
}

/* A small frame between the big ones: order is kept around them. */
static void small(uint64_t id) {
  plush_hdr h = {0};
  h.type = PLUSH_T_REQ;
  h.id = id;
  cr_assert_eq(plush_conn_write(W, &h, "tick", 4), 0);
}

static void check(int i, uint64_t id, const char *flat, size_t len) {
  cr_assert_eq(R.got[i]->hdr.id, id, "frame %d: id %llu", i,
               (unsigned long long)R.got[i]->hdr.id);
  cr_assert_eq(R.got[i]->hdr.len, len, "frame %d: length", i);
  cr_assert(memcmp(plush_frame_payload(R.got[i]), flat, len) == 0,
            "frame %d: its bytes differ", i);
}

/*
** The same string sent twice, a small frame after each: the first copied,
** the second lent (written while nothing else is queued). The string
** then dies and a block of its size is written with other bytes: the
** lent block was unmapped (not kept), and the reader gets exact bytes in
** order.
*/
Test(lend, a_string_sent_twice_is_lent_and_arrives_exact_after_it_died,
     .timeout = 120) {
  lua_State *L = newstate();
  plush_frame *f1, *f2;
  char *flat1, *flat2, *other;
  size_t len, kept;
  pair(0, 4);
  cr_assert_eq(luaL_dostring(L, "s = string.rep('lend', 3 << 20) .. 'end'"), LUA_OK);
  f1 = frameof(L, 1, &flat1);
  len = f1->hdr.len;
  cr_assert_eq(plush_conn_write_frame(W, f1), 0);
  plush_frame_unref(f1);
  cr_assert_eq(stats().lent, 0, "sent once: copied, not lent");
  small(2);
  await_frames(2);
  /* the writer's loop hears its writes are done: nothing queued */
  for (int i = 0; i < 100000 && plush_conn_queued(W) > 0; i++)
    uv_run(&wloop, UV_RUN_NOWAIT);
  cr_assert_eq(plush_conn_queued(W), 0);
  f2 = frameof(L, 3, &flat2);
  cr_assert_eq(plush_conn_write_frame(W, f2), 0);
  cr_assert_eq(stats().lent, 1, "sent twice: lent");
  small(4);
  plush_frame_unref(f2);
  lua_gc(L, LUA_GCCOLLECT); /* string.rep's buffer goes (kept) */
  kept = stats().kept;
  lua_close(L); /* the string dies: its block, unpinned, is unmapped */
  cr_assert_eq(stats().pinned, 0);
  cr_assert_eq(stats().kept, kept, "the lent block is not kept");
  other = plush_mem_alloc(len); /* a block of its size, written */
  memset(other, 'Z', len);
  await_frames(4);
  check(0, 1, flat1, len);
  cr_assert_eq(R.got[1]->hdr.id, 2);
  check(2, 3, flat2, len);
  cr_assert_eq(R.got[3]->hdr.id, 4);
  plush_mem_free(other, len);
  free(flat1);
  free(flat2);
  unpair();
}

/*
** A reader that reads nothing: the writer lends what the socket takes,
** gives up after LEND_PATIENCE, reads what its pipe held back into a
** write of its own and queues the rest behind it through libuv. Let go,
** the reader gets it all exact and in order, the frame after it last,
** though the string died and its size was written meanwhile.
*/
Test(lend, a_reader_that_stops_gets_the_rest_the_usual_way_in_order,
     .timeout = 120) {
  lua_State *L = newstate();
  plush_frame *f;
  char *flat, *other;
  size_t len;
  uint64_t t0;
  char code[96];
  pair(1, 2);
  /* more than the socket can hold: 12 MiB, or twice its send buffer */
  snprintf(code, sizeof code, "s = string.rep('held', %d) .. 'end'",
           sndbuf / 2 > (3 << 20) ? sndbuf / 2 : 3 << 20);
  cr_assert_eq(luaL_dostring(L, code), LUA_OK);
  f = frameof(L, 1, &flat); /* sent once ... */
  free(flat);
  plush_frame_unref(f);
  f = frameof(L, 1, &flat); /* ... and this is the second time */
  len = f->hdr.len;
  t0 = uv_hrtime();
  cr_assert_eq(plush_conn_write_frame(W, f), 0);
  cr_assert_eq(stats().lent, 1);
  cr_assert_lt(uv_hrtime() - t0, 10000000000ull, "the writer was held");
  cr_assert_gt(plush_conn_queued(W), 0, "the rest waits in the queue");
  small(2);
  plush_frame_unref(f);
  lua_close(L);
  other = plush_mem_alloc(len);
  memset(other, 'Z', len);
  uv_async_send(&R.go);
  await_frames(2);
  check(0, 1, flat, len);
  cr_assert_eq(R.got[1]->hdr.id, 2);
  plush_mem_free(other, len);
  free(flat);
  unpair();
  cr_assert_eq(stats().pinned, 0, "written: unpinned");
}

/*
** A reader that has not read yet, a frame its socket takes whole: lent
** whole, the write done, the string's pins gone; the string dies and a
** block of its size is written. Were the lent block kept, that block
** would be it, and the reader would read the new bytes.
*/
Test(lend, a_lent_string_s_memory_is_never_written_while_a_reader_may_read_it,
     .timeout = 120) {
  lua_State *L = newstate();
  plush_frame *f;
  char *flat, *others[16];
  size_t len;
  int nother;
  pair(1, 1);
  if (sndbuf < (5 << 20) / 2) { /* net.core.wmem_max too small here */
    uv_async_send(&R.go);
    small(1);
    await_frames(1);
    lua_close(L);
    unpair();
    cr_skip_test("a send buffer of %d bytes cannot hold 1.5 MiB", sndbuf);
  }
  cr_assert_eq(luaL_dostring(L, "s = string.rep('w', 3 << 19)"), LUA_OK);
  f = frameof(L, 1, &flat);
  free(flat);
  plush_frame_unref(f);
  f = frameof(L, 1, &flat);
  len = f->hdr.len;
  cr_assert_eq(plush_conn_write_frame(W, f), 0);
  cr_assert_eq(stats().lent, 1);
  cr_assert_eq(plush_conn_queued(W), 0, "the socket took it all");
  plush_frame_unref(f);
  lua_gc(L, LUA_GCCOLLECT);
  lua_close(L);
  cr_assert_eq(stats().pinned, 0);
  /* every block kept (string.rep's buffer, say) taken and written */
  nother = stats().kept + 1;
  for (int i = 0; i < nother; i++) {
    others[i] = plush_mem_alloc(len);
    memset(others[i], 'Z', len);
  }
  uv_async_send(&R.go);
  await_frames(1);
  check(0, 1, flat, len);
  for (int i = 0; i < nother; i++) plush_mem_free(others[i], len);
  free(flat);
  unpair();
}

Test(lend, a_lent_block_is_unmapped_when_freed_never_kept) {
  char *p = plush_mem_alloc(3 * MiB), *q;
  void *pin;
  memset(p, 'x', 3 * MiB);
  cr_assert_eq(plush_mem_lend(p, 3 * MiB), 0, "never sent: not lent");
  pin = plush_mem_pin(p, 3 * MiB);
  plush_mem_unpin(pin);
  cr_assert_eq(plush_mem_lend(p, 3 * MiB), 0, "sent once: not lent");
  pin = plush_mem_pin(p, 3 * MiB);
  cr_assert_eq(plush_mem_lend(p + 5, MiB), 1, "sent twice: lent");
  cr_assert_eq(plush_mem_lend(p, 5 * MiB), 0, "not past its block");
  cr_assert_eq(stats().lent, 1);
  plush_mem_free(p, 3 * MiB); /* freed while pinned: the unpin frees */
  plush_mem_unpin(pin);
  cr_assert_eq(stats().live, 0);
  cr_assert_eq(stats().kept, 0, "a lent block is not kept");
  /* a block sent twice but never lent is kept as before */
  q = plush_mem_alloc(3 * MiB);
  plush_mem_unpin(plush_mem_pin(q, MiB));
  plush_mem_unpin(plush_mem_pin(q, MiB));
  plush_mem_free(q, 3 * MiB);
  cr_assert_eq(stats().kept, 1);
  /* nor is one grown: a lent block is copied, not remapped */
  p = plush_mem_alloc(3 * MiB);
  memset(p, 'y', 3 * MiB);
  plush_mem_unpin(plush_mem_pin(p, MiB));
  plush_mem_unpin(plush_mem_pin(p, MiB));
  cr_assert_eq(plush_mem_lend(p, MiB), 1);
  q = plush_mem_realloc(p, 3 * MiB, 3 * MiB + 10);
  cr_assert_neq(q, p, "a lent block is not resized in place");
  cr_assert_eq(q[3 * MiB - 1], 'y');
  plush_mem_free(q, 3 * MiB + 10);
}
