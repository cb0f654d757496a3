/*
** test_frame.c — header packing, shared frames, the incremental parser.
*/
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>

#include "frame.h"
#include "mem.h"
#include "plush.h"

/* ------------------------------------------------------------------ */
/* A stream of frames of assorted sizes and what the parser delivered. */

#define MAXF 64

typedef struct stream {
  size_t n;               /* frames */
  plush_hdr hdr[MAXF];
  size_t off[MAXF];       /* where frame i starts in data */
  unsigned char *data;
  size_t len;
} stream;

typedef struct got {
  size_t n;               /* frames delivered (may exceed MAXF) */
  plush_frame *f[MAXF];
} got;

static const uint32_t sizes[] = {0, 1, 7, 23, 24, 25, 0, 300, 100 * 1024, 0,
                                 4096, 2};

/*
** Builds frames with distinct headers (every field used) and payload bytes
** that differ from frame to frame, so a misplaced byte cannot pass.
*/
static void build(stream *s, const uint32_t *lens, size_t n) {
  size_t i, j, total = 0;
  for (i = 0; i < n; i++) total += PLUSH_HDR_SIZE + lens[i];
  s->data = malloc(total ? total : 1);
  cr_assert_not_null(s->data);
  s->len = total;
  s->n = n;
  total = 0;
  for (i = 0; i < n; i++) {
    plush_hdr *h = &s->hdr[i];
    h->len = lens[i];
    h->type = (uint8_t)(1 + i % (PLUSH_T__MAX - 1));
    h->flags = (uint8_t)(i & 1);
    h->status = (uint16_t)(0x100 * i + 3);
    h->engine = i == 3 ? PLUSH_ANY : (uint32_t)(1000 + i);
    h->id = ((uint64_t)(7 + i) << 32) | (uint64_t)(0x80000000u + i);
    h->aux = (uint32_t)(0xdead0000u + i);
    s->off[i] = total;
    plush_hdr_pack(h, s->data + total);
    for (j = 0; j < lens[i]; j++)
      s->data[total + PLUSH_HDR_SIZE + j] = (unsigned char)(j * 131 + i * 17 + (j >> 8));
    total += PLUSH_HDR_SIZE + lens[i];
  }
}

static void build_default(stream *s) {
  build(s, sizes, sizeof sizes / sizeof sizes[0]);
}

static void stream_free(stream *s) {
  free(s->data);
  s->data = NULL;
}

static void collect(void *ud, plush_frame *f) {
  got *g = ud;
  if (g->n < MAXF)
    g->f[g->n] = f;
  else
    plush_frame_unref(f);
  g->n++;
}

static void got_free(got *g) {
  size_t i;
  for (i = 0; i < g->n && i < MAXF; i++) plush_frame_unref(g->f[i]);
  g->n = 0;
}

static int hdr_eq(const plush_hdr *a, const plush_hdr *b) {
  return a->len == b->len && a->type == b->type && a->flags == b->flags &&
         a->status == b->status && a->engine == b->engine && a->id == b->id &&
         a->aux == b->aux;
}

/*
** NULL when g holds exactly the frames of s in order, else what differs.
*/
static const char *differs(const stream *s, const got *g) {
  static char why[128];
  size_t i;
  if (g->n != s->n) {
    snprintf(why, sizeof why, "%zu frames delivered, %zu sent", g->n, s->n);
    return why;
  }
  for (i = 0; i < s->n; i++) {
    const plush_frame *f = g->f[i];
    if (!hdr_eq(&f->hdr, &s->hdr[i])) {
      snprintf(why, sizeof why, "frame %zu: header fields differ", i);
      return why;
    }
    if (atomic_load(&f->refs) != 1) {
      snprintf(why, sizeof why, "frame %zu: refs %d", i, atomic_load(&f->refs));
      return why;
    }
    if (memcmp(f->raw, s->data + s->off[i], PLUSH_HDR_SIZE + s->hdr[i].len)) {
      snprintf(why, sizeof why, "frame %zu: raw bytes differ", i);
      return why;
    }
  }
  return NULL;
}

/* ------------------------------------------------------------------ */

Test(hdr, pack_is_little_endian_in_table_order) {
  unsigned char out[PLUSH_HDR_SIZE], want[PLUSH_HDR_SIZE];
  plush_hdr h = {0x04030201u, 5, 6, 0x0807, 0x0c0b0a09u,
                 0x14131211100f0e0dull, 0x18171615u};
  plush_hdr back;
  int i;
  for (i = 0; i < PLUSH_HDR_SIZE; i++) want[i] = (unsigned char)(i + 1);
  plush_hdr_pack(&h, out);
  cr_assert_arr_eq(out, want, PLUSH_HDR_SIZE);
  plush_hdr_unpack(want, &back);
  cr_assert(hdr_eq(&h, &back));
}

