/*
** test_bigval.c — big strings sent from where they are (buf.h segments):
** pins (mem.h) keep a freed block's bytes until the write is done; the
** encoder's segments give exactly the bytes of a plain encode, at sizes
** around the threshold, in every table form that moves or rewinds what
** was written; segmented frames cross real loopback connections, plain
** and sealed, byte for byte.
*/
#include <criterion/criterion.h>
#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "buf.h"
#include "codec.h"
#include "conn.h"
#include "frame.h"
#include "lua_mem.h"
#include "mem.h"
#include "seg_frame.h"

#define MiB ((size_t)1 << 20)

static plush_mem_stats stats(void) {
  plush_mem_stats s;
  plush_mem_get_stats(&s);
  return s;
}

/* ---- pins ---------------------------------------------------------- */

Test(pin, a_block_freed_while_pinned_keeps_its_bytes_until_unpinned) {
  char *p = plush_mem_alloc(3 * MiB), *q;
  void *tok;
  memset(p, 'a', 3 * MiB);
  tok = plush_mem_pin(p + 24, 3 * MiB - 24);
  cr_assert_eq(tok, p);
  cr_assert_eq(stats().pinned, 1);
  plush_mem_free(p, 3 * MiB);
  cr_assert_not(plush_mem_owns(p));
  cr_assert_eq(stats().kept, 0, "a pinned block is not kept for reuse");
  q = plush_mem_alloc(3 * MiB); /* cannot be p: p is still mapped */
  cr_assert_neq(q, p);
  memset(q, 'b', 3 * MiB);
  cr_assert_eq(p[24], 'a');
  cr_assert_eq(p[3 * MiB - 1], 'a');
  plush_mem_unpin(tok);
  cr_assert_eq(stats().pinned, 0);
  cr_assert_eq(stats().kept, 1, "the deferred free keeps it");
  plush_mem_free(q, 3 * MiB);
}

Test(pin, a_live_block_unpinned_stays_live) {
  char *p = plush_mem_alloc(2 * MiB);
  void *a = plush_mem_pin(p, 10), *b = plush_mem_pin(p + 100, 10);
  cr_assert_eq(a, p);
  cr_assert_eq(b, p);
  cr_assert_eq(stats().pinned, 1, "one slot per block");
  plush_mem_unpin(a);
  plush_mem_unpin(b);
  cr_assert(plush_mem_owns(p));
  cr_assert_eq(stats().pinned, 0);
  plush_mem_free(p, 2 * MiB);
  cr_assert_eq(stats().kept, 1);
}

Test(pin, only_bytes_inside_a_big_block_pin) {
  char *small = plush_mem_alloc(100), *p = plush_mem_alloc(2 * MiB);
  cr_assert_null(plush_mem_pin(small, 10), "malloc's memory");
  cr_assert_null(plush_mem_pin(p + 10, 2 * MiB), "past the block's end");
  cr_assert_null(plush_mem_pin(p + 4096, 10), "not in the block's first page");
  cr_assert_null(plush_mem_pin(NULL, 0));
  cr_assert_eq(stats().pinned, 0);
  plush_mem_free(small, 100);
  plush_mem_free(p, 2 * MiB);
}

Test(pin, a_full_pin_table_says_no) {
  char *v[PLUSH_MEM_PINS + 1];
  void *tok[PLUSH_MEM_PINS + 1];
  for (int i = 0; i <= PLUSH_MEM_PINS; i++) {
    v[i] = plush_mem_alloc_lazy(MiB);
    tok[i] = plush_mem_pin(v[i], 1);
  }
  for (int i = 0; i < PLUSH_MEM_PINS; i++) cr_assert_eq(tok[i], v[i]);
  cr_assert_null(tok[PLUSH_MEM_PINS]);
  for (int i = 0; i <= PLUSH_MEM_PINS; i++) {
    plush_mem_unpin(tok[i]);
    plush_mem_free(v[i], MiB);
  }
  cr_assert_eq(stats().pinned, 0);
}

Test(pin, a_pinned_block_grown_by_realloc_moves_by_copy) {
  char *p = plush_mem_alloc(2 * MiB), *q;
  void *tok;
  memset(p, 'c', 2 * MiB);
  tok = plush_mem_pin(p, 2 * MiB);
  q = plush_mem_realloc(p, 2 * MiB, 5 * MiB);
  cr_assert_neq(q, p);
  cr_assert_eq(q[2 * MiB - 1], 'c');
  cr_assert_eq(p[2 * MiB - 1], 'c', "the pinned bytes stay");
  plush_mem_unpin(tok);
  plush_mem_free(q, 5 * MiB);
}

