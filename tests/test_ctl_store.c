/*
** test_ctl_store.c — the result store (core/ctl_store.c): every reply kept
** by task id, as the engine sent it; the memory tier's byte budget and the
** share of it that big replies (64 KiB or more) may hold; the SQLite tier,
** which outlives its controller, and the replies too big for it.
** A real controller, fake engines and clients (tests/harness/ctl_harness.h).
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#include "ctl.h"
#include "ctl_harness.h"
#include "plush.h"

#define CLI (&H.cli[0])
#define E0 (&H.eng[0])
#define E1 (&H.eng[1])
#define KiB 1024

static void teardown(void) { h_stop(); }

/*
** Task t of engine e runs and answers `expr`: the REPLY its client got
** (a relayed one, 1 MiB or more, with its RELAY_END checked).
*/
static plush_frame *answered(h_fake *e, const char *expr) {
  uint64_t t = h_submit(CLI, e->id, 0, 0, "{op = 'exec'}");
  plush_frame *f;
  h_next(e, PLUSH_T_REQ, t);
  h_reply(e, t, 0, expr);
  f = h_next(CLI, PLUSH_T_REPLY, t);
  if (f->hdr.flags & PLUSH_F_RELAYED)
    cr_assert_eq(h_next(CLI, PLUSH_T_RELAY_END, t)->hdr.status, PLUSH_S_OK);
  return f;
}

/* What the store answers for task id. */
static plush_frame *result(uint64_t id) {
  char req[96];
  snprintf(req, sizeof req, "{op = 'result', id = %llu}",
           (unsigned long long)id);
  return h_next(CLI, PLUSH_T_CTRL_REPLY, h_ctrl(CLI, req));
}

static void kept(const plush_frame *reply) {
  plush_frame *f = result(reply->hdr.id);
  cr_assert_eq(f->hdr.status, reply->hdr.status);
  cr_assert_eq(f->hdr.engine, reply->hdr.engine);
  cr_assert_eq(f->hdr.len, reply->hdr.len, "%u bytes kept, %u sent",
               f->hdr.len, reply->hdr.len);
  cr_assert_eq(memcmp(plush_frame_payload(f),
                      plush_frame_payload((plush_frame *)reply), f->hdr.len),
               0, "the kept payload differs");
}

/* A controller that never had (or no longer knows of) task id's result. */
static void unknown(uint64_t id) {
  plush_frame *f = result(id);
  char cond[128];
  cr_assert_eq(f->hdr.status, PLUSH_S_BADREQ);
  snprintf(cond, sizeof cond, "v.message == 'no result for task %llu'",
           (unsigned long long)id);
  h_expect(f, cond);
}

/* The result of task id was dropped to make room: rc:result says so. */
static void gone(uint64_t id) {
  plush_frame *f = result(id);
  char cond[256];
  cr_assert_eq(f->hdr.status, PLUSH_S_BADREQ);
  snprintf(cond, sizeof cond,
           "v.message == 'the result of task %llu was evicted from the store "
           "(its size bound, or plush results prune)'",
           (unsigned long long)id);
  h_expect(f, cond);
}

static lua_Integer status_field(const char *field) {
  return h_status(CLI, field);
}

/* ---- the memory tier: 1 MiB, of which big replies may hold 64 KiB ------ */

static void setup_mem(void) {
  plush_ctl_opts o = {.store_bytes = 1 << 20};
  h_start(&o, 2, 1);
}

TestSuite(store, .init = setup_mem, .fini = teardown);

Test(store, a_reply_is_kept_byte_for_byte_with_its_status_and_engine) {
  plush_frame *a = answered(E1, "{r = {n = 2, 'x', 2^53 + 1}}");
  uint64_t t = h_submit(CLI, 0, 0, 0, "{op = 'exec'}");
  plush_frame *b;
  h_next(E0, PLUSH_T_REQ, t);
  h_reply(E0, t, PLUSH_S_ERROR, "{kind = 'RemoteError', message = 'boom'}");
  b = h_next(CLI, PLUSH_T_REPLY, t);
  kept(a);
  kept(b);
  /* another client asks for it as well */
  {
    h_fake *other = h_client();
    char req[96];
    plush_frame *f;
    snprintf(req, sizeof req, "{op = 'result', id = %llu}",
             (unsigned long long)a->hdr.id);
    f = h_next(other, PLUSH_T_CTRL_REPLY, h_ctrl(other, req));
    cr_assert_eq(f->hdr.len, a->hdr.len);
    h_expect(f, "v.r[1] == 'x' and v.r[2] == 2^53 + 1");
  }
  cr_assert_eq(status_field("stored"), 2);
}