Test(hdr, round_trip_extremes) {
  plush_hdr hs[] = {
      {0, 0, 0, 0, 0, 0, 0},
      {UINT32_MAX, 255, 255, UINT16_MAX, UINT32_MAX, UINT64_MAX, UINT32_MAX},
      {0x80000000u, 128, 128, 0x8000, 0x80000000u, 0x8000000000000000ull,
       0x80000000u}};
  size_t i;
  for (i = 0; i < sizeof hs / sizeof hs[0]; i++) {
    unsigned char raw[PLUSH_HDR_SIZE];
    plush_hdr back;
    memset(&back, 0xa5, sizeof back);
    plush_hdr_pack(&hs[i], raw);
    plush_hdr_unpack(raw, &back);
    cr_assert(hdr_eq(&hs[i], &back), "case %zu", i);
  }
}

Test(frame, new_packs_header_and_refcounts) {
  plush_hdr h = {10, PLUSH_T_REQ, PLUSH_F_BALANCED, 0, PLUSH_ANY, 42, 7};
  unsigned char raw[PLUSH_HDR_SIZE];
  plush_frame *f = plush_frame_new(&h);
  cr_assert_not_null(f);
  cr_assert_eq(atomic_load(&f->refs), 1);
  cr_assert(hdr_eq(&f->hdr, &h));
  plush_hdr_pack(&h, raw);
  cr_assert_arr_eq(f->raw, raw, PLUSH_HDR_SIZE);
  cr_assert_eq(plush_frame_payload(f), (char *)f->raw + PLUSH_HDR_SIZE);
  memset(plush_frame_payload(f), 'x', 10); /* the payload is all there */
  cr_assert_eq(plush_frame_ref(f), f);
  cr_assert_eq(atomic_load(&f->refs), 2);
  plush_frame_unref(f);
  cr_assert_eq(atomic_load(&f->refs), 1);
  f->hdr.engine = 3;
  f->hdr.status = PLUSH_S_ERROR;
  plush_frame_repack(f);
  h.engine = 3;
  h.status = PLUSH_S_ERROR;
  plush_hdr_pack(&h, raw);
  cr_assert_arr_eq(f->raw, raw, PLUSH_HDR_SIZE);
  cr_assert_eq(plush_frame_payload(f)[9], 'x');
  plush_frame_unref(f);
  cr_assert_null(plush_frame_ref(NULL));
  plush_frame_unref(NULL);
}

Test(frame, zero_length_frame) {
  plush_hdr h = {0, PLUSH_T_PING, 0, 0, 1, 0, 9};
  plush_frame *f = plush_frame_new(&h);
  cr_assert_not_null(f);
  cr_assert_eq(f->hdr.len, 0);
  plush_frame_unref(f);
}

/*
** Received frames of up to 512 bytes come in three sizes (128, 256, 512)
** and a freed one is reused by the thread's next frame of its size
** (frame.c's pool): the whole payload is there (AddressSanitizer would
** see a write past it), a reused block is the same address, and a block
** of another size does not come back for it.
*/
static plush_frame *lazy(uint32_t len, uint64_t id) {
  plush_hdr h = {len, PLUSH_T_REPLY, 0, 0, 1, id, 0};
  plush_frame *f = plush_frame_new_lazy(&h);
  cr_assert_not_null(f);
  cr_assert_eq(f->hdr.len, len);
  cr_assert_eq(f->hdr.id, id);
  cr_assert_eq(atomic_load(&f->refs), 1);
  memset(plush_frame_payload(f), 'p', len);
  return f;
}

Test(frame, small_received_frames_reuse_their_blocks) {
  static const uint32_t lens[] = {0, 1, 40, 128 - 64, 200, 300, 511 - 64, 600, 5000};
  size_t base = plush_frame_size(0);
  for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
    size_t n = plush_frame_size(lens[i]);
    size_t want = n <= 128 ? 128 : n <= 256 ? 256 : n <= 512 ? 512 : n;
    plush_frame *f = lazy(lens[i], i), *g;
    void *at = f;
    cr_assert_eq(f->size, want, "payload %u: size %zu, not %zu", lens[i], f->size, want);
    plush_frame_unref(f);
    if (want > 512) continue;
    g = lazy(lens[i], 100 + i); /* the same size again: the kept block */
    cr_assert_eq((void *)g, at, "payload %u: not reused", lens[i]);
    plush_frame_unref(g);
  }
  /* a 512-byte block is not handed out for a 128-byte frame */
  {
    plush_frame *big = lazy((uint32_t)(512 - base), 7), *small;
    void *at = big;
    plush_frame_unref(big);
    small = lazy(1, 8);
    cr_assert_neq((void *)small, at);
    cr_assert_eq(small->size, 128);
    plush_frame_unref(small);
    big = lazy((uint32_t)(512 - base), 9);
    cr_assert_eq((void *)big, at);
    plush_frame_unref(big);
  }
}

/* Frames kept by a thread that exits are freed with it: under LeakSanitizer
** (build-asan) a leak would fail the run. */
static void *keepsome(void *arg) {
  plush_frame *f[300];
  (void)arg;
  for (int i = 0; i < 300; i++) f[i] = lazy((uint32_t)(i % 3) * 150, (uint64_t)i);
  for (int i = 0; i < 300; i++) plush_frame_unref(f[i]);
  return NULL;
}

