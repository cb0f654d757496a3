/*
** test_secure.c — sealed frames: the opener on its own, then two real
** conns on loopback with a small TCP relay between them that records
** every byte and can tamper with what passes (flip a bit, replay, drop or
** swap a sealed record, change a handshake byte), then a whole cluster
** (controller, engine, client) with encryption forced. What sealing
** costs is bench/wire.c's to measure (scripts/bench), not a test's.
*/
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "auth.h"
#include "buf.h"
#include "codec.h"
#include "conn.h"
#include "controller.h"
#include "engine_host.h"
#include "frame.h"
#include "log.h"
#include "plush.h"
#include "secure.h"

#define MARKER "PLUSH-SECRET-MARKER-7f3a"
#define MAXF 64

/* ------------------------------------------------------------------ */
/* Frames to send and what arrived.                                     */

static void fill(char *p, size_t len, size_t i) {
  size_t j, m = strlen(MARKER);
  for (j = 0; j < len; j++) p[j] = (char)(j * 131 + i * 17 + (j >> 9));
  if (len >= m) memcpy(p, MARKER, m);
}

static plush_hdr hdr_of(size_t i, size_t len) {
  plush_hdr h;
  memset(&h, 0, sizeof h);
  h.len = (uint32_t)len;
  h.type = (uint8_t)(1 + i % (PLUSH_T__MAX - 1));
  h.flags = (uint8_t)(i & 1);
  h.status = (uint16_t)(i * 3);
  h.engine = (uint32_t)(100 + i);
  h.id = ((uint64_t)7 << 32) | (uint64_t)(1000 + i);
  h.aux = (uint32_t)(0xabc00000u + i);
  return h;
}

/* NULL when f is frame i of length len, else what differs. */
static const char *differs(const plush_frame *f, size_t i, size_t len) {
  static char why[96];
  plush_hdr h = hdr_of(i, len);
  char *want;
  int bad;
  if (f->hdr.len != h.len || f->hdr.type != h.type || f->hdr.flags != h.flags ||
      f->hdr.status != h.status || f->hdr.engine != h.engine ||
      f->hdr.id != h.id || f->hdr.aux != h.aux) {
    snprintf(why, sizeof why, "frame %zu: header differs", i);
    return why;
  }
  want = malloc(len ? len : 1);
  fill(want, len, i);
  bad = memcmp(plush_frame_payload((plush_frame *)f), want, len) != 0;
  free(want);
  if (bad) {
    snprintf(why, sizeof why, "frame %zu: payload differs", i);
    return why;
  }
  return NULL;
}

typedef struct got {
  size_t n;
  plush_frame *f[MAXF];
} got;

static void collect(void *ud, plush_frame *f) {
  got *g = ud;
  if (g->n < MAXF) g->f[g->n] = f;
  else plush_frame_unref(f);
  g->n++;
}

static void got_free(got *g) {
  size_t i;
  for (i = 0; i < g->n && i < MAXF; i++) plush_frame_unref(g->f[i]);
  g->n = 0;
}

/* ------------------------------------------------------------------ */
/* The opener on its own.                                               */

static uint8_t K1[PLUSH_KEY_SIZE], K2[PLUSH_KEY_SIZE];

static void keys(void) {
  cr_assert_eq(plush_auth_init(), 0);
  memset(K1, 0x11, sizeof K1);
  memset(K2, 0x22, sizeof K2);
}

TestSuite(opener, .init = keys);

/* Seals frames 0..n-1 of the given sizes into one stream. */
static plush_buf sealed_stream(plush_seal *s, const size_t *lens, size_t n) {
  plush_buf b = PLUSH_BUF_INIT;
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char hb[PLUSH_HDR_SIZE];
    plush_hdr h = hdr_of(i, lens[i]);
    char *p = malloc(lens[i] ? lens[i] : 1), *rec;
    size_t reclen;
    fill(p, lens[i], i);
    plush_hdr_pack(&h, hb);
    cr_assert_eq(plush_seal_frame(s, hb, p, lens[i], &rec, &reclen), 0);
    cr_assert_eq(reclen, lens[i] + PLUSH_HDR_SIZE + PLUSH_SEAL_OVERHEAD);
    plush_buf_append(&b, rec, reclen);
    free(rec);
    free(p);
  }
  return b;
}

static const size_t lens[] = {0, 1, 23, 24, 100, 70000, 5, 0, 4096};
#define NLENS (sizeof lens / sizeof lens[0])

Test(opener, round_trip_in_any_split) {
  size_t step;
  for (step = 1; step <= 70001; step = step * 3 + 1) {
    plush_seal s;
    plush_opener o;
    plush_buf b;
    got g = {0};
    size_t off, i;
    plush_seal_init(&s, K1);
    b = sealed_stream(&s, lens, NLENS);
    plush_opener_init(&o, K1, 0);
    for (off = 0; off < b.len; off += step) {
      size_t n = b.len - off < step ? b.len - off : step;
      cr_assert_eq(plush_opener_feed(&o, b.data + off, n, collect, &g), 0, "%s", o.err);
    }
    cr_assert_eq(g.n, NLENS, "step %zu", step);
    for (i = 0; i < NLENS; i++) {
      const char *why = differs(g.f[i], i, lens[i]);
      cr_assert_null(why, "step %zu: %s", step, why);
    }
    got_free(&g);
    plush_opener_free(&o);
    plush_buf_free(&b);
  }
}

