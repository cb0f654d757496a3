/*
** test_ctl_relay.c — big frames relayed as they arrive (core/ctl_relay.c):
** a reply of 1 MiB or more goes on to its client while the engine is still
** sending it, flagged RELAYED and followed by RELAY_END (ok, or void when
** its engine died); a big direct request goes on to its engine the same
** way. A real controller, fake engines and clients sending their big
** frames piece by piece (tests/harness/ctl_harness.h). The whole-cluster
** view of the same feature is test_cluster.c's relay suite.
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_harness.h"
#include "plush.h"

#define CLI (&H.cli[0])
#define WATCH (&H.cli[1]) /* asks for status while CLI is busy */
#define E0 (&H.eng[0])
#define E1 (&H.eng[1])
#define BIG ((size_t)2 << 20)
#define PART (BIG / 4 * 3)

static void setup(void) { h_start(NULL, 2, 2); }
static void teardown(void) { h_stop(); }

TestSuite(relay, .init = setup, .fini = teardown);

/* A frame whose payload is a map {k = <string of fill>}, len bytes in
** all (len >= 2 MiB keeps the string header at 5 bytes). */
static plush_frame *bigframe(int type, uint32_t engine, uint64_t id,
                             size_t len, char fill) {
  plush_hdr h = {.len = (uint32_t)len, .type = (uint8_t)type,
                 .engine = engine, .id = id};
  plush_frame *f = plush_frame_new(&h);
  unsigned char *p = (unsigned char *)plush_frame_payload(f);
  uint32_t n = (uint32_t)len - 8;
  memcpy(p, "\x81\xa1r\xdb", 4);
  p[4] = (unsigned char)(n >> 24), p[5] = (unsigned char)(n >> 16);
  p[6] = (unsigned char)(n >> 8), p[7] = (unsigned char)n;
  memset(p + 8, fill, n);
  return f;
}

/* p starts sending f and sends its first n payload bytes. */
static void send_part(h_fake *p, plush_frame *f, size_t n) {
  cr_assert_eq(plush_conn_relay_begin(p->conn, &f->hdr), 0);
  cr_assert_eq(plush_conn_relay_write(p->conn, f, 0, n), 0);
}

/* ... and the rest (an engine ends with a harmless PONG). */
static void send_rest(h_fake *p, plush_frame *f, size_t from, int pong) {
  plush_hdr pong_h = {.type = PLUSH_T_PONG, .engine = p->id};
  cr_assert_eq(plush_conn_relay_write(p->conn, f, from, f->hdr.len - from),
               0);
  if (pong) cr_assert_eq(plush_conn_relay_end(p->conn, &pong_h), 0);
}

static int arriving(void *p) { return ((h_fake *)p)->partial > 0; }

static lua_Integer status_field(const char *field) {
  return h_status(WATCH, field);
}

static void same_payload(const plush_frame *got, plush_frame *sent) {
  cr_assert_eq(got->hdr.len, sent->hdr.len);
  cr_assert_eq(memcmp(plush_frame_payload((plush_frame *)got),
                      plush_frame_payload(sent), sent->hdr.len), 0,
               "the payload differs");
}

/* The first PART bytes of the request q (task t) sent, its relay begun at
** E0 and then voided there (RELAY_END: the engine's frame is dropped). */
static void sent_part_then_voided(plush_frame *q, uint64_t t) {
  plush_frame *f;
  send_part(CLI, q, PART);
  h_until_fn(arriving, E0, "the request's first bytes at the engine");
  f = h_next(E0, PLUSH_T_REQ, t);
  cr_assert_eq(f->hdr.flags, PLUSH_F_RELAYED);
  cr_assert_eq(h_next(E0, PLUSH_T_RELAY_END, t)->hdr.status, PLUSH_S_ENGINE);
}