Test(frame, a_threads_kept_frames_go_with_it) {
  pthread_t t;
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(pthread_create(&t, NULL, keepsome, NULL), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
  }
}

#define NTHREADS 4
#define NROUNDS 200000

static void *churn(void *arg) {
  plush_frame *f = arg;
  int i;
  for (i = 0; i < NROUNDS; i++) {
    plush_frame_ref(f);
    plush_frame_ref(f);
    plush_frame_unref(f);
    plush_frame_unref(f);
  }
  plush_frame_unref(f); /* the reference the thread was given */
  return NULL;
}

/*
** Frames cross threads in an engine: concurrent ref/unref must not lose
** counts (the frame would be freed early or leak).
*/
Test(frame, refcount_is_atomic_across_threads) {
  plush_hdr h = {16, PLUSH_T_OUTPUT, 0, 0, 1, 1, PLUSH_STREAM_STDOUT};
  plush_frame *f = plush_frame_new(&h);
  pthread_t t[NTHREADS];
  int i;
  cr_assert_not_null(f);
  for (i = 0; i < NTHREADS; i++) {
    plush_frame_ref(f);
    cr_assert_eq(pthread_create(&t[i], NULL, churn, f), 0);
  }
  for (i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
  cr_assert_eq(atomic_load(&f->refs), 1);
  plush_frame_unref(f);
}

/* ------------------------------------------------------------------ */

Test(parser, whole_stream_at_once) {
  stream s;
  got g = {0};
  plush_parser p;
  build_default(&s);
  plush_parser_init(&p, PLUSH_DEFAULT_MAX_FRAME);
  cr_assert_eq(plush_parser_feed(&p, (const char *)s.data, s.len, collect, &g), 0);
  cr_assert_null(differs(&s, &g), "%s", differs(&s, &g));
  cr_assert_null(p.cur);
  cr_assert_eq(p.hdrlen, 0);
  got_free(&g);
  plush_parser_free(&p);
  stream_free(&s);
}

/*
** The stream in two pieces, split at every byte boundary from 0 to its
** full length: every header and payload split point, including inside
** the 100 KB payload and around the zero-length frames.
*/
Test(parser, split_in_two_at_every_byte, .timeout = 600) {
  stream s;
  size_t k;
  build_default(&s);
  for (k = 0; k <= s.len; k++) {
    got g = {0};
    plush_parser p;
    const char *why;
    int a, b;
    plush_parser_init(&p, PLUSH_DEFAULT_MAX_FRAME);
    a = plush_parser_feed(&p, (const char *)s.data, k, collect, &g);
    b = plush_parser_feed(&p, (const char *)s.data + k, s.len - k, collect, &g);
    why = differs(&s, &g);
    if (a || b || why || p.cur || p.hdrlen)
      cr_assert_fail("split at %zu: rc %d/%d, %s", k, a, b, why ? why : "state left");
    got_free(&g);
    plush_parser_free(&p);
  }
  stream_free(&s);
}

Test(parser, byte_by_byte) {
  stream s;
  got g = {0};
  plush_parser p;
  size_t k;
  build_default(&s);
  plush_parser_init(&p, PLUSH_DEFAULT_MAX_FRAME);
  for (k = 0; k < s.len; k++) {
    size_t before = g.n;
    int rc = plush_parser_feed(&p, (const char *)s.data + k, 1, collect, &g);
    if (rc) cr_assert_fail("byte %zu: rc %d", k, rc);
    /* a frame completes exactly on its last byte, never earlier */
    if (g.n != before) {
      size_t i = g.n - 1;
      if (g.n != before + 1 || s.off[i] + PLUSH_HDR_SIZE + s.hdr[i].len != k + 1)
        cr_assert_fail("frame %zu completed at byte %zu", i, k);
    }
  }
  cr_assert_null(differs(&s, &g), "%s", differs(&s, &g));
  got_free(&g);
  plush_parser_free(&p);
  stream_free(&s);
}

/*
** Random chunk sizes, many rounds: splits into many pieces at once.
*/
Test(parser, random_chunks) {
  stream s;
  unsigned seed = 12345;
  int round;
  build_default(&s);
  for (round = 0; round < 200; round++) {
    got g = {0};
    plush_parser p;
    size_t pos = 0;
    const char *why;
    plush_parser_init(&p, PLUSH_DEFAULT_MAX_FRAME);
    while (pos < s.len) {
      size_t n;
      seed = seed * 1103515245u + 12345u;
      n = (seed >> 8) % (round % 2 ? 64 : 40000) + 1;
      if (n > s.len - pos) n = s.len - pos;
      cr_assert_eq(plush_parser_feed(&p, (const char *)s.data + pos, n, collect, &g), 0);
      pos += n;
    }
    why = differs(&s, &g);
    cr_assert_null(why, "round %d: %s", round, why);
    got_free(&g);
    plush_parser_free(&p);
  }
  stream_free(&s);
}

Test(parser, zero_length_frame_completes_after_header) {
  plush_hdr h = {0, PLUSH_T_PING, 0, 0, 2, 0, 77};
  unsigned char raw[PLUSH_HDR_SIZE];
  got g = {0};
  plush_parser p;
  size_t room = 99;
  plush_hdr_pack(&h, raw);
  plush_parser_init(&p, PLUSH_DEFAULT_MAX_FRAME);
  cr_assert_eq(plush_parser_feed(&p, (const char *)raw, PLUSH_HDR_SIZE - 1, collect, &g), 0);
  cr_assert_eq(g.n, 0);
  cr_assert_eq(plush_parser_feed(&p, (const char *)raw + PLUSH_HDR_SIZE - 1, 1, collect, &g), 0);
  cr_assert_eq(g.n, 1);
  cr_assert(hdr_eq(&g.f[0]->hdr, &h));
  cr_assert_null(plush_parser_direct(&p, &room));
  cr_assert_eq(room, 0);
  got_free(&g);
  plush_parser_free(&p);
}

Test(parser, empty_feed_is_harmless) {
  got g = {0};
  plush_parser p;
  plush_parser_init(&p, PLUSH_DEFAULT_MAX_FRAME);
  cr_assert_eq(plush_parser_feed(&p, NULL, 0, collect, &g), 0);
  cr_assert_eq(plush_parser_advance(&p, 0, collect, &g), 0);
  cr_assert_eq(g.n, 0);
  plush_parser_free(&p);
}

/* ------------------------------------------------------------------ */
/* The zero-copy path a libuv alloc_cb/read_cb pair would take.        */

/*
** Reads s as a socket that returns at most chunk bytes per read: into the
** frame when the parser offers room, else into a 64 KB scratch buffer
** that is fed. Returns the payload bytes that went in directly.
*/
static size_t read_like_libuv(const stream *s, size_t chunk, got *g) {
  static char scratch[65536];
  plush_parser p;
  size_t pos = 0, direct = 0;
  plush_parser_init(&p, PLUSH_DEFAULT_MAX_FRAME);
  while (pos < s->len) {
    size_t room, n;
    char *dst = plush_parser_direct(&p, &room);
    if (dst == NULL) {
      dst = scratch;
      room = sizeof scratch;
    }
    n = chunk < room ? chunk : room;
    if (n > s->len - pos) n = s->len - pos;
    memcpy(dst, s->data + pos, n);
    pos += n;
    if (dst == scratch) {
      cr_assert_eq(plush_parser_feed(&p, scratch, n, collect, g), 0);
    } else {
      cr_assert_eq(plush_parser_advance(&p, n, collect, g), 0);
      direct += n;
    }
  }
  cr_assert_null(p.cur);
  plush_parser_free(&p);
  return direct;
}

Test(parser, direct_and_advance) {
  static const size_t chunks[] = {1, 5, 23, 24, 25, 1000, 4096, 65536, 1 << 20};
  stream s;
  size_t i;
  build_default(&s);
  for (i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
    got g = {0};
    size_t direct = read_like_libuv(&s, chunks[i], &g);
    const char *why = differs(&s, &g);
    cr_assert_null(why, "chunk %zu: %s", chunks[i], why);
    /* most of the 100 KB payload went straight into its frame */
    cr_assert_gt(direct, 100 * 1024 - 65536, "chunk %zu: %zu direct", chunks[i], direct);
    got_free(&g);
  }
  stream_free(&s);
}

Test(parser, direct_room_and_bounds) {
  plush_hdr h = {1000, PLUSH_T_REPLY, 0, 0, 4, 99, 0};
  unsigned char raw[PLUSH_HDR_SIZE];
  got g = {0};
  plush_parser p;
  size_t room = 123;
  char *d, *d2;
  plush_hdr_pack(&h, raw);
  plush_parser_init(&p, PLUSH_DEFAULT_MAX_FRAME);
  cr_assert_null(plush_parser_direct(&p, &room)); /* idle */
  cr_assert_eq(room, 0);
  cr_assert_eq(plush_parser_advance(&p, 1, collect, &g), PLUSH_EINVAL);
  cr_assert_eq(plush_parser_feed(&p, (const char *)raw, 10, collect, &g), 0);
  cr_assert_null(plush_parser_direct(&p, &room)); /* inside a header */
  cr_assert_eq(plush_parser_feed(&p, (const char *)raw + 10, PLUSH_HDR_SIZE - 10, collect, &g), 0);
  d = plush_parser_direct(&p, &room);
  cr_assert_not_null(d);
  cr_assert_eq(room, 1000);
  cr_assert_eq(d, plush_frame_payload(p.cur));
  memset(d, 'a', 400);
  cr_assert_eq(plush_parser_advance(&p, 400, collect, &g), 0);
  d2 = plush_parser_direct(&p, &room);
  cr_assert_eq(d2, d + 400);
  cr_assert_eq(room, 600);
  /* more than the room is a caller bug, refused without harm */
  cr_assert_eq(plush_parser_advance(&p, 601, collect, &g), PLUSH_EINVAL);
  cr_assert_str_eq(p.err, "advance of 601 bytes over the 600 bytes of room");
  cr_assert_eq(p.rc, 0);
  /* mixing: some payload through feed, the rest direct */
  memset(d2, 'b', 100);
  cr_assert_eq(plush_parser_feed(&p, d2, 100, collect, &g), 0);
  d2 = plush_parser_direct(&p, &room);
  cr_assert_eq(room, 500);
  memset(d2, 'c', 500);
  cr_assert_eq(plush_parser_advance(&p, 500, collect, &g), 0);
  cr_assert_eq(g.n, 1);
  cr_assert(hdr_eq(&g.f[0]->hdr, &h));
  cr_assert_eq(plush_frame_payload(g.f[0])[399], 'a');
  cr_assert_eq(plush_frame_payload(g.f[0])[400], 'b');
  cr_assert_eq(plush_frame_payload(g.f[0])[500], 'c');
  cr_assert_eq(plush_frame_payload(g.f[0])[999], 'c');
  cr_assert_null(plush_parser_direct(&p, &room));
  cr_assert_eq(room, 0);
  got_free(&g);
  plush_parser_free(&p);
}

/* ------------------------------------------------------------------ */
/* Protocol errors.                                                     */

static void bad_header(unsigned char raw[PLUSH_HDR_SIZE], uint32_t len,
                       uint8_t type) {
  plush_hdr h = {len, type, 0, 0, 1, 2, 3};
  plush_hdr_pack(&h, raw);
}

Test(parser, unknown_type_rejected) {
  unsigned char raw[PLUSH_HDR_SIZE];
  got g = {0};
  plush_parser p;
  plush_parser_init(&p, PLUSH_DEFAULT_MAX_FRAME);
  bad_header(raw, 5, 77);
  cr_assert_eq(plush_parser_feed(&p, (const char *)raw, PLUSH_HDR_SIZE, collect, &g),
               PLUSH_EPROTO);
  cr_assert_str_eq(p.err, "unknown frame type 77");
  cr_assert_eq(g.n, 0);
  cr_assert_null(p.cur);
  plush_parser_free(&p);
}

Test(parser, type_bounds) {
  static const struct { uint8_t type; int rc; } cases[] = {
      {0, PLUSH_EPROTO}, {1, 0}, {PLUSH_T__MAX - 1, 0},
      {PLUSH_T__MAX, PLUSH_EPROTO}, {255, PLUSH_EPROTO}};
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    unsigned char raw[PLUSH_HDR_SIZE];
    got g = {0};
    plush_parser p;
    plush_parser_init(&p, PLUSH_DEFAULT_MAX_FRAME);
    bad_header(raw, 0, cases[i].type);
    cr_assert_eq(plush_parser_feed(&p, (const char *)raw, PLUSH_HDR_SIZE, collect, &g),
                 cases[i].rc, "type %u", cases[i].type);
    cr_assert_eq(g.n, cases[i].rc ? 0u : 1u);
    if (cases[i].rc) {
      char want[64];
      snprintf(want, sizeof want, "unknown frame type %u", cases[i].type);
      cr_assert_str_eq(p.err, want);
    }
    got_free(&g);
    plush_parser_free(&p);
  }
}