/* ---- the encoder's segments ------------------------------------------ */

static lua_State *newstate(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  plush_lua_mem_install(L);
  return L;
}

/* Runs chunk (which returns one value) and leaves its value on top. */
static void value(lua_State *L, const char *chunk) {
  cr_assert_eq(luaL_dostring(L, chunk), LUA_OK, "%s: %s", chunk, lua_tostring(L, -1));
}

/*
** Encodes the value on top plainly and with segments (the latter into a
** frame, as the client's encodeframe does). The frame's pieces, read
** whole and in slices, must agree; its big strings (BIGSTR) must sit at
** PLUSH_FRAME_STRALIGN in a page of a receiver's frame; the whole must
** decode (into the global `back`, checked by the caller) from a received
** frame, big strings taking that frame's pages. Returns how many
** segments the frame had. The value stays on top.
*/
static int both_ways(lua_State *L, size_t prefix) {
  plush_buf plain = PLUSH_BUF_INIT, b = PLUSH_BUF_INIT;
  plush_piece pc[PLUSH_FRAME_PIECES];
  plush_frame *f, *rx;
  plush_hdr h;
  char err[256], *flat;
  size_t len, cap, at, before = 0;
  int n, nsegs;
  cr_assert_eq(plush_encode(L, -1, &plain, "v", err, sizeof err), 0, "%s", err);
  cr_assert_eq(plush_buf_reserve(&b, prefix), 0);
  b.len = prefix;
  b.segmin = PLUSH_MEM_BIG;
  cr_assert_eq(plush_encode(L, -1, &b, "v", err, sizeof err), 0, "%s", err);
  cr_assert_eq(plush_buf_total(&b) - prefix,
               plain.len + (size_t)b.nsegs * (8 + PLUSH_BIGSTR_PAD - 5),
               "a BIGSTR is 8 + 4095 bytes of header and window, a str 32 5");
  cap = b.cap;
  f = (plush_frame *)plush_buf_steal(&b, &len);
  cr_assert_eq(plush_frame_take_segs(f, &b, PLUSH_FRAME_PREFIX), 0);
  cr_assert_eq(b.nsegs, 0);
  atomic_init(&f->refs, 1);
  f->size = cap;
  memset(&f->hdr, 0, sizeof f->hdr);
  f->hdr.type = PLUSH_T_REQ;
  f->hdr.len = (uint32_t)(len - PLUSH_FRAME_PREFIX + plush_frame_segbytes(f));
  plush_frame_repack(f);
  nsegs = f->nsegs;
  for (int i = 0; i < nsegs; i++) { /* where each lands on the receiver */
    cr_assert_eq((PLUSH_FRAME_PREFIX + f->segs[i].at + before) % 4096,
                 PLUSH_FRAME_STRALIGN);
    before += f->segs[i].len;
  }
  /* whole, then slices that start and end inside segments and raw runs */
  flat = malloc(f->hdr.len);
  n = plush_frame_pieces(f, 0, f->hdr.len, pc);
  at = 0;
  for (int i = 0; i < n; i++) {
    memcpy(flat + at, pc[i].p, pc[i].n);
    at += pc[i].n;
  }
  cr_assert_eq(at, f->hdr.len);
  for (size_t off = 0; off < f->hdr.len; off += f->hdr.len / 7 + 1) {
    size_t sl = f->hdr.len - off < 4099 ? f->hdr.len - off : 4099, k = 0;
    n = plush_frame_pieces(f, off, sl, pc);
    for (int i = 0; i < n; i++) {
      cr_assert(memcmp(flat + off + k, pc[i].p, pc[i].n) == 0);
      k += pc[i].n;
    }
    cr_assert_eq(k, sl);
  }
  /* received: a frame of its own, as a conn's parser makes one */
  h = f->hdr;
  cr_assert_not_null(rx = plush_frame_new(&h));
  memcpy(plush_frame_payload(rx), flat, h.len);
  cr_assert_eq(plush_decode_frame(L, rx, err, sizeof err), 0, "%s", err);
  lua_setglobal(L, "back");
  if (nsegs > 0) /* the first string's bytes left the received frame */
    cr_assert_eq(plush_frame_payload(rx)[f->segs[0].at + 1], 0);
  plush_frame_unref(rx);
  free(flat);
  plush_buf_free(&plain);
  plush_frame_unref(f);
  cr_assert_eq(stats().pinned, 0, "the frame's pins go with it");
  return nsegs;
}

