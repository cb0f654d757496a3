/*
** test_ctl_ops.c — the controller's control plane (core/ctl_ops.c): what
** each CTRL op answers, how a bad control request is refused, and the
** replies and events the controller writes itself (ctl_fail, ctl_event).
** A real controller, fake engines and clients (tests/harness/ctl_harness.h);
** every answer decoded by the real codec and compared exactly.
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <unistd.h>
#include <uv.h>

#include "ctl_harness.h"
#include "plush.h"

static void setup(void) { h_start(NULL, 2, 1); }
static void teardown(void) { h_stop(); }

TestSuite(ops, .init = setup, .fini = teardown);

#define CLI (&H.cli[0])
#define E0 (&H.eng[0])
#define E1 (&H.eng[1])

/* Client p asks CTRL {expr}: the answer, checked to be ours and ok. */
static plush_frame *ask(h_fake *p, const char *expr) {
  uint64_t id = h_ctrl(p, expr);
  plush_frame *f = h_next(p, PLUSH_T_CTRL_REPLY, id);
  return f;
}

static plush_frame *ask_ok(const char *expr) {
  plush_frame *f = ask(CLI, expr);
  cr_assert_eq(f->hdr.status, PLUSH_S_OK, "%s: status %d", expr,
               f->hdr.status);
  return f;
}

/* The answer to expr is a refusal whose message is msg. */
static void refused(const char *expr, const char *msg) {
  plush_frame *f = ask(CLI, expr);
  char cond[512];
  cr_assert_eq(f->hdr.status, PLUSH_S_BADREQ, "%s: status %d", expr,
               f->hdr.status);
  snprintf(cond, sizeof cond,
           "v.kind == 'BadRequest' and v.message == %s and next(v, next(v, "
           "next(v))) == nil", msg);
  h_expect(f, cond);
}

/* ---- the ops ---------------------------------------------------------- */

Test(ops, ids_lists_the_live_engines_in_order) {
  h_expect(ask_ok("{op = 'ids'}"), "#v == 2 and v[1] == 0 and v[2] == 1");
  plush_conn_close(E0->conn, 0, "the fake engine leaves");
  h_next(CLI, PLUSH_T_EVENT, 0);
  h_expect(ask_ok("{op = 'ids'}"), "#v == 1 and v[1] == 1");
}

Test(ops, engines_describes_each_engine_and_what_it_runs) {
  uint64_t t;
  h_expect(ask_ok("{op = 'engines'}"),
           "#v == 2 and v[1].id == 0 and v[1].pid == 1 and v[1].host == 'fake'"
           " and v[1].state == 'idle' and v[1].queue == 0"
           " and v[1].running == nil and v[1].rank == nil and v[2].id == 1");
  t = h_submit(CLI, 1, 0, 0, "{op = 'exec', code = 'return 1'}");
  h_next(E1, PLUSH_T_REQ, t);
  h_sendhdr(E1, PLUSH_T_STARTED, t);
  h_quiet(CLI, 10);
  lua_pushinteger(H.L, (lua_Integer)t);
  lua_setglobal(H.L, "T");
  h_expect(ask_ok("{op = 'engines'}"),
           "v[1].state == 'idle' and v[2].state == 'busy' and v[2].queue == 1"
           " and v[2].running == T");
}

/* Balanced tasks wait unassigned while no engine may take them. */
Test(ops, queue_status_counts_unassigned_tasks_and_each_engines_queue) {
  uint64_t t;
  t = h_submit(CLI, PLUSH_ANY, PLUSH_F_BALANCED, 0, "{op = 'exec'}");
  h_next(E0, PLUSH_T_REQ, t);
  h_expect(ask_ok("{op = 'queue_status'}"),
           "v.unassigned == 0 and v.engines[0].queue == 1"
           " and v.engines[1].queue == 0 and v.engines[0].running == nil");
  plush_conn_close(E0->conn, 0, "gone");
  plush_conn_close(E1->conn, 0, "gone");
  h_next(CLI, PLUSH_T_EVENT, 0);
  h_next(CLI, PLUSH_T_EVENT, 0);
  h_expect(ask_ok("{op = 'queue_status'}"),
           "v.unassigned == 1 and next(v.engines) == nil");
  h_engine();
  h_next(&H.eng[2], PLUSH_T_REQ, t); /* the newcomer takes it */
}