/* ... then the rest sent: q reaches E0 whole, as a plain request. */
static void rest_goes_whole(plush_frame *q, uint64_t t) {
  plush_frame *f;
  send_rest(CLI, q, PART, 0);
  f = h_next(E0, PLUSH_T_REQ, t);
  cr_assert_eq(f->hdr.flags, 0);
  same_payload(f, q);
}

/* ---- replies, engine -> client -------------------------------------- */

Test(relay, a_big_reply_reaches_its_client_while_the_engine_still_sends_it) {
  uint64_t t = h_submit(CLI, 0, 0, 0, "{op = 'exec'}");
  plush_frame *r = bigframe(PLUSH_T_REPLY, 0, t, BIG, 'x'), *f;
  h_next(E0, PLUSH_T_REQ, t);
  send_part(E0, r, PART);
  h_until_fn(arriving, CLI, "the reply's first bytes at the client");
  cr_assert_leq(CLI->partial, PART);
  send_rest(E0, r, PART, 1);
  f = h_next(CLI, PLUSH_T_REPLY, t);
  cr_assert_eq(f->hdr.flags, PLUSH_F_RELAYED);
  cr_assert_eq(f->hdr.status, PLUSH_S_OK);
  cr_assert_eq(f->hdr.engine, 0);
  same_payload(f, r);
  f = h_next(CLI, PLUSH_T_RELAY_END, t);
  cr_assert_eq(f->hdr.status, PLUSH_S_OK);
  cr_assert_eq(f->hdr.len, 0);
  h_quiet(CLI, 10);
  cr_assert_eq(status_field("relayed"), 1);
  cr_assert_eq(status_field("relay_void"), 0);
  plush_frame_unref(r);
}

Test(relay, a_reply_under_1_mib_is_forwarded_whole) {
  uint64_t t = h_submit(CLI, 1, 0, 0, "{op = 'exec'}");
  plush_frame *r = bigframe(PLUSH_T_REPLY, 1, t, PLUSH_RELAY_MIN - 1, 's');
  plush_frame *f;
  h_next(E1, PLUSH_T_REQ, t);
  cr_assert_eq(plush_conn_write_frame(E1->conn, r), 0);
  f = h_next(CLI, PLUSH_T_REPLY, t);
  cr_assert_eq(f->hdr.flags, 0);
  same_payload(f, r);
  h_quiet(CLI, 10); /* no RELAY_END */
  cr_assert_eq(status_field("relayed"), 0);
  plush_frame_unref(r);
}