static const char *const shapes[] = {
    "return s",
    "return {op = 'push', ns = {x = s}}",
    "return {n = 1, s}",                      /* ext TABLE */
    "return {s, s:upper(), [4] = s, k = 'v'}", /* putmixed moves items */
    "return {s, 'a', [100] = 1}",             /* putrest: rewound to a map */
    "return {r = {n = 2, s, s}, started = 1.5}",
    "local u = s return {function() return u end}", /* an upvalue */
};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

static const char *const checks[] = {
    "return back == s",
    "return back.op == 'push' and back.ns.x == s",
    "return back.n == 1 and back[1] == s",
    "return back[1] == s and back[2] == s:upper() and back[3] == nil and back[4] == s and back.k == 'v'",
    "return back[1] == s and back[2] == 'a' and back[100] == 1",
    "return back.r.n == 2 and back.r[1] == s and back.r[2] == s and back.started == 1.5",
    "return back[1]() == s",
};

Test(segs, exact_bytes_at_every_size_around_the_threshold_in_every_form) {
  static const size_t sizes[] = {PLUSH_MEM_BIG - 25, PLUSH_MEM_BIG - 1,
                                 PLUSH_MEM_BIG,      PLUSH_MEM_BIG + 1,
                                 2 * MiB - 24,       3 * MiB + 7};
  lua_State *L = newstate();
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char chunk[128];
    snprintf(chunk, sizeof chunk,
             "s = string.rep('0123456789abcdef', %zu // 16 + 1):sub(1, %zu)",
             sizes[i], sizes[i]);
    value(L, chunk);
    for (size_t k = 0; k < NSHAPES; k++) {
      int nsegs;
      value(L, shapes[k]);
      nsegs = both_ways(L, PLUSH_FRAME_PREFIX);
      if (sizes[i] < PLUSH_MEM_BIG)
        cr_assert_eq(nsegs, 0, "size %zu shape %zu", sizes[i], k);
      else
        cr_assert_gt(nsegs, 0, "size %zu shape %zu", sizes[i], k);
      lua_pop(L, 1);
      value(L, checks[k]);
      cr_assert(lua_toboolean(L, -1), "size %zu shape %zu decoded wrong",
                sizes[i], k);
      lua_pop(L, 1);
    }
  }
  lua_close(L);
  cr_assert_eq(stats().pinned, 0);
}

Test(segs, more_big_strings_than_segments_are_copied) {
  lua_State *L = newstate();
  value(L, "s = string.rep('z', 1 << 20) "
           "return {s .. 1, s .. 2, s .. 3, s .. 4, s .. 5, s .. 6}");
  cr_assert_eq(both_ways(L, PLUSH_FRAME_PREFIX), PLUSH_BUF_SEGS);
  lua_pop(L, 1);
  value(L, "for i = 1, 6 do if back[i] ~= s .. i then return false end end "
           "return #back == 6");
  cr_assert(lua_toboolean(L, -1));
  lua_close(L);
}

Test(segs, a_failed_encode_releases_its_pins) {
  plush_buf b = PLUSH_BUF_INIT;
  char err[256];
  lua_State *L = newstate();
  b.segmin = PLUSH_MEM_BIG;
  value(L, "s = string.rep('y', 2 << 20) return s");
  cr_assert_eq(plush_encode(L, -1, &b, "first", err, sizeof err), 0);
  cr_assert_eq(b.nsegs, 1);
  lua_pop(L, 1);
  value(L, "return {s, s, coroutine.create(print)}");
  cr_assert_lt(plush_encode(L, -1, &b, "v", err, sizeof err), 0);
  cr_assert_str_eq(err, "cannot serialise v[3]: thread");
  cr_assert_eq(b.nsegs, 1, "the first value's segment stays");
  cr_assert_eq(stats().pinned, 1);
  plush_buf_free(&b);
  cr_assert_eq(stats().pinned, 0);
  lua_close(L);
}