Test(ops, status_counts_what_the_controller_holds) {
  uint64_t t;
  char cond[512];
  t = h_submit(CLI, 0, 0, 0, "{op = 'exec'}");
  h_next(E0, PLUSH_T_REQ, t);
  snprintf(cond, sizeof cond,
           "v.engines == 2 and v.clients == 1 and v.pending == 1 and "
           "v.queued == 0 and v.stored == 0 and v.stored_bytes == 0 and "
           "v.relayed == 0 and v.relay_void == 0 and v.stolen == 0 and "
           "v.pid == %d and math.type(v.uptime) == 'float' and v.uptime >= 0",
           (int)uv_os_getpid());
  h_expect(ask_ok("{op = 'status'}"), cond);
  h_reply(E0, t, 0, "{r = {n = 1, 'x'}}");
  h_next(CLI, PLUSH_T_REPLY, t);
  h_expect(ask_ok("{op = 'status'}"),
           "v.pending == 0 and v.stored == 1 and v.stored_bytes > 0");
}

/* ---- collaboration (ctl_follow.c) ------------------------------------ */

static void setg(const char *name, lua_Integer v) {
  lua_pushinteger(H.L, v);
  lua_setglobal(H.L, name);
}

Test(ops, clients_lists_each_client_and_follow_copies_its_work) {
  h_fake *b = h_client();
  char expr[128];
  uint64_t t;
  setg("A", CLI->id);
  setg("B", b->id);
  setg("PID", (lua_Integer)getpid()); /* a client of this host's: local:PID */
  h_expect(ask_ok("{op = 'clients'}"),
           "#v == 2 and v[1].id == A and v[1].me == true and v[2].id == B"
           " and v[2].me == nil and v[1].running == 0 and v[2].queued == 0"
           " and v[1].address == 'local:' .. PID"
           " and math.type(v[1].since) == 'float' and v[1].follows == nil");
  snprintf(expr, sizeof expr, "{op = 'follow', client = %u}", b->id);
  h_expect(ask_ok(expr), "v.following == B");
  h_expect(ask(b, "{op = 'clients'}"), "v[1].follows == B and v[2].me");
  /* b's request, its output and its reply, copied to the follower */
  t = h_submit(b, 0, 0, 0, "{op = 'exec', code = 'print(1) return 1'}");
  setg("T", (lua_Integer)t);
  h_expect(h_next(CLI, PLUSH_T_EVENT, 0),
           "v.event == 'follow' and v.what == 'request' and v.client == B"
           " and v.id == T and v.engine == 0 and v.status == 0"
           " and v.data:find('print(1) return 1', 1, true)");
  h_next(E0, PLUSH_T_REQ, t);
  h_send(E0, PLUSH_T_OUTPUT, 0, 0, t, 1, 0, NULL);
  h_next(b, PLUSH_T_OUTPUT, t);
  h_expect(h_next(CLI, PLUSH_T_EVENT, 0),
           "v.what == 'output' and v.id == T and v.stream == 1 and v.data == ''");
  h_reply(E0, t, 0, "{r = {n = 1, 1}}");
  h_next(b, PLUSH_T_REPLY, t);
  h_expect(h_next(CLI, PLUSH_T_EVENT, 0),
           "v.what == 'reply' and v.id == T and v.engine == 0 and v.status == 0"
           " and #v.data > 0");
  /* the follower's own work is not copied back to it */
  t = h_submit(CLI, 1, 0, 0, "{op = 'exec'}");
  h_next(E1, PLUSH_T_REQ, t);
  h_quiet(CLI, 50);
  /* refusals */
  refused("{op = 'follow', client = 99}", "'follow: no client 99 is connected'");
  refused("{op = 'follow', client = A}", "'follow: a client cannot follow itself'");
  refused("{op = 'follow', client = 'x'}", "'follow: client must be a client id'");
  h_expect(ask_ok("{op = 'follow', stop = true}"), "v.following == false");
  h_submit(b, 0, 0, 0, "{op = 'exec'}");
  h_next(E0, PLUSH_T_REQ, ~(uint64_t)0);
  h_quiet(CLI, 50);
  /* every other client; one that leaves is said to */
  h_expect(ask_ok("{op = 'follow'}"), "v.following == 'all'");
  plush_conn_close(b->conn, 0, "the fake client leaves");
  h_expect(h_next(CLI, PLUSH_T_EVENT, 0),
           "v.event == 'follow' and v.what == 'left' and v.client == B"
           " and v.id == nil and v.data == nil");
}