/* While a reply is relayed, the client's connection carries nothing
** else: what the controller has for it meanwhile comes after RELAY_END. */
Test(relay, a_relay_under_way_holds_back_every_other_frame_to_its_client) {
  uint64_t t = h_submit(CLI, 0, 0, 0, "{op = 'exec'}"), t2, q;
  plush_frame *r = bigframe(PLUSH_T_REPLY, 0, t, BIG, 'y');
  int seen[3] = {0, 0, 0};
  h_next(E0, PLUSH_T_REQ, t);
  send_part(E0, r, PART);
  h_until_fn(arriving, CLI, "the reply's first bytes at the client");
  t2 = h_submit(CLI, 1, 0, 0, "{op = 'exec'}");
  h_next(E1, PLUSH_T_REQ, t2);
  h_send(E1, PLUSH_T_OUTPUT, 0, 1, t2, 1, 0, "'printed'");
  h_reply(E1, t2, 0, "{r = {n = 1, 'small'}}");
  q = h_ctrl(CLI, "{op = 'ids'}");
  h_quiet(CLI, 30);
  cr_assert_eq(status_field("pending"), 1); /* t2 done, held back */
  send_rest(E0, r, PART, 1);
  h_next(CLI, PLUSH_T_REPLY, t);
  h_next(CLI, PLUSH_T_RELAY_END, t);
  for (int i = 0; i < 3; i++) {
    plush_frame *f;
    while (CLI->seen == CLI->ngot) uv_run(&H.loop, UV_RUN_ONCE);
    f = CLI->got[CLI->seen++];
    if (f->hdr.type == PLUSH_T_OUTPUT && f->hdr.id == t2) seen[0]++;
    else if (f->hdr.type == PLUSH_T_REPLY && f->hdr.id == t2) seen[1]++;
    else if (f->hdr.type == PLUSH_T_CTRL_REPLY && f->hdr.id == q) seen[2]++;
    else cr_assert_fail("frame type %d for %llx", f->hdr.type,
                        (unsigned long long)f->hdr.id);
  }
  cr_assert(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
  h_quiet(CLI, 10);
  plush_frame_unref(r);
}

/* The client gets the rest as zero padding and a void RELAY_END (drop
** it), then the task's one EngineError, then the engine_down event. */
Test(relay, an_engine_dying_mid_reply_voids_the_relay_and_fails_the_task_once) {
  uint64_t t = h_submit(CLI, 0, 0, 0, "{op = 'exec'}");
  plush_frame *r = bigframe(PLUSH_T_REPLY, 0, t, BIG, 'z'), *f;
  h_next(E0, PLUSH_T_REQ, t);
  send_part(E0, r, PART);
  h_until_fn(arriving, CLI, "the reply's first bytes at the client");
  plush_conn_close(E0->conn, 0, "the fake engine dies mid-reply");
  f = h_next(CLI, PLUSH_T_REPLY, t);
  cr_assert_eq(f->hdr.flags, PLUSH_F_RELAYED);
  cr_assert_eq(f->hdr.len, BIG);
  cr_assert_eq(plush_frame_payload(f)[BIG - 1], 0, "padded with zeros");
  cr_assert_eq(h_next(CLI, PLUSH_T_RELAY_END, t)->hdr.status, PLUSH_S_ENGINE);
  f = h_next(CLI, PLUSH_T_REPLY, t);
  cr_assert_eq(f->hdr.status, PLUSH_S_ENGINE);
  cr_assert_eq(f->hdr.flags, 0);
  h_expect(f, "v.kind == 'EngineError' and v.engine == 0 and"
              " v.message:find('engine 0 died', 1, true) == 1");
  h_expect(h_next(CLI, PLUSH_T_EVENT, 0), "v.event == 'engine_down'");
  h_next(WATCH, PLUSH_T_EVENT, 0);
  h_quiet(CLI, 20);
  cr_assert_eq(status_field("relayed"), 1);
  cr_assert_eq(status_field("relay_void"), 1);
  plush_frame_unref(r);
}

/* Sealing is per whole frame: a sealed client gets its big reply whole,
** once it has arrived. */
Test(relay, a_sealed_client_gets_a_big_reply_whole) {
  h_fake *sealed = h_client_sealed();
  uint64_t t = h_submit(sealed, 0, 0, 0, "{op = 'exec'}");
  plush_frame *r = bigframe(PLUSH_T_REPLY, 0, t, BIG, 'e'), *f;
  h_next(E0, PLUSH_T_REQ, t);
  send_part(E0, r, PART);
  h_quiet(sealed, 30);
  send_rest(E0, r, PART, 1);
  f = h_next(sealed, PLUSH_T_REPLY, t);
  cr_assert_eq(f->hdr.flags, 0);
  same_payload(f, r);
  h_quiet(sealed, 10); /* no RELAY_END */
  cr_assert_eq(status_field("relayed"), 0);
  plush_frame_unref(r);
}

/* A task that timed out was answered already: its late big reply goes
** nowhere. */
Test(relay, the_reply_of_a_timed_out_task_is_not_relayed) {
  uint64_t t = h_submit(CLI, 0, 0, 30, "{op = 'exec'}");
  plush_frame *r = bigframe(PLUSH_T_REPLY, 0, t, BIG, 'l');
  h_next(E0, PLUSH_T_REQ, t);
  h_next(E0, PLUSH_T_INTERRUPT, t);
  cr_assert_eq(h_next(CLI, PLUSH_T_REPLY, t)->hdr.status, PLUSH_S_TIMEOUT);
  cr_assert_eq(plush_conn_write_frame(E0->conn, r), 0);
  h_quiet(CLI, 50);
  cr_assert_eq(status_field("relayed"), 0);
  cr_assert_eq(status_field("pending"), 0);
  plush_frame_unref(r);
}

/* ---- requests, client -> engine ------------------------------------- */

Test(relay, a_big_direct_request_reaches_its_engine_while_it_arrives) {
  uint64_t t = h_taskid(CLI);
  plush_frame *q = bigframe(PLUSH_T_REQ, 0, t, BIG, 'q'), *f;
  send_part(CLI, q, PART);
  h_until_fn(arriving, E0, "the request's first bytes at the engine");
  send_rest(CLI, q, PART, 0); /* the client's relay is never ended */
  f = h_next(E0, PLUSH_T_REQ, t);
  cr_assert_eq(f->hdr.flags, PLUSH_F_RELAYED);
  same_payload(f, q);
  cr_assert_eq(h_next(E0, PLUSH_T_RELAY_END, t)->hdr.status, PLUSH_S_OK);
  h_reply(E0, t, 0, "{r = {n = 1, 'took it'}}");
  h_expect(h_next(CLI, PLUSH_T_REPLY, t), "v.r[1] == 'took it'");
  cr_assert_eq(status_field("relayed"), 1);
  plush_frame_unref(q);
}

Test(relay, a_balanced_big_request_is_sent_whole_once_it_has_come) {
  uint64_t t = h_taskid(CLI);
  plush_frame *q = bigframe(PLUSH_T_REQ, PLUSH_ANY, t, BIG, 'b'), *f;
  q->hdr.flags = PLUSH_F_BALANCED;
  plush_frame_repack(q);
  send_part(CLI, q, PART);
  send_rest(CLI, q, PART, 0);
  f = h_next(E0, PLUSH_T_REQ, t);
  cr_assert_eq(f->hdr.flags, PLUSH_F_BALANCED);
  same_payload(f, q);
  h_quiet(E0, 10); /* no RELAY_END */
  cr_assert_eq(status_field("relayed"), 0);
  plush_frame_unref(q);
}

/* The engine drops the void frame; there is no task and nobody to tell. */
Test(relay, a_client_leaving_mid_request_leaves_no_task) {
  uint64_t t = h_taskid(CLI);
  plush_frame *q = bigframe(PLUSH_T_REQ, 0, t, BIG, 'v'), *f;
  send_part(CLI, q, PART);
  h_until_fn(arriving, E0, "the request's first bytes at the engine");
  plush_conn_close(CLI->conn, 0, "the fake client leaves mid-request");
  f = h_next(E0, PLUSH_T_REQ, t);
  cr_assert_eq(f->hdr.flags, PLUSH_F_RELAYED);
  cr_assert_eq(h_next(E0, PLUSH_T_RELAY_END, t)->hdr.status, PLUSH_S_ENGINE);
  cr_assert_eq(status_field("pending"), 0);
  cr_assert_eq(status_field("relay_void"), 1);
  cr_assert_eq(status_field("clients"), 1);
  h_quiet(E0, 10);
  plush_frame_unref(q);
}

/* ---- spliced requests (conn_splice.c) ------------------------------- */

/* Payload bytes after the string header: a pattern, so that a byte out
** of place or lost shows. */
static void pattern(plush_frame *f) {
  unsigned char *p = (unsigned char *)plush_frame_payload(f);
  for (size_t i = 8; i < f->hdr.len; i++) p[i] = (unsigned char)(i % 251);
}

static size_t want_bytes;
static int engine_has(void *p) {
  return ((h_fake *)p)->partial >= want_bytes;
}

/* The client sends a request of len bytes in uneven pieces, each after
** the engine has the one before (so the splice waits for the client again
** and again): the engine gets every byte in place, then an ok RELAY_END.
** (A fake client's relay never ends: one request per test.) */
static void spliced_exact(size_t len) {
  static const size_t cuts[] = {1, 65536, 65537, 1000003, (size_t)2 << 20};
  size_t sent = 0;
  uint64_t t = h_taskid(CLI);
  plush_frame *q = bigframe(PLUSH_T_REQ, 0, t, len, 0), *f;
  pattern(q);
  cr_assert_eq(plush_conn_relay_begin(CLI->conn, &q->hdr), 0);
  for (int i = 0; i < 5 && sent < len; i++) {
    size_t n = cuts[i] < len - sent ? cuts[i] : len - sent;
    cr_assert_eq(plush_conn_relay_write(CLI->conn, q, sent, n), 0);
    sent += n;
    want_bytes = sent;
    if (sent < len)
      h_until_fn(engine_has, E0, "the engine has every byte sent so far");
  }
  if (sent < len)
    cr_assert_eq(plush_conn_relay_write(CLI->conn, q, sent, len - sent), 0);
  f = h_next(E0, PLUSH_T_REQ, t);
  cr_assert_eq(f->hdr.flags, PLUSH_F_RELAYED);
  same_payload(f, q);
  cr_assert_eq(h_next(E0, PLUSH_T_RELAY_END, t)->hdr.status, PLUSH_S_OK);
  h_reply(E0, t, 0, "{r = {n = 1, 'took it'}}");
  h_expect(h_next(CLI, PLUSH_T_REPLY, t), "v.r[1] == 'took it'");
  h_quiet(E0, 10);
  plush_frame_unref(q);
}

Test(relay, a_spliced_request_of_1_mib_plus_1_arrives_exact) {
  spliced_exact(((size_t)1 << 20) + 1);
}

Test(relay, a_spliced_request_of_3_mib_plus_1_arrives_exact) {
  spliced_exact(((size_t)3 << 20) + 1);
}

Test(relay, a_spliced_request_of_5_mib_minus_3_arrives_exact) {
  spliced_exact(((size_t)5 << 20) - 3);
}

/* The engine dies while the request is spliced to it: the client gets
** the task's EngineError once, the controller reads and drops the rest
** of the request, keeps the client and goes on serving. */
Test(relay, an_engine_dying_mid_splice_fails_the_task_once) {
  uint64_t t = h_taskid(CLI), t2;
  plush_frame *q = bigframe(PLUSH_T_REQ, 0, t, BIG, 'd'), *f;
  send_part(CLI, q, PART);
  h_until_fn(arriving, E0, "the request's first bytes at the engine");
  plush_conn_close(E0->conn, 0, "the fake engine dies mid-request");
  f = h_next(CLI, PLUSH_T_REPLY, t);
  cr_assert_eq(f->hdr.status, PLUSH_S_ENGINE);
  h_expect(f, "v.kind == 'EngineError' and v.engine == 0");
  send_rest(CLI, q, PART, 0);
  h_expect(h_next(WATCH, PLUSH_T_EVENT, 0), "v.event == 'engine_down'");
  t2 = h_submit(WATCH, 1, 0, 0, "{op = 'exec'}");
  h_next(E1, PLUSH_T_REQ, t2);
  h_reply(E1, t2, 0, "{r = {n = 1, 'still here'}}");
  h_expect(h_next(WATCH, PLUSH_T_REPLY, t2), "v.r[1] == 'still here'");
  h_expect(h_next(CLI, PLUSH_T_EVENT, 0), "v.event == 'engine_down'");
  h_quiet(CLI, 20); /* no second failure of t */
  cr_assert_eq(status_field("pending"), 0);
  cr_assert_eq(status_field("clients"), 2);
  plush_frame_unref(q);
}

/* A sealed client's big request is neither relayed nor spliced: it goes
** whole, sealed link or not on the engine's side. */
Test(relay, a_sealed_clients_big_request_goes_whole) {
  h_fake *s = h_client_sealed();
  uint64_t t = h_taskid(s);
  plush_frame *q = bigframe(PLUSH_T_REQ, 0, t, BIG + 1, 0), *f;
  pattern(q);
  cr_assert_eq(plush_conn_write_frame(s->conn, q), 0);
  f = h_next(E0, PLUSH_T_REQ, t);
  cr_assert_eq(f->hdr.flags, 0);
  same_payload(f, q);
  h_reply(E0, t, 0, "{r = {n = 1, 'sealed'}}");
  h_expect(h_next(s, PLUSH_T_REPLY, t), "v.r[1] == 'sealed'");
  plush_frame_unref(q);
}

/* ---- a client that stops sending mid-request ------------------------ */

static void setup_beat(void) {
  plush_ctl_opts o = {.heartbeat = 0.02};
  h_start(&o, 1, 2);
}

TestSuite(relay_stall, .init = setup_beat, .fini = teardown);

/* A heartbeat without progress gives the relay up (void on the engine),
** so a stalled client cannot hold the engine's link; the request goes
** whole once it has come, and runs once. */
Test(relay_stall, a_request_that_stops_coming_is_sent_whole_when_it_has_come) {
  uint64_t t;
  setenv("PLUSH_NOSPLICE", "1", 1); /* relayed by copies (this process) */
  t = h_taskid(CLI);
  plush_frame *q = bigframe(PLUSH_T_REQ, 0, t, BIG, 's');
  sent_part_then_voided(q, t);
  rest_goes_whole(q, t);
  h_reply(E0, t, 0, "{r = {n = 0}}");
  h_next(CLI, PLUSH_T_REPLY, t);
  h_quiet(E0, 10);
  cr_assert_eq(status_field("relay_void"), 1);
  plush_frame_unref(q);
}

/* Spliced, the bytes the engine took cannot be sent again: a client that
** stops mid-way gets three heartbeats, then the engine's frame is voided and
** the task fails with BadRequest; the rest, when it comes, is dropped. */
Test(relay_stall, a_spliced_request_that_stops_coming_fails_after_three_beats) {
  uint64_t t = h_taskid(CLI);
  plush_frame *q = bigframe(PLUSH_T_REQ, 0, t, BIG, 'p'), *f;
  sent_part_then_voided(q, t);
  f = h_next(CLI, PLUSH_T_REPLY, t);
  cr_assert_eq(f->hdr.status, PLUSH_S_BADREQ);
  h_expect(f, "v.kind == 'BadRequest' and v.message:find("
              "'stopped arriving mid%-way for 3 heartbeats') ~= nil");
  send_rest(CLI, q, PART, 0);
  h_quiet(E0, 30);
  cr_assert_eq(status_field("pending"), 0);
  cr_assert_eq(status_field("relay_void"), 1);
  plush_frame_unref(q);
}

/* ---- a request the store keeps is relayed by copies ----------------- */

static char dbpath[64];

static void setup_kept(void) {
  plush_ctl_opts o = {.heartbeat = 0.02, .request_max = (size_t)8 << 20};
  int fd;
  snprintf(dbpath, sizeof dbpath, "/tmp/plush-relay-test-XXXXXX");
  fd = mkstemp(dbpath);
  cr_assert_geq(fd, 0);
  close(fd);
  o.db = dbpath;
  h_start(&o, 1, 2);
}

static void teardown_kept(void) {
  char p[80];
  h_stop();
  unlink(dbpath);
  snprintf(p, sizeof p, "%s-wal", dbpath);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", dbpath);
  unlink(p);
}

TestSuite(relay_kept, .init = setup_kept, .fini = teardown_kept);

/* With a database and a request limit over its size, the store keeps the
** request with its result, so its bytes must come through the controller:
** no splice, and a stalled client's request is given up after one
** heartbeat and sent whole, as before splicing. */
Test(relay_kept, a_request_the_store_keeps_is_not_spliced) {
  uint64_t t = h_taskid(CLI);
  plush_frame *q = bigframe(PLUSH_T_REQ, 0, t, BIG, 0);
  pattern(q);
  sent_part_then_voided(q, t);
  rest_goes_whole(q, t);
  h_reply(E0, t, 0, "{r = {n = 1, 'kept'}}");
  h_expect(h_next(CLI, PLUSH_T_REPLY, t), "v.r[1] == 'kept'");
  plush_frame_unref(q);
}

/* ---- teed replies (conn_tee.c) -------------------------------------- */

/* A reply with 1 MiB or more still to come after its first bytes goes on
** by tee: the controller reads it into its frame (it stores it) and the
** client's socket gets it without the controller copying it again. */
#define TEEBIG (((size_t)9 << 20) + 7)
#define TEEPART (((size_t)1 << 20) + 12345)

/* The client gets a teed reply's every byte in place, sent in uneven
** pieces, then RELAY_END; what came for it meanwhile follows, in order. */
Test(relay, a_teed_reply_arrives_exact_and_what_waited_comes_after) {
  static const size_t cuts[] = {1, 65537, 1000003, (size_t)3 << 20};
  uint64_t t = h_submit(CLI, 0, 0, 0, "{op = 'exec'}"), t2;
  plush_frame *r = bigframe(PLUSH_T_REPLY, 0, t, TEEBIG, 0), *f;
  size_t sent = TEEPART;
  pattern(r);
  h_next(E0, PLUSH_T_REQ, t);
  send_part(E0, r, TEEPART);
  h_until_fn(arriving, CLI, "the reply's first bytes at the client");
  t2 = h_submit(CLI, 1, 0, 0, "{op = 'exec'}");
  h_next(E1, PLUSH_T_REQ, t2);
  h_reply(E1, t2, 0, "{r = {n = 1, 'small'}}");
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(plush_conn_relay_write(E0->conn, r, sent, cuts[i]), 0);
    sent += cuts[i];
    want_bytes = sent;
    h_until_fn(engine_has, CLI, "the client has every byte sent so far");
  }
  send_rest(E0, r, sent, 1);
  f = h_next(CLI, PLUSH_T_REPLY, t);
  cr_assert_eq(f->hdr.flags, PLUSH_F_RELAYED);
  same_payload(f, r);
  cr_assert_eq(h_next(CLI, PLUSH_T_RELAY_END, t)->hdr.status, PLUSH_S_OK);
  h_expect(h_next(CLI, PLUSH_T_REPLY, t2), "v.r[1] == 'small'");
  h_quiet(CLI, 10);
  cr_assert_eq(status_field("teed"), 1);
  cr_assert_eq(status_field("relay_void"), 0);
  { /* the store kept the whole reply: fetched again, the same bytes */
    char q[64];
    uint64_t id;
    snprintf(q, sizeof q, "{op = 'result', id = %llu}", (unsigned long long)t);
    id = h_ctrl(WATCH, q);
    f = h_next(WATCH, PLUSH_T_CTRL_REPLY, id);
    cr_assert_eq(f->hdr.status, PLUSH_S_OK);
    same_payload(f, r);
  }
  plush_frame_unref(r);
}