Test(segs, a_string_collected_while_its_frame_lives_keeps_its_bytes) {
  plush_buf b = PLUSH_BUF_INIT;
  plush_piece pc[PLUSH_FRAME_PIECES];
  plush_frame *f;
  char err[256];
  size_t len, cap;
  int n;
  lua_State *L = newstate();
  cr_assert_eq(plush_buf_reserve(&b, PLUSH_FRAME_PREFIX), 0);
  b.len = PLUSH_FRAME_PREFIX;
  b.segmin = PLUSH_MEM_BIG;
  value(L, "return string.rep('q', 5 << 20)");
  cr_assert_eq(plush_encode(L, -1, &b, "v", err, sizeof err), 0);
  cap = b.cap;
  f = (plush_frame *)plush_buf_steal(&b, &len);
  cr_assert_eq(plush_frame_take_segs(f, &b, PLUSH_FRAME_PREFIX), 0);
  atomic_init(&f->refs, 1);
  f->size = cap;
  f->hdr.len = (uint32_t)(len - PLUSH_FRAME_PREFIX + plush_frame_segbytes(f));
  lua_close(L); /* the string is freed: its block waits for the frame */
  n = plush_frame_pieces(f, 0, f->hdr.len, pc);
  cr_assert_eq(n, 3, "header and window, the string, the window's rest");
  cr_assert_eq(pc[1].n, 5 * MiB);
  for (size_t i = 0; i < pc[1].n; i += 4093) cr_assert_eq(pc[1].p[i], 'q');
  cr_assert_eq(stats().pinned, 1);
  plush_frame_unref(f);
  cr_assert_eq(stats().pinned, 0);
}

/* ---- over real connections --------------------------------------------- */

static struct {
  uv_loop_t loop;
  uv_tcp_t listener;
  uint8_t key[PLUSH_KEY_SIZE];
  plush_conn_opts sopts;
  plush_conn *cli, *srv;
  int ready;
  plush_frame *got[4];
  int ngot;
} T;

#define UNTIL(cond, secs)                                              \
  do {                                                                 \
    uint64_t dl_ = uv_now(&T.loop) + (uint64_t)((secs) * 1000);        \
    while (!(cond) && uv_now(&T.loop) < dl_) uv_run(&T.loop, UV_RUN_ONCE); \
  } while (0)

static void onready(plush_conn *c) {
  (void)c;
  T.ready++;
}

static void onframe(plush_conn *c, plush_frame *f) {
  (void)c;
  cr_assert_lt(T.ngot, 4);
  T.got[T.ngot++] = f;
}

static void onclose(plush_conn *c, int reason, const char *msg) {
  (void)reason, (void)msg;
  if (c == T.cli) T.cli = NULL;
  if (c == T.srv) T.srv = NULL;
}

static const plush_conn_cbs cbs = {onready, onframe, NULL, onclose, NULL, NULL};

static void onaccept(uv_stream_t *server, int status) {
  cr_assert_eq(status, 0);
  cr_assert_eq(plush_conn_accept(server, &T.sopts, &cbs, NULL, &T.srv), 0);
}

static void pair(int encrypt) {
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  plush_conn_opts o;
  signal(SIGPIPE, SIG_IGN);
  cr_assert_eq(plush_auth_init(), 0);
  plush_key_generate(T.key, NULL);
  uv_loop_init(&T.loop);
  uv_tcp_init(&T.loop, &T.listener);
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_tcp_bind(&T.listener, (struct sockaddr *)&a, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)&T.listener, 8, onaccept), 0);
  uv_tcp_getsockname(&T.listener, (struct sockaddr *)&ss, &len);
  T.sopts.key = T.key;
  memset(&o, 0, sizeof o);
  o.key = T.key;
  o.role = PLUSH_ROLE_ENGINE;
  o.encrypt = encrypt;
  cr_assert_eq(plush_conn_connect(&T.loop, "127.0.0.1",
                                  ntohs(((struct sockaddr_in *)&ss)->sin_port),
                                  &o, &cbs, NULL, &T.cli), 0);
  UNTIL(T.ready == 2, 20);
  cr_assert_eq(T.ready, 2, "both ends ready");
  cr_assert_eq(plush_conn_secure(T.cli), encrypt);
}

static void unpair(void) {
  for (int i = 0; i < T.ngot; i++) plush_frame_unref(T.got[i]);
  if (T.cli) plush_conn_close(T.cli, 0, NULL);
  if (T.srv) plush_conn_close(T.srv, 0, NULL);
  uv_close((uv_handle_t *)&T.listener, NULL);
  uv_run(&T.loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&T.loop), 0);
}