Test(parser, oversize_rejected_before_allocating) {
  unsigned char raw[PLUSH_HDR_SIZE];
  got g = {0};
  plush_parser p;
  plush_parser_init(&p, PLUSH_DEFAULT_MAX_FRAME);
  bad_header(raw, 2000000000u, PLUSH_T_REQ);
  cr_assert_eq(plush_parser_feed(&p, (const char *)raw, PLUSH_HDR_SIZE, collect, &g),
               PLUSH_ETOOBIG);
  cr_assert_str_eq(p.err, "frame of 2000000000 bytes over the 1073741824-byte limit");
  cr_assert_null(p.cur);
  cr_assert_eq(g.n, 0);
  plush_parser_free(&p);
}

Test(parser, limit_is_configurable) {
  unsigned char raw[PLUSH_HDR_SIZE + 101];
  got g = {0};
  plush_parser p;
  plush_parser_init(&p, 100);
  cr_assert_eq(p.max_frame, 100);
  memset(raw, 'z', sizeof raw);
  bad_header(raw, 100, PLUSH_T_OUTPUT);
  cr_assert_eq(plush_parser_feed(&p, (const char *)raw, PLUSH_HDR_SIZE + 100, collect, &g), 0);
  cr_assert_eq(g.n, 1);
  bad_header(raw, 101, PLUSH_T_OUTPUT);
  cr_assert_eq(plush_parser_feed(&p, (const char *)raw, PLUSH_HDR_SIZE + 101, collect, &g),
               PLUSH_ETOOBIG);
  cr_assert_str_eq(p.err, "frame of 101 bytes over the 100-byte limit");
  cr_assert_eq(g.n, 1);
  got_free(&g);
  plush_parser_free(&p);

  /* 0 means the default, as in plush_conn_opts */
  plush_parser_init(&p, 0);
  cr_assert_eq(p.max_frame, PLUSH_DEFAULT_MAX_FRAME);
  plush_parser_free(&p);
}