/* A client that stops reading does not hold the engine: the controller
** reads the whole reply (the engine's socket drains) while the client
** reads nothing; once it reads again, it gets every byte in place. */
static int engine_drained(void *p) {
  return plush_conn_queued(((h_fake *)p)->conn) == 0;
}

Test(relay, a_client_that_stops_reading_does_not_hold_the_teeing_engine) {
  size_t len = (size_t)48 << 20;
  uint64_t t = h_submit(CLI, 0, 0, 0, "{op = 'exec'}");
  plush_frame *r = bigframe(PLUSH_T_REPLY, 0, t, len, 0), *f;
  pattern(r);
  h_next(E0, PLUSH_T_REQ, t);
  send_part(E0, r, TEEPART);
  h_until_fn(arriving, CLI, "the reply's first bytes at the client");
  plush_conn_pause(CLI->conn);
  send_rest(E0, r, TEEPART, 1);
  h_until_fn(engine_drained, E0, "the engine's 48 MiB all read");
  cr_assert_eq(status_field("pending"), 0, "the task is done meanwhile");
  cr_assert_lt(CLI->partial, len / 2, "the client read nothing meanwhile");
  plush_conn_resume(CLI->conn);
  f = h_next(CLI, PLUSH_T_REPLY, t);
  same_payload(f, r);
  cr_assert_eq(h_next(CLI, PLUSH_T_RELAY_END, t)->hdr.status, PLUSH_S_OK);
  cr_assert_eq(status_field("teed"), 1);
  plush_frame_unref(r);
}