/*
** A reader that receives big bodies in place: header and tag bytes through
** feed, the body through direct/advance, as conn.c does.
*/
Test(opener, direct_reads) {
  plush_seal s;
  plush_opener o;
  plush_buf b;
  got g = {0};
  size_t off = 0, i;
  plush_seal_init(&s, K1);
  b = sealed_stream(&s, lens, NLENS);
  plush_opener_init(&o, K1, 0);
  while (off < b.len) {
    size_t room = 0;
    char *d = plush_opener_direct(&o, &room);
    if (d != NULL) {
      size_t n = room > 1000 ? room / 2 : room;
      if (n > b.len - off) n = b.len - off;
      memcpy(d, b.data + off, n);
      cr_assert_eq(plush_opener_advance(&o, n, collect, &g), 0);
      off += n;
    } else {
      cr_assert_eq(plush_opener_feed(&o, b.data + off, 1, collect, &g), 0, "%s", o.err);
      off++;
    }
  }
  cr_assert_eq(g.n, NLENS);
  for (i = 0; i < NLENS; i++) cr_assert_null(differs(g.f[i], i, lens[i]));
  /* more than the room is a caller bug, refused without harm */
  cr_assert_eq(plush_opener_advance(&o, 1, collect, &g), PLUSH_EINVAL);
  got_free(&g);
  plush_opener_free(&o);
  plush_buf_free(&b);
}

/* Feeds all of b; the first error, 0 when none. */
static int feed_all(plush_opener *o, const plush_buf *b, got *g) {
  return plush_opener_feed(o, b->data, b->len, collect, g);
}

Test(opener, wrong_key_or_direction_refused) {
  plush_seal s;
  plush_opener o;
  plush_buf b;
  got g = {0};
  plush_seal_init(&s, K1);
  b = sealed_stream(&s, lens, 3);
  plush_opener_init(&o, K2, 0);
  cr_assert_eq(feed_all(&o, &b, &g), PLUSH_EAUTH);
  cr_assert_eq(g.n, 0);
  cr_assert(strstr(o.err, "failed authentication") != NULL, "%s", o.err);
  /* dead from now on, whatever comes */
  cr_assert_eq(feed_all(&o, &b, &g), PLUSH_EAUTH);
  plush_opener_free(&o);
  plush_buf_free(&b);
}

/* Every single bit flipped anywhere in a record is caught. */
Test(opener, every_bit_flip_refused) {
  static const size_t one[] = {40};
  plush_seal s;
  plush_buf b;
  size_t i;
  int bit;
  plush_seal_init(&s, K1);
  b = sealed_stream(&s, one, 1);
  for (i = 0; i < b.len; i++)
    for (bit = 0; bit < 8; bit++) {
      plush_opener o;
      got g = {0};
      int r;
      b.data[i] ^= (char)(1 << bit);
      plush_opener_init(&o, K1, 0);
      r = feed_all(&o, &b, &g);
      /* a length made larger waits for bytes that never come */
      cr_assert(r < 0 || (i < 4 && g.n == 0), "byte %zu bit %d", i, bit);
      cr_assert_eq(g.n, 0, "byte %zu bit %d delivered a frame", i, bit);
      plush_opener_free(&o);
      b.data[i] ^= (char)(1 << bit);
    }
  plush_buf_free(&b);
}

Test(opener, replayed_dropped_or_swapped_records_refused) {
  static const size_t three[] = {10, 20, 30};
  plush_seal s;
  plush_buf b, r;
  size_t a0, a1;
  int k;
  plush_seal_init(&s, K1);
  b = sealed_stream(&s, three, 3);
  a0 = 4 + 24 + 10 + 16; /* record 0 */
  a1 = 4 + 24 + 20 + 16;
  for (k = 0; k < 3; k++) {
    plush_opener o;
    got g = {0};
    plush_buf_init(&r);
    if (k == 0) { /* 0, 0 again */
      plush_buf_append(&r, b.data, a0);
      plush_buf_append(&r, b.data, a0);
    } else if (k == 1) { /* 0, 2 */
      plush_buf_append(&r, b.data, a0);
      plush_buf_append(&r, b.data + a0 + a1, b.len - a0 - a1);
    } else { /* 1, 0 */
      plush_buf_append(&r, b.data + a0, a1);
      plush_buf_append(&r, b.data, a0);
    }
    plush_opener_init(&o, K1, 0);
    cr_assert_eq(feed_all(&o, &r, &g), PLUSH_EAUTH, "case %d", k);
    cr_assert_eq(g.n, k == 2 ? 0u : 1u, "case %d", k);
    got_free(&g);
    plush_opener_free(&o);
    plush_buf_free(&r);
  }
  plush_buf_free(&b);
}