Test(store, a_reply_over_64_kib_stays_in_memory_within_its_share) {
  plush_frame *big1 = answered(E0, "{r = {n = 1, string.rep('a', 70 * 1024)}}");
  plush_frame *small = answered(E0, "{r = {n = 1, 'small'}}");
  plush_frame *big2 = answered(E1, "{r = {n = 1, string.rep('b', 70 * 1024)}}");
  gone(big1->hdr.id); /* two would pass the share: the older goes */
  kept(small);        /* small ones are not part of the share */
  kept(big2);
  cr_assert_eq(status_field("stored"), 2);
}

/* 40 KiB replies: 25 fit in 1 MiB (whatever the bookkeeping per reply,
** under 900 bytes), 26 do not. */
Test(store, the_oldest_reply_goes_first_when_the_budget_is_full) {
  plush_frame *r[26];
  for (int i = 0; i < 26; i++)
    r[i] = answered(&H.eng[i % 2],
                    "{r = {n = 1, string.rep('c', 40 * 1024)}}");
  gone(r[0]->hdr.id);
  for (int i = 1; i < 26; i++) kept(r[i]);
  cr_assert_eq(status_field("stored"), 25);
  cr_assert_leq(status_field("stored_bytes"), 1 << 20);
}

Test(store, the_newest_reply_stays_whatever_it_costs) {
  plush_frame *small = answered(E0, "{r = {n = 1, 'small'}}");
  plush_frame *huge = answered(E1, "{r = {n = 1, string.rep('h', 1536 * 1024)}}");
  cr_assert_eq(huge->hdr.flags & PLUSH_F_RELAYED, PLUSH_F_RELAYED);
  kept(huge);
  gone(small->hdr.id);
  cr_assert_eq(status_field("stored"), 1);
}

/* The TimeoutError is the task's one answer: its engine's late reply is
** neither forwarded nor stored. */
Test(store, a_timed_out_task_keeps_its_timeout_error) {
  uint64_t t = h_submit(CLI, 0, 0, 30, "{op = 'exec'}");
  plush_frame *f;
  h_next(E0, PLUSH_T_REQ, t);
  h_next(E0, PLUSH_T_INTERRUPT, t);
  f = h_next(CLI, PLUSH_T_REPLY, t);
  cr_assert_eq(f->hdr.status, PLUSH_S_TIMEOUT);
  h_reply(E0, t, 0, "{r = {n = 1, 'late'}}");
  h_quiet(CLI, 20);
  kept(f);
  h_expect(result(t), "v.kind == 'TimeoutError' and v.engine == 0");
}

/* ---- the SQLite tier: blob_max 1000 bytes ----------------------------- */

static char dir[] = "/tmp/plush-store-XXXXXX";
static char db[64];

static void start_db(void) {
  plush_ctl_opts o = {.db = db, .blob_max = 1000};
  h_start(&o, 2, 1);
}