/* The engine dies mid-tee: the client gets what came, in place, then
** zeros, a void RELAY_END and the task's one EngineError. */
Test(relay, an_engine_dying_mid_tee_voids_the_relay_and_fails_the_task_once) {
  uint64_t t = h_submit(CLI, 0, 0, 0, "{op = 'exec'}");
  plush_frame *r = bigframe(PLUSH_T_REPLY, 0, t, TEEBIG, 0), *f;
  size_t came = TEEPART + ((size_t)2 << 20) + 3;
  const unsigned char *p;
  pattern(r);
  h_next(E0, PLUSH_T_REQ, t);
  send_part(E0, r, TEEPART);
  h_until_fn(arriving, CLI, "the reply's first bytes at the client");
  cr_assert_eq(plush_conn_relay_write(E0->conn, r, TEEPART, came - TEEPART),
               0);
  want_bytes = came;
  h_until_fn(engine_has, CLI, "the client has every byte sent");
  plush_conn_close(E0->conn, 0, "the fake engine dies mid-reply");
  f = h_next(CLI, PLUSH_T_REPLY, t);
  cr_assert_eq(f->hdr.flags, PLUSH_F_RELAYED);
  cr_assert_eq(f->hdr.len, TEEBIG);
  p = (const unsigned char *)plush_frame_payload(f);
  cr_assert_eq(memcmp(p, plush_frame_payload(r), came), 0);
  for (size_t i = came; i < TEEBIG; i++)
    if (p[i] != 0) cr_assert_fail("byte %zu is %d, not padding", i, p[i]);
  cr_assert_eq(h_next(CLI, PLUSH_T_RELAY_END, t)->hdr.status, PLUSH_S_ENGINE);
  f = h_next(CLI, PLUSH_T_REPLY, t);
  cr_assert_eq(f->hdr.status, PLUSH_S_ENGINE);
  h_expect(f, "v.kind == 'EngineError' and v.engine == 0");
  h_expect(h_next(CLI, PLUSH_T_EVENT, 0), "v.event == 'engine_down'");
  h_next(WATCH, PLUSH_T_EVENT, 0);
  h_quiet(CLI, 20);
  cr_assert_eq(status_field("teed"), 1);
  cr_assert_eq(status_field("relay_void"), 1);
  plush_frame_unref(r);
}

/* A client leaving mid-tee: the engine's reply is still read whole (the
** task ends, the controller serves the others). */
Test(relay, a_client_leaving_mid_tee_leaves_the_engine_reading) {
  uint64_t t = h_submit(CLI, 0, 0, 0, "{op = 'exec'}");
  plush_frame *r = bigframe(PLUSH_T_REPLY, 0, t, TEEBIG, 'k');
  h_next(E0, PLUSH_T_REQ, t);
  send_part(E0, r, TEEPART);
  h_until_fn(arriving, CLI, "the reply's first bytes at the client");
  plush_conn_close(CLI->conn, 0, "the fake client leaves mid-reply");
  send_rest(E0, r, TEEPART, 1);
  h_until_fn(engine_drained, E0, "the engine's reply all read");
  cr_assert_eq(status_field("clients"), 1);
  cr_assert_eq(status_field("pending"), 0);
  cr_assert_eq(status_field("teed"), 1);
  plush_frame_unref(r);
}