Test(opener, bad_lengths_and_headers_refused) {
  unsigned char pre[4] = {39, 0, 0, 0}, hb[PLUSH_HDR_SIZE];
  plush_opener o;
  plush_seal s;
  plush_hdr h;
  got g = {0};
  char *rec, pay[10] = "0123456789";
  size_t reclen;
  /* under the minimum */
  plush_opener_init(&o, K1, 0);
  cr_assert_eq(plush_opener_feed(&o, (char *)pre, 4, collect, &g), PLUSH_EPROTO);
  plush_opener_free(&o);
  /* over max_frame: refused before anything is allocated */
  plush_opener_init(&o, K1, 100);
  pre[0] = 141;
  cr_assert_eq(plush_opener_feed(&o, (char *)pre, 4, collect, &g), PLUSH_ETOOBIG);
  cr_assert_null(o.cur);
  plush_opener_free(&o);
  /* a sealed header whose len disagrees with the record */
  h = hdr_of(0, 5);
  plush_hdr_pack(&h, hb);
  plush_seal_init(&s, K1);
  cr_assert_eq(plush_seal_frame(&s, hb, pay, sizeof pay, &rec, &reclen), 0);
  plush_opener_init(&o, K1, 0);
  cr_assert_eq(plush_opener_feed(&o, rec, reclen, collect, &g), PLUSH_EPROTO);
  cr_assert(strstr(o.err, "says 5 bytes") != NULL, "%s", o.err);
  free(rec);
  plush_opener_free(&o);
  /* an unknown type, sealed by a peer with the key */
  h = hdr_of(0, sizeof pay);
  h.type = PLUSH_T__MAX;
  plush_hdr_pack(&h, hb);
  plush_seal_init(&s, K1);
  cr_assert_eq(plush_seal_frame(&s, hb, pay, sizeof pay, &rec, &reclen), 0);
  plush_opener_init(&o, K1, 0);
  cr_assert_eq(plush_opener_feed(&o, rec, reclen, collect, &g), PLUSH_EPROTO);
  cr_assert_eq(g.n, 0);
  free(rec);
  plush_opener_free(&o);
  /* a direction that used up its record numbers seals no more */
  s.seq = UINT64_MAX;
  cr_assert_eq(plush_seal_frame(&s, hb, pay, sizeof pay, &rec, &reclen), PLUSH_EPROTO);
  cr_assert_null(rec);
}

Test(opener, loopback_addresses) {
  static const char *yes[] = {"127.0.0.1", "127.1.2.3", "127.255.255.255",
                              "::1", "::ffff:127.0.0.1", NULL, NULL, NULL,
                              NULL, NULL};
  static const char *no[] = {"10.0.0.1", "192.168.1.5", "0.0.0.0", "8.8.8.8",
                             "128.0.0.1", "::", "fe80::1", "::ffff:10.1.2.3",
                             "2001:db8::1", NULL};
  size_t i;
  for (i = 0; i < 10; i++) {
    int k;
    for (k = 0; k < 2; k++) {
      const char *a = k ? no[i] : yes[i];
      struct sockaddr_storage ss;
      if (a == NULL) continue;
      memset(&ss, 0, sizeof ss);
      if (strchr(a, ':'))
        cr_assert_eq(uv_ip6_addr(a, 1, (struct sockaddr_in6 *)&ss), 0);
      else
        cr_assert_eq(uv_ip4_addr(a, 1, (struct sockaddr_in *)&ss), 0);
      int lb = plush_addr_is_loopback((struct sockaddr *)&ss);
      cr_assert_eq(lb, k == 0, "%s: %d", a, lb);
    }
  }
}

/* The Unix socket of a controller at a TCP address: named after it,
** loopback for "any", none for an address beyond loopback. */
Test(opener, unix_socket_names) {
  static const char *cases[][2] = {
      {"127.0.0.1", "plush:127.0.0.1:4321"}, {"0.0.0.0", "plush:127.0.0.1:4321"},
      {"127.3.2.1", "plush:127.3.2.1:4321"}, {"::1", "plush:::1:4321"},
      {"::", "plush:::1:4321"},              {"10.0.0.1", NULL},
      {"fe80::1", NULL},                     {"192.168.1.5", NULL}};
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct sockaddr_storage ss;
    struct sockaddr_un un;
    unsigned len = 0;
    const char *a = cases[i][0], *want = cases[i][1];
    int r;
    memset(&ss, 0, sizeof ss);
    if (strchr(a, ':'))
      cr_assert_eq(uv_ip6_addr(a, 4321, (struct sockaddr_in6 *)&ss), 0);
    else
      cr_assert_eq(uv_ip4_addr(a, 4321, (struct sockaddr_in *)&ss), 0);
    r = plush_conn_localaddr((struct sockaddr *)&ss, &un, &len);
    if (want == NULL) {
      cr_assert_eq(r, PLUSH_EINVAL, "%s", a);
      continue;
    }
    cr_assert_eq(r, 0, "%s", a);
    cr_assert_eq(un.sun_family, AF_UNIX);
    cr_assert_eq(un.sun_path[0], '\0', "%s: not abstract", a);
    cr_assert_eq(len, offsetof(struct sockaddr_un, sun_path) + 1 + strlen(want),
                 "%s: length %u", a, len);
    cr_assert_str_eq(un.sun_path + 1, want);
  }
}

/* ------------------------------------------------------------------ */
/* Two conns and a relay.                                               */

enum { M_NONE, M_FLIP, M_REPLAY, M_DROP, M_SWAP, M_HS };

typedef struct mut {
  int kind;
  int record;     /* which sealed record (0-based) */
  size_t off;     /* M_FLIP: byte in the record; M_HS: in the handshake */
  uint8_t mask;
} mut;

typedef struct relay relay;

typedef struct lane {
  relay *r;
  uv_tcp_t *src, *dst;
  plush_buf cap;  /* every byte that came through */
  plush_buf pend; /* not forwarded yet */
  size_t hs;      /* handshake bytes yet to pass */
  size_t hsoff;
  int sealed;
  int records;
  mut m;
  char *held;
  size_t heldlen;
} lane;

struct relay {
  uv_tcp_t listener, down, up;
  uv_connect_t creq;
  int listening, down_open, up_open;
  int port, target;
  lane c2s, s2c;
};

typedef struct side {
  plush_conn *conn;
  int ready, closed, reason, echo;
  char msg[256];
  got g;
} side;