/* A stored reply comes back with its own status, engine and payload. */
Test(ops, result_returns_the_stored_reply_as_is) {
  uint64_t t = h_submit(CLI, 1, 0, 0, "{op = 'exec'}");
  char req[96];
  plush_frame *f;
  h_next(E1, PLUSH_T_REQ, t);
  snprintf(req, sizeof req, "{op = 'result', id = %llu}",
           (unsigned long long)t);
  f = ask(CLI, req);
  cr_assert_eq(f->hdr.status, PLUSH_S_BADREQ);
  lua_pushinteger(H.L, (lua_Integer)t);
  lua_setglobal(H.L, "T");
  h_expect(f, "v.kind == 'BadRequest'"
              " and v.message == 'task ' .. T .. ' is still pending'");
  h_reply(E1, t, PLUSH_S_ERROR, "{kind = 'RemoteError', message = 'boom'}");
  h_next(CLI, PLUSH_T_REPLY, t);
  f = ask(CLI, req);
  cr_assert_eq(f->hdr.status, PLUSH_S_ERROR);
  cr_assert_eq(f->hdr.engine, 1);
  h_expect(f, "v.kind == 'RemoteError' and v.message == 'boom'");
  refused("{op = 'result', id = 12345}", "'no result for task 12345'");
  refused("{op = 'result'}", "'no result for task 0'");
}

static void targeted(int type, const char *op, const char *field) {
  char req[128], cond[256];
  snprintf(req, sizeof req, "{op = '%s'}", op);
  snprintf(cond, sizeof cond, "#v.%s == 2 and next(v, next(v)) == nil",
           field);
  h_expect(ask_ok(req), cond);
  cr_assert_eq(h_next(E0, type, 0)->hdr.len, 0);
  h_next(E1, type, 0);
  snprintf(req, sizeof req, "{op = '%s', targets = {1, 99, 'x', 1.5}}", op);
  snprintf(cond, sizeof cond, "#v.%s == 1 and v.%s[1] == 1", field, field);
  h_expect(ask_ok(req), cond);
  h_next(E1, type, 0);
  h_quiet(E0, 10);
}

Test(ops, interrupt_reaches_the_named_engines_or_all) {
  targeted(PLUSH_T_INTERRUPT, "interrupt", "interrupted");
}

Test(ops, restart_reaches_the_named_engines_or_all) {
  targeted(PLUSH_T_RESTART, "restart", "restarted");
}

Test(ops, shutdown_with_targets_stops_those_engines_only) {
  h_expect(ask_ok("{op = 'shutdown', targets = {0}}"),
           "#v.stopped == 1 and v.stopped[1] == 0");
  h_next(E0, PLUSH_T_SHUTDOWN, 0);
  h_quiet(E1, 10);
}

Test(ops, add_without_a_launcher_is_refused) {
  refused("{op = 'add', n = 2}", "'this controller does not launch engines'");
  refused("{op = 'add', n = 0}",
          "'add: n must be a count of engines from 1 to 4096'");
  refused("{op = 'add', n = 4097}",
          "'add: n must be a count of engines from 1 to 4096'");
  refused("{op = 'add'}", "'add: n must be a count of engines from 1 to 4096'");
}

Test(ops, history_lists_stored_results_oldest_first) {
  uint64_t t[3];
  for (int i = 0; i < 3; i++) {
    t[i] = h_submit(CLI, 0, 0, 0, "{op = 'exec'}");
    h_next(E0, PLUSH_T_REQ, t[i]);
    h_reply(E0, t[i], 0, "{r = {n = 0}}");
    h_next(CLI, PLUSH_T_REPLY, t[i]);
  }
  lua_pushinteger(H.L, (lua_Integer)t[0]);
  lua_setglobal(H.L, "T1");
  h_expect(ask_ok("{op = 'history'}"),
           "#v == 3 and v[1] == T1 and v[2] == T1 + 1 and v[3] == T1 + 2");
  h_expect(ask_ok("{op = 'history', limit = 2}"),
           "#v == 2 and v[1] == T1 + 1 and v[2] == T1 + 2");
}