/* A frame of a table holding two big strings, as the client encodes it;
** *flat gets its bytes (malloc'd). */
static plush_frame *segframe(lua_State *L, char **flat) {
  plush_frame *f;
  value(L, "local a = string.rep('ab', 3 << 19) .. 'end' "
           "local c = string.rep('c', (1 << 20) + 1) "
           "return {op = 'push', ns = {a = a, c = c, n = 42}}");
  f = h_segframe(L, -1, 7, flat);
  lua_pop(L, 1);
  cr_assert_eq(f->nsegs, 2);
  return f;
}

/* Both ways of writing a frame, then the same bytes must arrive, and
** decode to the strings (the receiver's frame giving its pages). */
static void crossing(int encrypt) {
  lua_State *L = newstate();
  plush_frame *f;
  plush_hdr h;
  char *flat, err[256];
  size_t len;
  pair(encrypt);
  f = segframe(L, &flat);
  len = f->hdr.len;
  cr_assert_eq(plush_conn_write_frame(T.cli, f), 0);
  memset(&h, 0, sizeof h);
  h.type = PLUSH_T_REQ;
  h.id = 8;
  cr_assert_eq(plush_conn_write_hdr_frame(T.cli, &h, f), 0);
  plush_frame_unref(f);
  lua_gc(L, LUA_GCCOLLECT); /* the strings go: the frame's pins hold them */
  UNTIL(T.ngot == 2, 60);
  cr_assert_eq(T.ngot, 2);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(T.got[i]->hdr.id, (uint64_t)(7 + i));
    cr_assert_eq(T.got[i]->hdr.len, len);
    cr_assert(memcmp(plush_frame_payload(T.got[i]), flat, len) == 0,
              "frame %d differs", i);
    cr_assert_eq(plush_decode_frame(L, T.got[i], err, sizeof err), 0, "%s", err);
    lua_setglobal(L, "back");
    value(L, "return back.op == 'push' and back.ns.n == 42 and "
             "back.ns.a == string.rep('ab', 3 << 19) .. 'end' and "
             "back.ns.c == string.rep('c', (1 << 20) + 1)");
    cr_assert(lua_toboolean(L, -1), "frame %d decodes wrong", i);
    lua_pop(L, 1);
  }
  free(flat);
  lua_close(L);
  unpair();
  cr_assert_eq(stats().pinned, 0, "written: unpinned");
}

Test(wire, a_segmented_frame_crosses_a_plain_connection, .timeout = 120) {
  crossing(0);
}

Test(wire, a_segmented_frame_crosses_a_sealed_connection, .timeout = 120) {
  crossing(1);
}

/* ---- receiving: when the pages can move, and when not ------------------- */

/* A received frame holding a BIGSTR of n bytes at window place pre. */
static plush_frame *bigstr_frame(size_t n, size_t pre, char fillc) {
  plush_hdr h;
  plush_frame *f;
  unsigned char *p;
  memset(&h, 0, sizeof h);
  h.type = PLUSH_T_REPLY;
  h.len = (uint32_t)(8 + PLUSH_BIGSTR_PAD + n);
  cr_assert_not_null(f = plush_frame_new(&h));
  p = (unsigned char *)plush_frame_payload(f);
  memset(p, 0, h.len);
  p[0] = 0xc9;
  p[1] = (unsigned char)((h.len - 6) >> 24);
  p[2] = (unsigned char)((h.len - 6) >> 16);
  p[3] = (unsigned char)((h.len - 6) >> 8);
  p[4] = (unsigned char)(h.len - 6);
  p[5] = PLUSH_EXT_BIGSTR;
  p[6] = (unsigned char)(pre >> 8);
  p[7] = (unsigned char)pre;
  memset(p + 8 + pre, fillc, n);
  return f;
}

/* The window place that puts the bytes at PLUSH_FRAME_STRALIGN. */
static size_t aligned_pre(void) {
  return (PLUSH_FRAME_STRALIGN + 8192 - (PLUSH_FRAME_PREFIX + 8) % 4096) % 4096;
}