static struct {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_timer_t tick;
  int port;
  uint8_t key[PLUSH_KEY_SIZE];
  plush_conn_opts sopts;
  side srv, cli;
  relay rl;
  char logpath[64];
} T;

static void tick(uv_timer_t *t) { (void)t; }

/* Runs the loop until cond holds or secs pass; cond's final value. */
#define UNTIL(cond, secs)                                              \
  do {                                                                 \
    uint64_t dl_ = uv_now(&T.loop) + (uint64_t)((secs) * 1000);        \
    while (!(cond) && uv_now(&T.loop) < dl_) uv_run(&T.loop, UV_RUN_ONCE); \
  } while (0)

static void freebuf(uv_write_t *w, int status) {
  (void)status;
  free(w->data);
  free(w);
}

static void fwd(lane *l, const char *p, size_t n) {
  uv_write_t *w;
  uv_buf_t b;
  if (n == 0 || uv_is_closing((uv_handle_t *)l->dst)) return;
  w = malloc(sizeof *w);
  w->data = malloc(n);
  memcpy(w->data, p, n);
  b = uv_buf_init(w->data, (unsigned)n);
  if (uv_write(w, (uv_stream_t *)l->dst, &b, 1, freebuf) < 0) {
    free(w->data);
    free(w);
  }
}

static void consume(plush_buf *b, size_t n) {
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

/*
** Passes the handshake through (changing one byte of it if told), then,
** on a sealed lane, whole records: the one told is flipped, replayed,
** dropped or swapped with the next.
*/
static void pump(lane *l) {
  while (l->pend.len > 0) {
    size_t n;
    if (l->hs > 0) {
      n = l->hs < l->pend.len ? l->hs : l->pend.len;
      if (l->m.kind == M_HS && l->m.off >= l->hsoff && l->m.off < l->hsoff + n)
        l->pend.data[l->m.off - l->hsoff] ^= (char)l->m.mask;
      fwd(l, l->pend.data, n);
      consume(&l->pend, n);
      l->hs -= n;
      l->hsoff += n;
      continue;
    }
    if (!l->sealed) {
      fwd(l, l->pend.data, l->pend.len);
      l->pend.len = 0;
      return;
    }
    if (l->pend.len < 4) return;
    n = 4 + ((size_t)(unsigned char)l->pend.data[0] |
             (size_t)(unsigned char)l->pend.data[1] << 8 |
             (size_t)(unsigned char)l->pend.data[2] << 16 |
             (size_t)(unsigned char)l->pend.data[3] << 24);
    if (l->pend.len < n) return;
    if (l->records == l->m.record && l->m.kind == M_FLIP) {
      l->pend.data[l->m.off] ^= (char)l->m.mask;
      fwd(l, l->pend.data, n);
    } else if (l->records == l->m.record && l->m.kind == M_REPLAY) {
      fwd(l, l->pend.data, n);
      fwd(l, l->pend.data, n);
    } else if (l->records == l->m.record && l->m.kind == M_DROP) {
      /* gone */
    } else if (l->records == l->m.record && l->m.kind == M_SWAP) {
      l->held = malloc(n);
      memcpy(l->held, l->pend.data, n);
      l->heldlen = n;
    } else {
      fwd(l, l->pend.data, n);
      if (l->held) {
        fwd(l, l->held, l->heldlen);
        free(l->held);
        l->held = NULL;
      }
    }
    l->records++;
    consume(&l->pend, n);
  }
}

static void relayalloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)h;
  (void)hint;
  b->base = malloc(65536);
  b->len = 65536;
}

static void relayclose(relay *r) {
  if (r->down_open && !uv_is_closing((uv_handle_t *)&r->down))
    uv_close((uv_handle_t *)&r->down, NULL);
  if (r->up_open && !uv_is_closing((uv_handle_t *)&r->up))
    uv_close((uv_handle_t *)&r->up, NULL);
}

static void relayread(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  relay *r = s->data;
  lane *l = s == (uv_stream_t *)&r->down ? &r->c2s : &r->s2c;
  if (n < 0) relayclose(r);
  if (n > 0) {
    plush_buf_append(&l->cap, b->base, (size_t)n);
    plush_buf_append(&l->pend, b->base, (size_t)n);
    pump(l);
  }
  free(b->base);
}

static void upconnected(uv_connect_t *req, int status) {
  relay *r = req->data;
  if (status < 0) {
    relayclose(r);
    return;
  }
  uv_read_start((uv_stream_t *)&r->down, relayalloc, relayread);
  uv_read_start((uv_stream_t *)&r->up, relayalloc, relayread);
}

static void relayaccept(uv_stream_t *server, int status) {
  relay *r = server->data;
  struct sockaddr_in a;
  cr_assert_eq(status, 0);
  cr_assert(!r->down_open, "the relay serves one connection");
  uv_tcp_init(&T.loop, &r->down);
  uv_tcp_init(&T.loop, &r->up);
  r->down_open = r->up_open = 1;
  r->down.data = r->up.data = r;
  cr_assert_eq(uv_accept(server, (uv_stream_t *)&r->down), 0);
  uv_ip4_addr("127.0.0.1", r->target, &a);
  r->creq.data = r;
  cr_assert_eq(uv_tcp_connect(&r->creq, &r->up, (struct sockaddr *)&a, upconnected), 0);
}