/*
** Good frames before a bad header are delivered; from the bad header on,
** nothing: the rest of the stream cannot be trusted.
*/
Test(parser, refuses_input_after_error) {
  stream s;
  unsigned char buf[3 * PLUSH_HDR_SIZE + 8];
  got g = {0};
  plush_parser p;
  size_t room = 5;
  char err[sizeof p.err];
  static const uint32_t two[] = {8, 0};
  build(&s, two, 2);
  memcpy(buf, s.data, s.len);                   /* 8-byte frame, empty frame */
  bad_header(buf + s.len, 0, 77);               /* then garbage */
  plush_parser_init(&p, PLUSH_DEFAULT_MAX_FRAME);
  cr_assert_eq(plush_parser_feed(&p, (const char *)buf, sizeof buf, collect, &g),
               PLUSH_EPROTO);
  cr_assert_eq(g.n, 2);
  cr_assert_null(differs(&s, &g));
  memcpy(err, p.err, sizeof err);
  /* a perfectly good frame is refused now, with the same code and text */
  cr_assert_eq(plush_parser_feed(&p, (const char *)s.data, s.len, collect, &g),
               PLUSH_EPROTO);
  cr_assert_eq(plush_parser_feed(&p, (const char *)s.data, 1, collect, &g),
               PLUSH_EPROTO);
  cr_assert_eq(plush_parser_advance(&p, 1, collect, &g), PLUSH_EPROTO);
  cr_assert_null(plush_parser_direct(&p, &room));
  cr_assert_eq(room, 0);
  cr_assert_str_eq(p.err, err);
  cr_assert_eq(g.n, 2);
  got_free(&g);
  plush_parser_free(&p);
  /* still refused after free (free releases memory; init revives) */
  cr_assert_eq(plush_parser_feed(&p, (const char *)s.data, s.len, collect, &g),
               PLUSH_EPROTO);
  stream_free(&s);
}