Test(recv, an_aligned_big_string_takes_the_frame_s_pages) {
  lua_State *L = newstate();
  char err[256];
  size_t pre = aligned_pre(), n = 3 * MiB + 5;
  plush_frame *f = bigstr_frame(n, pre, 'm');
  const char *s;
  size_t len;
  cr_assert_eq(plush_decode_frame(L, f, err, sizeof err), 0, "%s", err);
  s = lua_tolstring(L, -1, &len);
  cr_assert_eq(len, n);
  cr_assert_eq(s[0], 'm');
  cr_assert_eq(s[n - 1], 'm');
  cr_assert_eq(s[n], '\0');
  cr_assert_eq((uintptr_t)s % 4096, PLUSH_FRAME_STRALIGN, "made in place");
  cr_assert(plush_mem_owns(s - PLUSH_FRAME_STRALIGN), "its own big block");
  cr_assert_eq(plush_frame_payload(f)[8 + pre], 0, "gone from the frame");
  plush_frame_unref(f);
  cr_assert_eq(stats().kept, 0, "a frame pages left is not kept");
  lua_setglobal(L, "got");
  value(L, "return #got == 3 * 2^20 + 5 and got == string.rep('m', #got)");
  cr_assert(lua_toboolean(L, -1));
  lua_close(L);
}

Test(recv, a_misplaced_or_small_big_string_is_copied) {
  static const size_t ns[] = {MiB - 1, MiB, 2 * MiB};
  lua_State *L = newstate();
  char err[256];
  for (size_t i = 0; i < 3; i++) {
    for (int shift = 0; shift < 2; shift++) {
      size_t pre = aligned_pre() + (size_t)shift;
      plush_frame *f = bigstr_frame(ns[i], pre, 'k');
      const char *s;
      size_t len;
      int moved = ns[i] >= MiB && shift == 0;
      cr_assert_eq(plush_decode_frame(L, f, err, sizeof err), 0, "%s", err);
      s = lua_tolstring(L, -1, &len);
      cr_assert_eq(len, ns[i]);
      cr_assert(s[0] == 'k' && s[len - 1] == 'k');
      cr_assert_eq(plush_frame_payload(f)[8 + pre] == 0, moved,
                   "size %zu shift %d", ns[i], shift);
      lua_pop(L, 1);
      plush_frame_unref(f);
    }
  }
  lua_close(L);
}

Test(recv, plush_decode_reads_a_big_string_without_taking_pages) {
  lua_State *L = newstate();
  char err[256];
  size_t pre = aligned_pre();
  plush_frame *f = bigstr_frame(2 * MiB, pre, 'd');
  cr_assert_eq(plush_decode(L, plush_frame_payload(f), f->hdr.len, NULL, err,
                            sizeof err), 0, "%s", err);
  cr_assert_eq(lua_rawlen(L, -1), 2 * MiB);
  cr_assert_eq(plush_frame_payload(f)[8 + pre], 'd', "the frame keeps its bytes");
  plush_frame_unref(f);
  lua_close(L);
}

Test(recv, a_bad_big_string_is_refused_with_a_reason) {
  lua_State *L = newstate();
  char err[256];
  plush_frame *f = bigstr_frame(10, 0, 'x');
  plush_frame_payload(f)[6] = 0x10; /* window place 4096: past the window */
  cr_assert_lt(plush_decode_frame(L, f, err, sizeof err), 0);
  cr_assert_str_eq(err, "big string padded by 4096");
  cr_assert_eq(lua_gettop(L), 0);
  plush_frame_unref(f);
  /* a window too short for itself */
  {
    static const unsigned char bad[] = {0xc7, 3, PLUSH_EXT_BIGSTR, 0, 0, 0};
    cr_assert_lt(plush_decode(L, (const char *)bad, sizeof bad, NULL, err,
                              sizeof err), 0);
    cr_assert_str_eq(err, "big string of 3 bytes");
  }
  lua_close(L);
}

/* An allocator that refuses big blocks, as an engine's memory limit does. */
static void *stingy(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud, (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return nsize >= MiB ? NULL : realloc(ptr, nsize);
}

Test(recv, a_memory_error_while_taking_pages_leaves_nothing_behind) {
  lua_State *L = lua_newstate(stingy, NULL);
  char err[256];
  plush_frame *f = bigstr_frame(2 * MiB, aligned_pre(), 'e');
  size_t n, live0 = stats().live;
  cr_assert_eq(plush_decode_frame(L, f, err, sizeof err), PLUSH_ENOMEM);
  cr_assert_str_eq(err, "not enough memory");
  cr_assert_eq(lua_gettop(L), 0);
  cr_assert_null(plush_mem_handoff_take(&n), "no hand-over left over");
  cr_assert_eq(stats().live, live0, "the moved block went back");
  plush_frame_unref(f);
  lua_close(L);
}