/* Listens on a free loopback port and forwards to target. */
static void relay_start(relay *r, int target, int sealed, mut c2s, mut s2c) {
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  memset(r, 0, sizeof *r);
  r->target = target;
  r->c2s.r = r->s2c.r = r;
  r->c2s.src = r->s2c.dst = &r->down;
  r->c2s.dst = r->s2c.src = &r->up;
  r->c2s.hs = PLUSH_PROVE_SIZE;
  r->s2c.hs = PLUSH_HELLO_SIZE + PLUSH_PROOF_SIZE;
  r->c2s.sealed = r->s2c.sealed = sealed;
  r->c2s.m = c2s;
  r->s2c.m = s2c;
  uv_tcp_init(&T.loop, &r->listener);
  r->listener.data = r;
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_tcp_bind(&r->listener, (struct sockaddr *)&a, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)&r->listener, 4, relayaccept), 0);
  uv_tcp_getsockname(&r->listener, (struct sockaddr *)&ss, &len);
  r->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  r->listening = 1;
}

static void relay_free(relay *r) {
  if (r->listening) uv_close((uv_handle_t *)&r->listener, NULL);
  relayclose(r);
  r->listening = 0;
}

static void lanes_free(relay *r) {
  plush_buf_free(&r->c2s.cap);
  plush_buf_free(&r->c2s.pend);
  plush_buf_free(&r->s2c.cap);
  plush_buf_free(&r->s2c.pend);
  free(r->c2s.held);
  free(r->s2c.held);
}

static int captured(const plush_buf *b, const char *s) {
  return b->len && memmem(b->data, b->len, s, strlen(s)) != NULL;
}

/* ---- the two conns ---- */

static void onready(plush_conn *c) {
  side *s = plush_conn_data(c);
  s->ready = 1;
}

static void onframe(plush_conn *c, plush_frame *f) {
  side *s = plush_conn_data(c);
  if (s->echo) {
    /* back by reference (sealed conns make the copy): both ways of it */
    if (s->g.n % 2)
      cr_assert_eq(plush_conn_write_frame(c, f), 0);
    else {
      plush_hdr h = f->hdr;
      cr_assert_eq(plush_conn_write_hdr_frame(c, &h, f), 0);
    }
  }
  collect(&s->g, f);
}

static void onclose(plush_conn *c, int reason, const char *msg) {
  side *s = plush_conn_data(c);
  s->closed = 1;
  s->reason = reason;
  snprintf(s->msg, sizeof s->msg, "%s", msg);
  s->conn = NULL;
}

static const plush_conn_cbs cbs = {onready, onframe, NULL, onclose, NULL, NULL};

static void onaccept(uv_stream_t *server, int status) {
  cr_assert_eq(status, 0);
  cr_assert_null(T.srv.conn, "one connection per test");
  cr_assert_eq(plush_conn_accept(server, &T.sopts, &cbs, &T.srv, &T.srv.conn), 0);
}

static void setup(void) {
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int len = sizeof ss, fd;
  signal(SIGPIPE, SIG_IGN);
  memset(&T, 0, sizeof T);
  cr_assert_eq(plush_auth_init(), 0);
  plush_key_generate(T.key, NULL);
  snprintf(T.logpath, sizeof T.logpath, "/tmp/plush-secure-XXXXXX");
  cr_assert((fd = mkstemp(T.logpath)) >= 0);
  close(fd);
  cr_assert_eq(plush_log_open(T.logpath, "test_secure"), 0);
  uv_loop_init(&T.loop);
  uv_timer_init(&T.loop, &T.tick);
  uv_timer_start(&T.tick, tick, 10, 10);
  uv_tcp_init(&T.loop, &T.listener);
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_tcp_bind(&T.listener, (struct sockaddr *)&a, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)&T.listener, 8, onaccept), 0);
  uv_tcp_getsockname(&T.listener, (struct sockaddr *)&ss, &len);
  T.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  T.sopts.key = T.key;
  T.srv.echo = 1;
}

static void teardown(void) {
  if (T.cli.conn) plush_conn_close(T.cli.conn, 0, NULL);
  if (T.srv.conn) plush_conn_close(T.srv.conn, 0, NULL);
  relay_free(&T.rl);
  uv_close((uv_handle_t *)&T.listener, NULL);
  uv_close((uv_handle_t *)&T.tick, NULL);
  uv_run(&T.loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&T.loop), 0, "every handle closed");
  lanes_free(&T.rl);
  got_free(&T.srv.g);
  got_free(&T.cli.g);
  unlink(T.logpath);
}

TestSuite(secure, .init = setup, .fini = teardown, .timeout = 120);

/* The client dials port (the relay's, or the server's). */
static void dial(int port, int encrypt) {
  plush_conn_opts o;
  memset(&o, 0, sizeof o);
  o.key = T.key;
  o.role = PLUSH_ROLE_ENGINE;
  o.encrypt = encrypt;
  cr_assert_eq(plush_conn_connect(&T.loop, "127.0.0.1", port, &o, &cbs, &T.cli,
                                  &T.cli.conn), 0);
  UNTIL((T.cli.ready && T.srv.ready) || T.cli.closed || T.srv.closed, 10);
}