Test(parser, oversize_error_is_sticky) {
  unsigned char raw[PLUSH_HDR_SIZE];
  got g = {0};
  plush_parser p;
  plush_parser_init(&p, 10);
  bad_header(raw, 11, PLUSH_T_REQ);
  cr_assert_eq(plush_parser_feed(&p, (const char *)raw, 7, collect, &g), 0);
  cr_assert_eq(plush_parser_feed(&p, (const char *)raw + 7, PLUSH_HDR_SIZE - 7, collect, &g),
               PLUSH_ETOOBIG);
  bad_header(raw, 1, PLUSH_T_REQ);
  cr_assert_eq(plush_parser_feed(&p, (const char *)raw, PLUSH_HDR_SIZE, collect, &g),
               PLUSH_ETOOBIG);
  cr_assert_str_eq(p.err, "frame of 11 bytes over the 10-byte limit");
  cr_assert_eq(g.n, 0);
  plush_parser_free(&p);
}

/*
** Freeing in the middle of a header or a payload releases the partial
** frame (the sanitizer / valgrind run checks for leaks).
*/
Test(parser, free_mid_frame_releases_partial) {
  stream s;
  size_t i, big = 0, partial = 0;
  build_default(&s);
  for (i = 0; i < s.n; i++)
    if (s.hdr[i].len == 100 * 1024) big = i;
  {
    size_t cuts[] = {1, PLUSH_HDR_SIZE - 1, PLUSH_HDR_SIZE, PLUSH_HDR_SIZE + 1,
                     s.off[big] + 10, s.off[big] + PLUSH_HDR_SIZE,
                     s.off[big] + PLUSH_HDR_SIZE + 50000, s.len - 1};
    for (i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
      got g = {0};
      plush_parser p;
      plush_parser_init(&p, PLUSH_DEFAULT_MAX_FRAME);
      plush_frame *held = NULL;
      cr_assert_eq(plush_parser_feed(&p, (const char *)s.data, cuts[i], collect, &g), 0);
      /* hold the partial frame to see the parser drop its reference */
      if (p.cur) held = plush_frame_ref(p.cur);
      cr_assert_eq(held != NULL, cuts[i] >= s.off[g.n] + PLUSH_HDR_SIZE,
                   "cut %zu", cuts[i]);
      partial += held != NULL;
      plush_parser_free(&p);
      if (held) {
        cr_assert_eq(atomic_load(&held->refs), 1, "cut %zu", cuts[i]);
        plush_frame_unref(held);
      }
      cr_assert_null(p.cur);
      cr_assert_eq(p.hdrlen, 0);
      cr_assert_eq(p.got, 0);
      plush_parser_free(&p); /* twice is harmless */
      got_free(&g);
    }
  }
  cr_assert_eq(partial, 3); /* start, middle of the 100 KB one, last byte */
  stream_free(&s);
}

/* ------------------------------------------------------------------ */