Test(ops, records_give_each_stored_reply_and_its_bytes) {
  uint64_t t = h_submit(CLI, 1, 0, 0, "{op = 'exec'}");
  h_next(E1, PLUSH_T_REQ, t);
  h_reply(E1, t, 0, "{r = {n = 1, 'seven'}}");
  h_next(CLI, PLUSH_T_REPLY, t);
  lua_pushinteger(H.L, (lua_Integer)t);
  lua_setglobal(H.L, "T");
  lua_pushinteger(H.L, (lua_Integer)CLI->id);
  lua_setglobal(H.L, "C");
  h_expect(ask_ok("{op = 'records'}"),
           "#v == 1 and v[1].id == T and v[1].client == C and v[1].engine == 1"
           " and v[1].status == 0 and type(v[1].reply) == 'string'"
           " and #v[1].reply > 5 and v[1].reply:find('seven', 1, true)");
}

/* ---- shutdown of the whole cluster, add with a launcher -------------- */

static int shutdowns, added;

static void onshutdown(plush_ctl *c, void *ud) {
  (void)c, (void)ud;
  shutdowns++;
}

static int onadd(plush_ctl *c, void *ud, int n) {
  (void)c, (void)ud;
  if (n == 3) return UV_EAGAIN;
  added += n;
  return 0;
}

static void setup_launcher(void) {
  plush_ctl_opts o = {.on_shutdown = onshutdown, .on_add = onadd};
  shutdowns = added = 0;
  h_start(&o, 1, 1);
}

TestSuite(launcher, .init = setup_launcher, .fini = teardown);

Test(launcher, shutdown_without_targets_asks_the_launcher_once) {
  h_expect(ask_ok("{op = 'shutdown'}"), "v.ok == true and next(v, 'ok') == nil");
  cr_assert_eq(shutdowns, 1);
  h_quiet(E0, 10); /* the engines are the launcher's to stop */
}

Test(launcher, add_asks_the_launcher_for_n_engines) {
  char msg[160];
  h_expect(ask_ok("{op = 'add', n = 2}"), "v.launched == 2");
  cr_assert_eq(added, 2);
  snprintf(msg, sizeof msg, "'cannot launch engines: %s'",
           plush_strerror(UV_EAGAIN));
  refused("{op = 'add', n = 3}", msg);
  cr_assert_eq(added, 2);
}

/* ---- bad control requests: refused to their sender, nothing changes --- */

Test(ops, a_request_that_is_not_a_table_with_a_string_op_is_refused) {
  refused("42", "'control request is not a table'");
  refused("'ids'", "'control request is not a table'");
  refused("{}", "'control request without a string op'");
  refused("{op = 7}", "'control request without a string op'");
  refused("{op = {}}", "'control request without a string op'");
  refused("{op = 'nope'}", "\"unknown control op 'nope'\"");
  refused("{op = string.rep('x', 100)}",
          "\"unknown control op '\" .. string.rep('x', 60) .. \"'\"");
  h_expect(ask_ok("{op = 'ids'}"), "#v == 2"); /* and the controller goes on */
}

Test(ops, an_undecodable_request_is_refused_with_the_codec_s_reason) {
  plush_hdr h = {.type = PLUSH_T_CTRL, .id = h_taskid(CLI)};
  plush_frame *f;
  cr_assert_eq(plush_conn_write(CLI->conn, &h, "\xc1", 1), 0);
  f = h_next(CLI, PLUSH_T_CTRL_REPLY, h.id);
  cr_assert_eq(f->hdr.status, PLUSH_S_BADREQ);
  h_expect(f, "v.kind == 'BadRequest' and type(v.message) == 'string'"
              " and #v.message > 0");
  h.id = h_taskid(CLI);
  cr_assert_eq(plush_conn_write(CLI->conn, &h, "\x92\x01", 2), 0); /* cut */
  f = h_next(CLI, PLUSH_T_CTRL_REPLY, h.id);
  cr_assert_eq(f->hdr.status, PLUSH_S_BADREQ);
  h_expect(ask_ok("{op = 'status'}"), "v.clients == 1 and v.engines == 2");
}

/* Answers go to the client that asked, and to it alone. */
Test(ops, an_answer_goes_to_the_asker_only) {
  h_fake *other = h_client();
  h_expect(ask(other, "{op = 'ids'}"), "#v == 2");
  h_quiet(CLI, 10);
}