static const size_t sizes[] = {0, 1, 100, 24, 70000, 3u << 20, 5, 40};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* Frame i, written the i % 4th way: copy, owned, frame, header+frame. */
static int send_frame(plush_conn *c, size_t i, size_t len) {
  plush_hdr h = hdr_of(i, len);
  char *p = malloc(len ? len : 1);
  plush_frame *f;
  int r;
  fill(p, len, i);
  switch (i % 4) {
    case 0:
      r = plush_conn_write(c, &h, p, len);
      free(p);
      return r;
    case 1: return plush_conn_write_owned(c, &h, p, len);
    case 2:
      f = plush_frame_new(&h);
      memcpy(plush_frame_payload(f), p, len);
      free(p);
      r = plush_conn_write_frame(c, f);
      plush_frame_unref(f);
      return r;
    default: {
      plush_hdr other = hdr_of(i + 50, len); /* its header is replaced */
      f = plush_frame_new(&other);
      memcpy(plush_frame_payload(f), p, len);
      free(p);
      r = plush_conn_write_hdr_frame(c, &h, f);
      plush_frame_unref(f);
      return r;
    }
  }
}

/* Sends every size, waits for the echoes, checks both ways. */
static void exchange(void) {
  size_t i;
  for (i = 0; i < NSIZES; i++) cr_assert_eq(send_frame(T.cli.conn, i, sizes[i]), 0);
  UNTIL(T.cli.g.n == NSIZES || T.cli.closed || T.srv.closed, 20);
  cr_assert_eq(T.srv.g.n, NSIZES, "server got %zu frames (%s)", T.srv.g.n, T.srv.msg);
  cr_assert_eq(T.cli.g.n, NSIZES, "client got %zu echoes (%s)", T.cli.g.n, T.cli.msg);
  for (i = 0; i < NSIZES; i++) {
    const char *why = differs(T.srv.g.f[i], i, sizes[i]);
    cr_assert_null(why, "at the server: %s", why);
    why = differs(T.cli.g.f[i], i, sizes[i]);
    cr_assert_null(why, "echoed: %s", why);
  }
}

static int logged(const char *what) {
  char buf[8192];
  FILE *f = fopen(T.logpath, "r");
  size_t n;
  if (f == NULL) return 0;
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  return strstr(buf, what) != NULL;
}

Test(secure, forced_encryption_round_trip_hides_the_payload) {
  static const mut none = {M_NONE, 0, 0, 0};
  relay_start(&T.rl, T.port, 1, none, none);
  dial(T.rl.port, 1);
  cr_assert(T.cli.ready && T.srv.ready, "handshake: %s / %s", T.cli.msg, T.srv.msg);
  cr_assert(plush_conn_secure(T.cli.conn));
  cr_assert(plush_conn_secure(T.srv.conn));
  exchange();
  /* what crossed the wire: the frames, sealed, and not one marker */
  cr_assert_eq(T.rl.c2s.records, (int)NSIZES);
  cr_assert_eq(T.rl.s2c.records, (int)NSIZES);
  cr_assert(T.rl.c2s.cap.len > (3u << 20));
  cr_assert(!captured(&T.rl.c2s.cap, MARKER), "marker seen client -> server");
  cr_assert(!captured(&T.rl.s2c.cap, MARKER), "marker seen server -> client");
  cr_assert(!captured(&T.rl.c2s.cap, "SECRET"));
}

/*
** The fast path: loopback without the flag stays plain, the marker is
** there for anyone on the wire to read -- which on loopback is nobody.
*/
Test(secure, loopback_without_the_flag_stays_plain) {
  static const mut none = {M_NONE, 0, 0, 0};
  relay_start(&T.rl, T.port, 0, none, none);
  dial(T.rl.port, 0);
  cr_assert(T.cli.ready && T.srv.ready);
  cr_assert(!plush_conn_secure(T.cli.conn));
  cr_assert(!plush_conn_secure(T.srv.conn));
  exchange();
  cr_assert(captured(&T.rl.c2s.cap, MARKER));
  cr_assert(captured(&T.rl.s2c.cap, MARKER));
}

/* Either side's wish is enough: here the server's alone. */
Test(secure, server_wish_alone_seals_both_ways) {
  static const mut none = {M_NONE, 0, 0, 0};
  T.sopts.encrypt = 1;
  relay_start(&T.rl, T.port, 1, none, none);
  dial(T.rl.port, 0);
  cr_assert(T.cli.ready && T.srv.ready, "%s / %s", T.cli.msg, T.srv.msg);
  cr_assert(plush_conn_secure(T.cli.conn) && plush_conn_secure(T.srv.conn));
  exchange();
  cr_assert(!captured(&T.rl.c2s.cap, MARKER));
  cr_assert(!captured(&T.rl.s2c.cap, MARKER));
}

/*
** Sends frames 0..5 of 300 bytes; the relay mangles one client record.
** The server must get exactly `want` frames, then close with a reason
** naming the failure, logged.
*/
static void tampered(mut m, size_t want) {
  static const mut none = {M_NONE, 0, 0, 0};
  size_t i;
  relay_start(&T.rl, T.port, 1, m, none);
  T.srv.echo = 0;
  dial(T.rl.port, 1);
  cr_assert(T.cli.ready && T.srv.ready);
  for (i = 0; i < 6; i++) cr_assert_eq(send_frame(T.cli.conn, i, 301), 0);
  UNTIL(T.srv.closed && T.cli.closed, 10);
  cr_assert(T.srv.closed, "the server took the mangled stream");
  cr_assert_eq(T.srv.g.n, want, "delivered %zu", T.srv.g.n);
  for (i = 0; i < want; i++) cr_assert_null(differs(T.srv.g.f[i], i, 301));
  cr_assert_eq(T.srv.reason, PLUSH_EAUTH, "reason %d: %s", T.srv.reason, T.srv.msg);
  cr_assert(strstr(T.srv.msg, "failed authentication") != NULL, "%s", T.srv.msg);
  cr_assert(logged("failed authentication"), "logged");
  cr_assert(T.cli.closed, "the client hears of it");
}