static void setup_db(void) {
  strcpy(dir, "/tmp/plush-store-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  snprintf(db, sizeof db, "%s/results.db", dir);
  start_db();
}

static void teardown_db(void) {
  char p[96];
  h_stop();
  unlink(db);
  snprintf(p, sizeof p, "%s-wal", db);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", db);
  unlink(p);
  cr_assert_eq(rmdir(dir), 0, "the store left files behind");
}

TestSuite(db, .init = setup_db, .fini = teardown_db);

/* A copy of f that outlives the harness's frames (h_stop frees them). */
static plush_frame *keep(const plush_frame *f) {
  plush_hdr h = f->hdr;
  plush_frame *c = plush_frame_new(&h);
  memcpy(plush_frame_payload(c), plush_frame_payload((plush_frame *)f),
         f->hdr.len);
  return c;
}

Test(db, a_result_in_the_database_outlives_its_controller) {
  plush_frame *a = keep(answered(E1, "{r = {n = 1, 'kept on disk'}}"));
  uint64_t t = h_submit(CLI, 0, 0, 0, "{op = 'exec'}");
  plush_frame *b;
  h_next(E0, PLUSH_T_REQ, t);
  h_reply(E0, t, PLUSH_S_ERROR, "{kind = 'RemoteError', message = 'boom'}");
  b = keep(h_next(CLI, PLUSH_T_REPLY, t));
  h_stop();
  start_db();
  kept(a);
  kept(b);
  cr_assert_eq(status_field("stored"), 2);
  plush_frame_unref(a);
  plush_frame_unref(b);
}

/*
** Two replies read in one turn of the controller's loop: the one whose
** client asked for durability (PLUSH_F_DURABLE) waits for the turn's
** commit, the other goes at once -- so the second overtakes the first.
** Both are in the database for the next controller. Engines never see
** the flag.
*/
Test(db, a_durable_reply_waits_for_the_commit_an_early_one_does_not) {
  uint64_t a = h_submit(CLI, E0->id, PLUSH_F_DURABLE, 0, "{op = 'exec'}");
  uint64_t b = h_submit(CLI, E0->id, 0, 0, "{op = 'exec'}");
  plush_frame *ra, *rb;
  cr_assert_eq(h_next(E0, PLUSH_T_REQ, a)->hdr.flags, 0);
  h_next(E0, PLUSH_T_REQ, b);
  h_reply(E0, a, 0, "{r = {n = 1, 'durable'}}");
  h_reply(E0, b, 0, "{r = {n = 1, 'early'}}"); /* both before the loop runs */
  rb = keep(h_next(CLI, PLUSH_T_REPLY, b));
  ra = keep(h_next(CLI, PLUSH_T_REPLY, a));
  h_expect(ra, "v.r[1] == 'durable'");
  h_expect(rb, "v.r[1] == 'early'");
  h_stop();
  start_db();
  kept(ra);
  kept(rb);
  plush_frame_unref(ra);
  plush_frame_unref(rb);
}

static int committed(void *ud) {
  (void)ud;
  return !H.ctl->txn;
}

/*
** A reply nobody waits on the commit for goes at once and its commit may
** wait a little (CTL_COMMIT_WAIT ms, for the next requests to share it):
** it still comes with nothing else happening (heartbeats a minute apart),
** from the store's own timer, and the result is there for the next
** controller.
*/
Test(db, an_early_reply_is_committed_soon_with_nothing_else_happening) {
  plush_ctl_opts o = {.db = db, .blob_max = 1000, .heartbeat = 60};
  uint64_t t;
  plush_frame *r;
  h_stop();
  h_start(&o, 2, 1);
  t = h_submit(CLI, E0->id, 0, 0, "{op = 'exec'}");
  h_next(E0, PLUSH_T_REQ, t);
  h_reply(E0, t, 0, "{r = {n = 1, 'soon'}}");
  r = keep(h_next(CLI, PLUSH_T_REPLY, t));
  h_until_fn(committed, NULL, "the commit");
  h_quiet(CLI, 20);
  h_stop();
  start_db();
  kept(r);
  plush_frame_unref(r);
}

Test(db, a_reply_over_blob_max_lives_in_memory_only) {
  plush_frame *big = answered(E0, "{r = {n = 1, string.rep('m', 2000)}}");
  uint64_t id = big->hdr.id;
  kept(big);
  h_stop();
  start_db();
  unknown(id); /* a new controller: what was in memory only is unknown */
}

/* Ids are never reused while results name them. */
Test(db, a_new_controller_continues_after_the_highest_ids_stored) {
  answered(E1, "{r = {n = 0}}");
  cr_assert_eq(CLI->id, 1); /* client ids start at 1, engine ids at 0 */
  h_stop();
  start_db();
  cr_assert_eq(CLI->id, 2);
  cr_assert_eq(E0->id, 2);
  cr_assert_eq(E1->id, 3);
}

/* History merges the two tiers by completion; records read the database,
** then the memory tier. */
Test(db, history_and_records_read_both_tiers) {
  plush_frame *a = answered(E0, "{r = {n = 1, 'disk'}}");
  plush_frame *b = answered(E1, "{r = {n = 1, string.rep('m', 2000)}}");
  plush_frame *c = answered(E0, "{r = {n = 1, 'disk again'}}");
  lua_pushinteger(H.L, (lua_Integer)a->hdr.id);
  lua_setglobal(H.L, "A");
  lua_pushinteger(H.L, (lua_Integer)b->hdr.id);
  lua_setglobal(H.L, "B");
  lua_pushinteger(H.L, (lua_Integer)c->hdr.id);
  lua_setglobal(H.L, "C");
  h_expect(h_next(CLI, PLUSH_T_CTRL_REPLY, h_ctrl(CLI, "{op = 'history'}")),
           "#v == 3 and v[1] == A and v[2] == B and v[3] == C");
  h_expect(h_next(CLI, PLUSH_T_CTRL_REPLY,
                  h_ctrl(CLI, "{op = 'history', limit = 2}")),
           "#v == 2 and v[1] == B and v[2] == C");
  h_expect(h_next(CLI, PLUSH_T_CTRL_REPLY,
                  h_ctrl(CLI, "{op = 'history', limit = 1}")),
           "#v == 1 and v[1] == C");
  h_expect(h_next(CLI, PLUSH_T_CTRL_REPLY, h_ctrl(CLI, "{op = 'records'}")),
           "#v == 3 and v[1].id == A and v[1].engine == 0 and v[1].client == 1"
           " and v[1].status == 0 and math.type(v[1].submitted) == 'float'"
           " and v[1].completed >= v[1].submitted"
           " and v[1].reply:find('disk', 1, true)"
           " and v[2].id == C and v[3].id == B and v[3].engine == 1"
           " and #v[3].reply > 2000");
}

Test(db_open, a_database_that_cannot_be_opened_stops_the_start) {
  plush_ctl_opts o = {.db = "/nonexistent-dir/results.db"};
  uv_loop_t loop;
  plush_ctl *c = (plush_ctl *)&loop;
  uv_loop_init(&loop);
  cr_assert_eq(plush_ctl_start(&loop, &o, &c), PLUSH_EINVAL);
  cr_assert_null(c);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0, "every handle closed");
}