/* ---- replies and events the controller writes itself ------------------ */

Test(ops, every_client_hears_engines_come_and_go) {
  h_fake *other = h_client(), *e;
  e = h_engine();
  h_expect(h_next(CLI, PLUSH_T_EVENT, 0),
           "v.event == 'engine_up' and v.id == 2 and v.reason == nil");
  h_expect(h_next(other, PLUSH_T_EVENT, 0), "v.event == 'engine_up'");
  plush_conn_close(e->conn, 0, "bye");
  h_expect(h_next(CLI, PLUSH_T_EVENT, 0),
           "v.event == 'engine_down' and v.id == 2"
           " and v.reason == 'connection closed by peer'");
  h_expect(h_next(other, PLUSH_T_EVENT, 0), "v.event == 'engine_down'");
}

/* A task the controller fails gets one REPLY with an error table
** {kind, message, engine}; a refused one is not stored. */
Test(ops, the_controller_s_own_failures_name_their_kind_and_reason) {
  uint64_t t = h_submit(CLI, 7, 0, 0, "{op = 'exec'}");
  plush_frame *f = h_next(CLI, PLUSH_T_REPLY, t);
  /* an id no engine ever had is a bad request (lua-api.md) */
  cr_assert_eq(f->hdr.status, PLUSH_S_BADREQ);
  cr_assert_eq(f->hdr.engine, 7);
  h_expect(f, "v.kind == 'BadRequest' and v.engine == 7"
              " and v.message == 'unknown engine 7'");
  t = h_submit(CLI, 0, 0, 0, "{op = 'exec'}");
  h_next(E0, PLUSH_T_REQ, t);
  plush_conn_close(E0->conn, 0, "dies");
  f = h_next(CLI, PLUSH_T_REPLY, t);
  cr_assert_eq(f->hdr.status, PLUSH_S_ENGINE);
  h_expect(f, "v.kind == 'EngineError' and v.engine == 0 and v.message =="
              " 'engine 0 died (pid 1): connection closed by peer'");
  h_next(CLI, PLUSH_T_EVENT, 0);
}

/* A task id already in use by the same client is refused, not stored. */
Test(ops, a_task_id_in_use_is_refused_and_not_stored) {
  uint64_t t = h_submit(CLI, 1, 0, 0, "{op = 'exec'}");
  plush_hdr h = {.type = PLUSH_T_REQ, .engine = 1, .id = t};
  plush_frame *f;
  h_next(E1, PLUSH_T_REQ, t);
  cr_assert_eq(plush_conn_write(CLI->conn, &h, "\x80", 1), 0);
  f = h_next(CLI, PLUSH_T_REPLY, t);
  cr_assert_eq(f->hdr.status, PLUSH_S_BADREQ);
  lua_pushinteger(H.L, (lua_Integer)t);
  lua_setglobal(H.L, "T");
  lua_pushinteger(H.L, CLI->id);
  lua_setglobal(H.L, "C");
  h_expect(f, "v.kind == 'BadRequest' and v.message == 'task id ' .. T .."
              " ' is not a fresh id of client ' .. C");
  h_quiet(E1, 10); /* the engine got the first request only */
  h_reply(E1, t, 0, "{r = {n = 1, 'first'}}");
  h_expect(h_next(CLI, PLUSH_T_REPLY, t), "v.r[1] == 'first'");
}

/*
** A request whose id names another client is refused to its sender, and
** the other client hears nothing of it (the refusal used to be routed by
** the id's client half: the other client got it, the sender waited).
*/
Test(ops, a_task_id_of_another_client_is_refused_to_its_sender) {
  h_fake *other = h_client();
  plush_hdr h = {.type = PLUSH_T_REQ, .engine = 1,
                 .id = (uint64_t)other->id << 32 | 1};
  plush_frame *f;
  cr_assert_eq(plush_conn_write(CLI->conn, &h, "\x80", 1), 0);
  h_quiet(other, 20);
  f = h_next(CLI, PLUSH_T_REPLY, h.id);
  cr_assert_eq(f->hdr.status, PLUSH_S_BADREQ);
  h_expect(f, "v.kind == 'BadRequest'");
  h_quiet(E1, 10);
}