Test(secure, flipped_bit_in_the_payload_closes_the_receiver) {
  mut m = {M_FLIP, 2, 4 + 24 + 30, 0x10};
  tampered(m, 2);
}

Test(secure, flipped_bit_in_the_sealed_header_closes_the_receiver) {
  mut m = {M_FLIP, 0, 4 + 4, 0x01}; /* the frame type, under the cipher */
  tampered(m, 0);
}

Test(secure, flipped_bit_in_the_tag_closes_the_receiver) {
  mut m = {M_FLIP, 3, 4 + 24 + 301 + 15, 0x80};
  tampered(m, 3);
}

Test(secure, shortened_length_closes_the_receiver) {
  mut m = {M_FLIP, 1, 0, 0x01}; /* 341 becomes 340 */
  tampered(m, 1);
}

Test(secure, replayed_record_refused) {
  mut m = {M_REPLAY, 1, 0, 0};
  tampered(m, 2);
}

Test(secure, reordered_records_refused) {
  mut m = {M_SWAP, 1, 0, 0};
  tampered(m, 1);
}

Test(secure, dropped_record_refused) {
  mut m = {M_DROP, 2, 0, 0};
  tampered(m, 2);
}

/* The same on the way back: the client is the one that refuses. */
Test(secure, tampered_reply_closes_the_client) {
  static const mut none = {M_NONE, 0, 0, 0};
  mut m = {M_FLIP, 1, 4 + 24 + 7, 0x04};
  size_t i;
  relay_start(&T.rl, T.port, 1, none, m);
  dial(T.rl.port, 1);
  cr_assert(T.cli.ready && T.srv.ready);
  for (i = 0; i < 4; i++) cr_assert_eq(send_frame(T.cli.conn, i, 100), 0);
  UNTIL(T.cli.closed, 10);
  cr_assert(T.cli.closed);
  cr_assert_eq(T.cli.g.n, 1);
  cr_assert_eq(T.cli.reason, PLUSH_EAUTH);
  cr_assert(strstr(T.cli.msg, "sealed frame 1 failed authentication") != NULL, "%s",
            T.cli.msg);
}

/*
** A man in the middle who clears the server's wish in HELLO, or the
** client's decision in PROVE, breaks the MACs: nobody gets to speak plain.
*/
static void stripped(mut c2s, mut s2c, int senc, int cenc) {
  T.sopts.encrypt = senc;
  relay_start(&T.rl, T.port, 0, c2s, s2c);
  dial(T.rl.port, cenc);
  UNTIL(T.srv.closed && T.cli.closed, 10);
  cr_assert(!T.srv.ready && T.srv.closed, "server: %s", T.srv.msg);
  cr_assert(!T.cli.ready && T.cli.closed, "client: %s", T.cli.msg);
  cr_assert_eq(T.srv.reason, PLUSH_EAUTH);
  cr_assert(strstr(T.srv.msg, "authentication failed") != NULL, "%s", T.srv.msg);
}

Test(secure, stripped_hello_flag_fails_the_handshake) {
  static const mut none = {M_NONE, 0, 0, 0};
  mut m = {M_HS, 0, 5, PLUSH_AUTH_ENCRYPT};
  stripped(none, m, 1, 0);
}

Test(secure, stripped_prove_mode_fails_the_handshake) {
  static const mut none = {M_NONE, 0, 0, 0};
  mut m = {M_HS, 0, 6, 1};
  stripped(m, none, 0, 1);
}

/*
** A peer that holds the key but advertises no encryption when the server
** requires it: a blocking client in a thread speaks the handshake by hand.
*/
typedef struct fake {
  int port;
  uint8_t key[PLUSH_KEY_SIZE];
  int eof;
} fake;

static void *fakeclient(void *arg) {
  fake *fk = arg;
  struct sockaddr_in a;
  uint8_t hello[PLUSH_HELLO_SIZE], prove[PLUSH_PROVE_SIZE], msg[80], tail[3], buf[64];
  size_t got = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)fk->port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) return NULL;
  while (got < sizeof hello) {
    ssize_t n = read(fd, hello + got, sizeof hello - got);
    if (n <= 0) break;
    got += (size_t)n;
  }
  if (got == sizeof hello) {
    memcpy(prove, "PLSH", 4);
    prove[4] = PLUSH_PROTO_VERSION;
    prove[5] = PLUSH_ROLE_CLIENT;
    prove[6] = 0; /* "no encryption" */
    randombytes_buf(prove + 7, PLUSH_NONCE_SIZE);
    memcpy(msg, "plush-client", 12);
    memcpy(msg + 12, hello + 6, PLUSH_NONCE_SIZE);
    memcpy(msg + 12 + 32, prove + 7, PLUSH_NONCE_SIZE);
    tail[0] = PLUSH_ROLE_CLIENT;
    tail[1] = hello[5];
    tail[2] = 0;
    memcpy(msg + 76, tail, 3);
    crypto_auth_hmacsha256(prove + 39, msg, 79, fk->key);
    if (write(fd, prove, sizeof prove) == (ssize_t)sizeof prove)
      fk->eof = read(fd, buf, sizeof buf) <= 0; /* no PROOF: closed */
  }
  close(fd);
  return NULL;
}