/* ---- rows written behind (core/ctl_rows.c) ---------------------------- */

/* A reply frame for task seq of client 1, as an engine's answer. */
static plush_frame *row(uint32_t seq, uint16_t status, const char *text) {
  plush_hdr h = {(uint32_t)strlen(text), PLUSH_T_REPLY, 0, status, 1,
                 ((uint64_t)1 << 32) | seq, 0};
  plush_frame *f = plush_frame_new(&h);
  memcpy(plush_frame_payload(f), text, h.len);
  return f;
}

static void same(plush_frame *got, const char *text, uint16_t status) {
  cr_assert_not_null(got);
  cr_assert_eq(got->hdr.status, status);
  cr_assert_eq(got->hdr.engine, 1);
  cr_assert_eq(got->hdr.len, strlen(text));
  cr_assert_eq(memcmp(plush_frame_payload(got), text, got->hdr.len), 0);
  plush_frame_unref(got);
}

/*
** Replies stored in one turn wait in memory for the commit; a lookup
** before it finds them all the same (it writes them first), 40 of them go
** in multi-row statements and singly (16 + 16 + 8), a second answer for
** a task (here in the same batch) leaves the first, and all of them are in
** the database for the next controller.
*/
Test(db, a_reply_not_inserted_yet_is_found_and_then_kept) {
  char text[64];
  uint32_t i;
  size_t before = ctl_store_count(H.ctl);
  plush_frame *f = row(1000, 0, "first");
  ctl_store(H.ctl, f, NULL);
  plush_frame_unref(f);
  cr_assert_eq(H.ctl->nrows, 1, "the row waits for the commit");
  cr_assert(H.ctl->txn);
  same(ctl_store_get(H.ctl, ((uint64_t)1 << 32) | 1000), "first", 0);
  cr_assert_eq(H.ctl->nrows, 0, "the lookup wrote it");
  cr_assert(H.ctl->txn, "... in the open transaction, not committed yet");
  for (i = 1; i <= 40; i++) {
    snprintf(text, sizeof text, "row %u", i);
    f = row(1000 + i, i % 3 ? 0 : PLUSH_S_ERROR, text);
    ctl_store(H.ctl, f, NULL);
    plush_frame_unref(f);
  }
  f = row(1005, 0, "a second answer"); /* ignored: the first stays */
  ctl_store(H.ctl, f, NULL);
  plush_frame_unref(f);
  cr_assert_eq(H.ctl->nrows, 41);
  cr_assert_eq(ctl_store_count(H.ctl), before + 41);
  same(ctl_store_get(H.ctl, ((uint64_t)1 << 32) | 1005), "row 5", 0);
  h_stop();
  start_db();
  for (i = 1; i <= 40; i++) {
    snprintf(text, sizeof text, "row %u", i);
    same(ctl_store_get(H.ctl, ((uint64_t)1 << 32) | (1000 + i)), text,
         i % 3 ? 0 : PLUSH_S_ERROR);
  }
  same(ctl_store_get(H.ctl, ((uint64_t)1 << 32) | 1000), "first", 0);
  cr_assert_eq(ctl_store_count(H.ctl), before + 41);
}