Test(errors, strerror_names_plush_and_libuv_codes) {
  static const int codes[] = {PLUSH_ENOMEM, PLUSH_ETRUNC, PLUSH_ECORRUPT,
                              PLUSH_ETOOBIG, PLUSH_EUNSER, PLUSH_EAUTH,
                              PLUSH_EDEPTH, PLUSH_EPROTO, PLUSH_EINVAL,
                              PLUSH_ECLOSED};
  size_t i, j, n = sizeof codes / sizeof codes[0];
  for (i = 0; i < n; i++) {
    const char *m = plush_strerror(codes[i]);
    cr_assert_not_null(m);
    cr_assert_gt(strlen(m), 0);
    cr_assert_null(strstr(m, "nknown"), "%d: %s", codes[i], m);
    for (j = 0; j < i; j++) cr_assert_str_neq(m, plush_strerror(codes[j]));
  }
  cr_assert_str_eq(plush_strerror(PLUSH_ETOOBIG), "frame or value over the configured limit");
  cr_assert_str_eq(plush_strerror(UV_ECONNREFUSED), uv_strerror(UV_ECONNREFUSED));
  cr_assert_str_eq(plush_strerror(UV_EOF), uv_strerror(UV_EOF));
  cr_assert_str_eq(plush_strerror(0), "success");
}

/* ---- a header alone commits no memory (issue 18, item 4) ---- */

/* This process's resident set, in KiB (/proc/self/status VmRSS). */
static long rss_kib(void) {
  char line[256];
  long kib = -1;
  FILE *f = fopen("/proc/self/status", "r");
  cr_assert_not_null(f);
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  fclose(f);
  return kib;
}

static void drop(void *ud, plush_frame *f) {
  (void)ud;
  plush_frame_unref(f);
}

Test(parser, a_header_declaring_1_GiB_commits_almost_nothing) {
  plush_parser ps[3];
  unsigned char hdr[PLUSH_HDR_SIZE];
  plush_hdr h = {.len = 1u << 30, .type = PLUSH_T_REQ};
  long before = rss_kib();
  size_t room;
  int i;
  plush_hdr_pack(&h, hdr);
  for (i = 0; i < 3; i++) {
    plush_parser_init(&ps[i], (uint64_t)1 << 30);
    cr_assert_eq(plush_parser_feed(&ps[i], (char *)hdr, sizeof hdr, drop, NULL), 0);
    cr_assert_eq(plush_parser_held(), (size_t)i << 22,
                 "a header alone holds nothing");
    /* a reader asks where to receive: the first step is populated */
    cr_assert_not_null(plush_parser_direct(&ps[i], &room));
    cr_assert_eq(room, (size_t)4 << 20);
  }
  cr_assert_eq(plush_parser_held(), (size_t)12 << 20);
  /* three 1 GiB headers, 3 GiB declared: resident growth is the steps */
  cr_assert_lt(rss_kib() - before, 64 * 1024, "RSS grew %ld KiB",
               rss_kib() - before);
  for (i = 0; i < 3; i++) plush_parser_free(&ps[i]);
  cr_assert_eq(plush_parser_held(), 0);
}

static int resident(const void *p) {
  unsigned char v = 0;
  cr_assert_eq(mincore((void *)((uintptr_t)p & ~(uintptr_t)4095), 1, &v), 0);
  return v & 1;
}

Test(parser, steps_double_as_bytes_arrive_and_the_frame_completes) {
  plush_parser p;
  unsigned char hdr[PLUSH_HDR_SIZE];
  plush_hdr h = {.len = 40u << 20, .type = PLUSH_T_REPLY};
  size_t room, got = 0, steps = 0;
  plush_hdr_pack(&h, hdr);
  plush_parser_init(&p, 0);
  cr_assert_eq(plush_parser_feed(&p, (char *)hdr, sizeof hdr, drop, NULL), 0);
  while (got < h.len) {
    char *d = plush_parser_direct(&p, &room);
    cr_assert_not_null(d);
    /* the step being filled, and the next one populated meanwhile */
    cr_assert_leq(plush_parser_held(), 4 * got + ((size_t)4 << 20));
    if (got >= ((size_t)4 << 20) && got + room < h.len) {
      int polls = 0; /* by a thread of its own: no event to wait on */
      while (!resident(d + room)) {
        cr_assert_lt(++polls, 60000, "the next step was not populated");
        usleep(1000);
      }
    }
    memset(d, 'x', room);
    got += room;
    steps++;
    cr_assert_eq(plush_parser_advance(&p, room, drop, NULL), 0);
  }
  cr_assert_leq(steps, 5, "%zu steps: not doubling", steps);
  cr_assert_eq(plush_parser_held(), 0);
}

Test(parser, partial_frames_past_the_budget_fail_plainly) {
  plush_parser p;
  unsigned char hdr[PLUSH_HDR_SIZE];
  plush_hdr h = {.len = 64u << 20, .type = PLUSH_T_REQ};
  size_t room;
  plush_hdr_pack(&h, hdr);
  plush_parser_set_budget((size_t)6 << 20);
  plush_parser_init(&p, 0);
  cr_assert_eq(plush_parser_feed(&p, (char *)hdr, sizeof hdr, drop, NULL), 0);
  cr_assert_not_null(plush_parser_direct(&p, &room));
  cr_assert_eq(plush_parser_advance(&p, room, drop, NULL), 0);
  cr_assert_null(plush_parser_direct(&p, &room));
  cr_assert_eq(plush_parser_feed(&p, "x", 1, drop, NULL), PLUSH_ENOMEM);
  cr_assert_str_eq(p.err, "partial frames would hold over 6291456 bytes (a "
                          "frame of 67108864 bytes has 4194304)");
  plush_parser_set_budget(0);
  cr_assert_eq(plush_parser_held(), 0);
}

