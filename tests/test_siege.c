/*
** test_siege.c — no frame from an authenticated peer stops the
** controller: each hand-made request below once crashed it, was read as
** something else, or was answered to nobody. Each now gets BadRequest,
** to its sender, and the controller goes on serving (fz_sync: a status
** request is answered). The harness is the controller fuzzer's
** (tests/fuzz/fuzz_ctl.c): a live controller, a client and an engine in
** this process, over loopback.
*/
#include <criterion/criterion.h>

#include <lauxlib.h>
#include <lualib.h>

#include "codec.h"
#include "fuzz/fuzz_ctl.c"

static lua_State *L;

static void setup(void) {
  fz_init();
  fz_connect();
  L = luaL_newstate();
}

static void teardown(void) { lua_close(L); }

TestSuite(siege, .init = setup, .fini = teardown);

/* Encodes the Lua expression src's value. */
static size_t enc(const char *src, char *out, size_t cap) {
  plush_buf b = PLUSH_BUF_INIT;
  char err[200];
  size_t n;
  cr_assert_eq(luaL_dostring(L, src), LUA_OK, "%s", lua_tostring(L, -1));
  cr_assert_eq(plush_encode(L, -1, &b, "v", err, sizeof err), 0, "%s", err);
  lua_pop(L, 1);
  n = b.len;
  cr_assert_leq(n, cap);
  memcpy(out, b.data, n);
  plush_buf_free(&b);
  return n;
}

/* Runs the loop until the client's reply to id, or the register link's
** answer (id 0); returns its message, asserting status BadRequest. */
static const char *badreq(uint64_t id, int type) {
  static char msg[300];
  plush_frame *f;
  uint64_t t0 = uv_now(&FC.loop);
  while (FC.last == NULL || FC.last->hdr.id != id) {
    uv_run(&FC.loop, UV_RUN_ONCE);
    cr_assert_lt(uv_now(&FC.loop) - t0, 5000, "no answer to %llu",
                 (unsigned long long)id);
  }
  f = FC.last;
  cr_assert_eq(f->hdr.type, type);
  cr_assert_eq(f->hdr.status, PLUSH_S_BADREQ);
  cr_assert_eq(plush_decode(L, plush_frame_payload(f), f->hdr.len, NULL, msg,
                            sizeof msg), 0);
  lua_getfield(L, -1, "kind");
  cr_assert_str_eq(lua_tostring(L, -1), "BadRequest");
  lua_getfield(L, -2, "message");
  snprintf(msg, sizeof msg, "%s", lua_tostring(L, -1));
  lua_pop(L, 3);
  plush_frame_unref(FC.last);
  FC.last = NULL;
  return msg;
}

static uint64_t ctrl(const char *src) {
  char p[256];
  return fz_send(PLUSH_T_CTRL, 0, p, enc(src, p, sizeof p));
}

Test(siege, control_requests_of_the_wrong_shape_are_refused) {
  cr_assert_str_eq(badreq(ctrl("return 42"), PLUSH_T_CTRL_REPLY),
                   "control request is not a table");
  cr_assert_str_eq(badreq(ctrl("return {x = 1}"), PLUSH_T_CTRL_REPLY),
                   "control request without a string op");
  cr_assert_str_eq(badreq(ctrl("return {op = 7}"), PLUSH_T_CTRL_REPLY),
                   "control request without a string op");
  cr_assert_str_eq(badreq(ctrl("return {op = 'nope'}"), PLUSH_T_CTRL_REPLY),
                   "unknown control op 'nope'");
  fz_sync();
}

Test(siege, a_register_that_is_not_a_table_is_refused_to_its_sender) {
  char p[64];
  fz_register(p, enc("return 'engine'", p, sizeof p));
  cr_assert_str_eq(badreq(0, PLUSH_T_CTRL_REPLY),
                   "bad REGISTER: REGISTER is not a table");
  fz_register(p, enc("return {pid = 5}", p, sizeof p));
  cr_assert_str_eq(badreq(0, PLUSH_T_CTRL_REPLY),
                   "bad REGISTER: REGISTER: host must be a string");
  fz_register(p, enc("return {pid = 5, host = 'h', id = -4}", p, sizeof p));
  cr_assert_str_eq(badreq(0, PLUSH_T_CTRL_REPLY),
                   "bad REGISTER: REGISTER: id, rank and size must be counts");
  fz_sync();
}

/* A REQ with scheduling options opts (Lua) before request {op=...}. */
static uint64_t req_opts(const char *opts) {
  char p[512];
  size_t n = enc(opts, p, sizeof p);
  n += enc("return {op = 'execute', code = 'return 1'}", p + n, sizeof p - n);
  return fz_send(PLUSH_T_REQ, PLUSH_F_OPTS | PLUSH_F_BALANCED, p, n);
}

Test(siege, scheduling_options_of_the_wrong_shape_are_refused) {
  cr_assert_str_eq(badreq(req_opts("return 'x'"), PLUSH_T_REPLY),
                   "bad scheduling options: a table expected");
  cr_assert_str_eq(badreq(req_opts("return {targets = 'x'}"), PLUSH_T_REPLY),
                   "bad scheduling options: targets: a list of engine ids "
                   "expected");
  cr_assert_str_eq(badreq(req_opts("return {targets = {-1}}"), PLUSH_T_REPLY),
                   "bad scheduling options: targets: a list of engine ids "
                   "expected");
  cr_assert_str_eq(badreq(req_opts("return {after = 7}"), PLUSH_T_REPLY),
                   "bad scheduling options: after: a list of task ids "
                   "expected");
  cr_assert_str_eq(badreq(req_opts("return {retries = 1.5}"), PLUSH_T_REPLY),
                   "bad scheduling options: retries: a count expected");
  cr_assert_str_eq(badreq(req_opts("return {detached = 1}"), PLUSH_T_REPLY),
                   "bad scheduling options: detached: a boolean expected");
  fz_sync();
}

Test(siege, a_request_with_another_clients_id_is_refused_to_its_sender) {
  char p[128];
  size_t n = enc("return {op = 'execute', code = 'return 1'}", p, sizeof p);
  plush_hdr h = {.type = PLUSH_T_REQ, .engine = FC.engine_id};
  h.id = (uint64_t)(FC.client_id + 1000) << 32 | 1;
  char expect[96];
  snprintf(expect, sizeof expect,
           "task id %llu is not a fresh id of client %u",
           (unsigned long long)h.id, FC.client_id);
  plush_conn_write(FC.client, &h, p, n);
  cr_assert_str_eq(badreq(h.id, PLUSH_T_REPLY), expect);
  fz_sync();
}