/*
** The multi-row inserts bind a row's client, engine and status only when
** they changed since the statement's last use (ctl_rows.c): three turns of
** 40 rows whose clients, engines (one of them none) and statuses change in
** different rhythms, each turn written by a lookup, all come back with
** their own, before and after a restart.
*/
static plush_frame *rowof(uint32_t client, uint32_t seq, uint32_t engine,
                          uint16_t status, const char *text) {
  plush_hdr h = {(uint32_t)strlen(text), PLUSH_T_REPLY, 0, status, engine,
                 (uint64_t)client << 32 | seq, 0};
  plush_frame *f = plush_frame_new(&h);
  memcpy(plush_frame_payload(f), text, h.len);
  return f;
}

static void rowcheck(uint32_t k) {
  char text[64];
  uint32_t client = 1 + k % 2, engine = k % 3 == 2 ? PLUSH_ANY : 1 + k % 3;
  uint16_t status = k % 5 == 0 ? PLUSH_S_ERROR : 0;
  plush_frame *got = ctl_store_get(H.ctl, (uint64_t)client << 32 | (5000 + k));
  snprintf(text, sizeof text, "turn row %u", k);
  cr_assert_not_null(got, "row %u", k);
  cr_assert_eq(got->hdr.status, status, "row %u: status %u", k, got->hdr.status);
  cr_assert_eq(got->hdr.engine, engine, "row %u: engine %u", k, got->hdr.engine);
  cr_assert_eq(got->hdr.len, strlen(text));
  cr_assert_eq(memcmp(plush_frame_payload(got), text, got->hdr.len), 0);
  plush_frame_unref(got);
}

Test(db, rows_in_reused_inserts_keep_their_own_columns) {
  char text[64];
  for (uint32_t turn = 0; turn < 3; turn++) {
    for (uint32_t i = 0; i < 40; i++) {
      uint32_t k = turn * 40 + i;
      plush_frame *f;
      snprintf(text, sizeof text, "turn row %u", k);
      f = rowof(1 + k % 2, 5000 + k, k % 3 == 2 ? PLUSH_ANY : 1 + k % 3,
                k % 5 == 0 ? PLUSH_S_ERROR : 0, text);
      ctl_store(H.ctl, f, NULL);
      plush_frame_unref(f);
    }
    cr_assert_eq(H.ctl->nrows, 40);
    rowcheck(turn * 40); /* writes the turn's rows */
    cr_assert_eq(H.ctl->nrows, 0);
  }
  for (uint32_t k = 0; k < 120; k++) rowcheck(k);
  h_stop();
  start_db();
  for (uint32_t k = 0; k < 120; k++) rowcheck(k);
}