Test(secure, peer_declining_required_encryption_fails_the_handshake) {
  pthread_t th;
  fake fk;
  T.sopts.encrypt = 1;
  memset(&fk, 0, sizeof fk);
  fk.port = T.port;
  memcpy(fk.key, T.key, sizeof fk.key);
  pthread_create(&th, NULL, fakeclient, &fk);
  UNTIL(T.srv.closed, 10);
  pthread_join(th, NULL);
  cr_assert(T.srv.closed && !T.srv.ready);
  cr_assert_eq(T.srv.reason, PLUSH_EAUTH);
  cr_assert(strstr(T.srv.msg, "refused the encryption") != NULL, "%s", T.srv.msg);
  cr_assert(fk.eof, "the peer got no PROOF");
}

/* ------------------------------------------------------------------ */
/* A whole cluster with encryption forced: controller, engine, client.  */

static struct {
  plush_ctl *ctl;
  plush_engine *eng;
  int engine_id, engine_up, ctl_done, eng_done;
} Cl;

static void onengine(plush_ctl *c, void *ud, unsigned id, long pid) {
  (void)c;
  (void)ud;
  (void)pid;
  Cl.engine_id = (int)id;
  Cl.engine_up = 1;
}

static void engexit(plush_engine *e, int status, const char *reason, void *d) {
  (void)e;
  (void)status;
  (void)reason;
  (void)d;
  Cl.eng_done = 1;
}

static void ctldone(void *ud) {
  (void)ud;
  Cl.ctl_done = 1;
}

Test(secure, cluster_with_encrypt_forced) {
  plush_ctl_opts co;
  plush_engine_opts eo;
  plush_conn_opts o;
  plush_buf b = PLUSH_BUF_INIT;
  plush_hdr h;
  lua_State *L = luaL_newstate();
  char err[200];
  uint64_t cid;
  size_t i;
  memset(&Cl, 0, sizeof Cl);
  memset(&co, 0, sizeof co);
  memcpy(co.key, T.key, sizeof co.key);
  co.encrypt = 1;
  co.on_engine = onengine;
  cr_assert_eq(plush_ctl_start(&T.loop, &co, &Cl.ctl), 0);
  memset(&eo, 0, sizeof eo);
  eo.host = "127.0.0.1";
  eo.port = plush_ctl_port(Cl.ctl);
  eo.key = T.key;
  eo.id = -1;
  eo.on_exit = engexit;
  cr_assert_eq(plush_engine_start(&T.loop, &eo, &Cl.eng), 0);
  UNTIL(Cl.engine_up, 20);
  cr_assert(Cl.engine_up, "the engine registered over a sealed connection");
  /* a client that asks for nothing: the controller's wish seals it */
  memset(&o, 0, sizeof o);
  o.key = T.key;
  o.role = PLUSH_ROLE_CLIENT;
  T.srv.echo = 0;
  cr_assert_eq(plush_conn_connect(&T.loop, "127.0.0.1", eo.port, &o, &cbs, &T.srv,
                                  &T.srv.conn), 0);
  UNTIL(T.srv.g.n >= 1 || T.srv.closed, 10); /* WELCOME */
  cr_assert_eq(T.srv.g.n, 1, "%s", T.srv.msg);
  cr_assert(plush_conn_secure(T.srv.conn));
  luaL_openlibs(L);
  {
    plush_frame *w = T.srv.g.f[0];
    cr_assert_eq(w->hdr.type, PLUSH_T_WELCOME);
    cr_assert_eq(plush_decode(L, plush_frame_payload(w), w->hdr.len, NULL, err,
                              sizeof err), 0, "%s", err);
    lua_getfield(L, -1, "id");
    cid = (uint64_t)lua_tointeger(L, -1);
    lua_settop(L, 0);
  }
  cr_assert_eq(luaL_dostring(L, "return {op = 'exec', code = "
                                "\"return ('" MARKER "'):lower(), engine.id\"}"), 0);
  cr_assert_eq(plush_encode(L, -1, &b, "msg", err, sizeof err), 0, "%s", err);
  memset(&h, 0, sizeof h);
  h.type = PLUSH_T_REQ;
  h.engine = (uint32_t)Cl.engine_id;
  h.id = cid << 32 | 1;
  cr_assert_eq(plush_conn_write(T.srv.conn, &h, b.data, b.len), 0);
  for (i = 0; i < 200 && T.srv.g.n < 2 && !T.srv.closed; i++)
    UNTIL(T.srv.g.n >= 2 || T.srv.closed, 0.1);
  cr_assert_eq(T.srv.g.n, 2, "a reply: %s", T.srv.msg);
  {
    plush_frame *f = T.srv.g.f[1];
    cr_assert_eq(f->hdr.type, PLUSH_T_REPLY);
    cr_assert_eq(f->hdr.status, PLUSH_S_OK);
    cr_assert_eq(plush_decode(L, plush_frame_payload(f), f->hdr.len, NULL, err,
                              sizeof err), 0, "%s", err);
    lua_getfield(L, -1, "r");
    lua_rawgeti(L, -1, 1);
    cr_assert_str_eq(lua_tostring(L, -1), "plush-secret-marker-7f3a");
  }
  plush_buf_free(&b);
  lua_close(L);
  plush_conn_close(T.srv.conn, 0, NULL);
  plush_engine_stop(Cl.eng);
  UNTIL(Cl.eng_done && T.srv.closed, 10);
  plush_ctl_stop(Cl.ctl, ctldone, NULL);
  UNTIL(Cl.ctl_done, 10);
  cr_assert(Cl.ctl_done && Cl.eng_done);
}
