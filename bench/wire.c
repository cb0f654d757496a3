/*
** bench/wire.c — what sealing costs on the wire: one frame of `mb` MiB
** (default 100) sent `k` times (default 3) from a client conn to a server
** conn over loopback, plain and sealed (XChaCha20-Poly1305), each timed
** from the write to the frame's arrival whole. Prints one JSON object:
**   {"bytes": N, "plain": [s, ...], "sealed": [s, ...]}
** bench/run.lua runs it (the rows "one 100 MB frame over loopback ...");
** it is no test: speed figures belong in the bench, not in ctest.
**
**   build/bench/plush-bench-wire [k] [mb]
*/
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "auth.h"
#include "conn.h"
#include "frame.h"
#include "plush.h"

static struct {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_timer_t tick;
  int port;
  uint8_t key[PLUSH_KEY_SIZE];
  plush_conn *cli, *srv;
  int cready, sready, closed, closing;
  size_t got;        /* frames the server received */
} B;

static void die(const char *what, int r) {
  fprintf(stderr, "plush-bench-wire: %s: %s\n", what, plush_strerror(r));
  exit(1);
}

static void onready(plush_conn *c) {
  if (c == B.cli) B.cready = 1;
  else B.sready = 1;
}

static void onframe(plush_conn *c, plush_frame *f) {
  if (c != B.cli) B.got++;
  plush_frame_unref(f);
}

static void onclose(plush_conn *c, int reason, const char *msg) {
  (void)reason;
  if (c == B.cli) B.cli = NULL;
  else B.srv = NULL;
  if (!B.closing && msg)
    fprintf(stderr, "plush-bench-wire: connection closed: %s\n", msg);
  B.closed++;
}

static const plush_conn_cbs cbs = {onready, onframe, NULL, onclose, NULL,
                                   NULL};

static void onaccept(uv_stream_t *server, int status) {
  plush_conn_opts o = {.key = B.key};
  int r;
  if (status < 0) die("accept", status);
  if ((r = plush_conn_accept(server, &o, &cbs, NULL, &B.srv)) < 0)
    die("accept", r);
}

static void tick(uv_timer_t *t) { (void)t; }

/* Runs the loop until done() (120 s at most: then gives up). */
static void until(int (*done)(void)) {
  uint64_t end = uv_now(&B.loop) + 120000;
  while (!done()) {
    if (uv_now(&B.loop) > end) die("waiting", UV_ETIMEDOUT);
    if (B.closed && !B.closing) die("connection", PLUSH_ECLOSED);
    uv_run(&B.loop, UV_RUN_ONCE);
  }
}

static int ready(void) { return B.cready && B.sready; }

static size_t want;
static int arrived(void) { return B.got >= want; }
static int both_closed(void) { return B.cli == NULL && B.srv == NULL; }

/* k samples of one len-byte frame, client to server; encrypt: sealed. */
static void run(int encrypt, int k, size_t len, double *out) {
  plush_conn_opts o = {.key = B.key, .role = PLUSH_ROLE_ENGINE,
                       .encrypt = encrypt};
  int r;
  B.cready = B.sready = 0;
  B.closed = B.closing = 0;
  B.got = 0;
  if ((r = plush_conn_connect(&B.loop, "127.0.0.1", B.port, &o, &cbs, NULL,
                              &B.cli)) < 0)
    die("connect", r);
  until(ready);
  if (plush_conn_secure(B.cli) != encrypt) die("sealing", PLUSH_EPROTO);
  for (int i = 0; i < k; i++) {
    plush_hdr h = {.len = (uint32_t)len, .type = PLUSH_T_OUTPUT, .id = 1};
    char *p = malloc(len);
    uint64_t t0;
    if (p == NULL) die("malloc", PLUSH_ENOMEM);
    memset(p, 'x', len);
    want = B.got + 1;
    t0 = uv_hrtime();
    if ((r = plush_conn_write_owned(B.cli, &h, p, len)) < 0) die("write", r);
    until(arrived);
    out[i] = (double)(uv_hrtime() - t0) / 1e9;
  }
  B.closing = 1; /* the two closes to come are ours */
  plush_conn_close(B.cli, 0, NULL);
  until(both_closed);
}

static void print(const char *name, const double *s, int k) {
  printf("\"%s\": [", name);
  for (int i = 0; i < k; i++) printf("%s%.6f", i ? ", " : "", s[i]);
  printf("]");
}

int main(int argc, char **argv) {
  int k = argc > 1 ? atoi(argv[1]) : 3;
  size_t len = (size_t)(argc > 2 ? atoi(argv[2]) : 100) << 20;
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int n = sizeof ss, r;
  double *plain, *sealed;
  if (k < 1 || k > 1000 || len == 0 || len > ((size_t)1 << 30)) {
    fprintf(stderr, "usage: plush-bench-wire [samples 1-1000] [MiB 1-1024]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if ((r = plush_auth_init()) < 0) die("auth", r);
  plush_key_generate(B.key, NULL);
  plain = calloc((size_t)k, sizeof *plain);
  sealed = calloc((size_t)k, sizeof *sealed);
  uv_loop_init(&B.loop);
  uv_timer_init(&B.loop, &B.tick);
  uv_timer_start(&B.tick, tick, 10, 10);
  uv_tcp_init(&B.loop, &B.listener);
  uv_ip4_addr("127.0.0.1", 0, &a);
  if ((r = uv_tcp_bind(&B.listener, (struct sockaddr *)&a, 0)) < 0 ||
      (r = uv_listen((uv_stream_t *)&B.listener, 4, onaccept)) < 0)
    die("listen", r);
  uv_tcp_getsockname(&B.listener, (struct sockaddr *)&ss, &n);
  B.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  run(0, k, len, plain);
  run(1, k, len, sealed);
  printf("{\"bytes\": %zu, ", len);
  print("plain", plain, k);
  printf(", ");
  print("sealed", sealed, k);
  printf("}\n");
  uv_close((uv_handle_t *)&B.listener, NULL);
  uv_close((uv_handle_t *)&B.tick, NULL);
  uv_run(&B.loop, UV_RUN_DEFAULT);
  uv_loop_close(&B.loop);
  free(plain);
  free(sealed);
  return 0;
}