/* ------------------------------------------------------------------ */
/* A spare block after a big frame that came into fresh pages (mem.h,  */
/* plush_mem_spare): the next frame of its size lands in resident      */
/* pages. Criterion runs each test in its own process: mem starts empty. */

static plush_mem_stats mstats(void) {
  plush_mem_stats s;
  plush_mem_get_stats(&s);
  return s;
}

/* Feeds the header of a frame of len bytes to p. */
static void header(plush_parser *p, uint32_t len, got *g) {
  unsigned char hdr[PLUSH_HDR_SIZE];
  plush_hdr h = {.len = len, .type = PLUSH_T_REQ, .id = len};
  plush_hdr_pack(&h, hdr);
  cr_assert_eq(plush_parser_feed(p, (char *)hdr, sizeof hdr, collect, g), 0);
}

/* Writes the rest of p's frame directly, byte i of the payload (char)(i % 251). */
static void body(plush_parser *p, got *g) {
  size_t room;
  char *d;
  while ((d = plush_parser_direct(p, &room)) != NULL) {
    size_t at = (size_t)(d - (char *)plush_frame_payload(p->cur));
    for (size_t i = 0; i < room; i++) d[i] = (char)((at + i) % 251);
    cr_assert_eq(plush_parser_advance(p, room, collect, g), 0);
  }
}

static void intact(plush_frame *f) {
  const char *d = (const char *)plush_frame_payload(f);
  for (size_t i = 0; i < f->hdr.len; i += 4093)
    cr_assert_eq(d[i], (char)(i % 251), "byte %zu", i);
}

Test(spare, the_second_big_frame_lands_in_a_spare_populated_meanwhile) {
  const uint32_t len = 24u << 20;
  plush_parser p;
  got g = {0};
  size_t room;
  char *d;
  int polls = 0;
  plush_parser_init(&p, 0);
  header(&p, len, &g);
  body(&p, &g);
  cr_assert_eq(g.n, 1);
  intact(g.f[0]);
  /* the first frame still lives (the value made of it); one more mapping,
  ** kept for the next */
  cr_assert_eq(mstats().maps, 2);
  cr_assert_eq(mstats().kept, 1);
  cr_assert_eq(mstats().kept_bytes, (size_t)26 << 20); /* 2 MiB grains */
  header(&p, len, &g);
  d = plush_parser_direct(&p, &room);
  cr_assert_not_null(d);
  cr_assert_eq(mstats().kept, 0, "the spare served the second frame");
  while (!resident(d + (20u << 20))) { /* no event to wait on: bounded */
    /* its thread runs at SCHED_IDLE: on a busy machine it waits */
    cr_assert_lt(++polls, 60000, "the spare was not populated in 60 s");
    usleep(1000);
  }
  body(&p, &g);
  cr_assert_eq(g.n, 2);
  intact(g.f[1]);
  /* it came into a kept block: no new mapping, no new spare */
  cr_assert_eq(mstats().maps, 2);
  cr_assert_eq(mstats().kept, 0);
  got_free(&g);
  plush_parser_free(&p);
}

Test(spare, none_for_a_spliced_or_dropped_frame_nor_a_small_one) {
  const uint32_t len = 24u << 20;
  plush_parser p;
  got g = {0};
  size_t room;
  plush_parser_init(&p, 0);
  /* spliced: its bytes went elsewhere (conn_splice.c) */
  header(&p, len, &g);
  cr_assert_not_null(plush_parser_direct(&p, &room));
  cr_assert_eq(plush_parser_advance(&p, 1000, collect, &g), 0);
  cr_assert_eq(plush_parser_skip(&p, len - 1000, collect, &g), 0);
  cr_assert_eq(g.n, 1);
  cr_assert_eq(mstats().maps, 1);
  cr_assert_eq(mstats().kept, 0);
  /* dropped half way (a peer that declared much and sent little) */
  header(&p, len + (4u << 20), &g);
  cr_assert_not_null(plush_parser_direct(&p, &room));
  cr_assert_eq(plush_parser_advance(&p, room, collect, &g), 0);
  plush_parser_free(&p);
  cr_assert_eq(mstats().maps, 2, "no spare for a frame that never came");
  /* under the big-block line: malloc's, nothing kept */
  plush_parser_init(&p, 0);
  header(&p, (uint32_t)PLUSH_MEM_BIG / 2, &g);
  body(&p, &g);
  cr_assert_eq(g.n, 2);
  cr_assert_eq(mstats().maps, 2);
  got_free(&g);
  plush_parser_free(&p);
}
