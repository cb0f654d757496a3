/*
** test_cluster.c — a whole cluster in one process: the controller and
** three engines share a libuv loop on a thread of the test, and a client
** (the plush.core module in a lua_State of the test's own thread) talks to
** them over loopback, through the real handshake and frames. IPython's
** first parallel design was proud that this works; so are we.
**
** Lua snippets wait on replies (conn:poll with a bound), never on sleeps.
*/
#include <criterion/criterion.h>

#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "conn.h"
#include "controller.h"
#include "engine_host.h"
#include "lua_core.h"
#include "plush.h"

#define NENG 3
#define FAKE_LEN ((size_t)2 << 20) /* the fake engine's reply payload */

static struct {
  uv_loop_t loop;
  uv_async_t cmd;
  pthread_t thread;
  plush_ctl *ctl;
  plush_engine *eng[NENG];
  int port;
  uint8_t key[PLUSH_KEY_SIZE];
  char keyhex[2 * PLUSH_KEY_SIZE + 1];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int registered;
  int exited;
  int kill_engine; /* command for the loop thread: stop this engine */
  int quit;
  /* The relay suite's fourth engine, a fake on the loop thread: it
  ** answers every request with a 2 MiB reply of which it sends the
  ** first 1.5 MiB, then dies ("die" in the request) or waits for the
  ** command to send the rest. */
  plush_conn *fake;
  plush_frame *fake_reply;
  uint32_t fake_id;
  int fake_finish;  /* command for the loop thread: send the rest */
  /* ... and a fake client: on command it sends engine 0 the first part
  ** of a 2 MiB push of x, then leaves. */
  plush_conn *fakec;
  uint32_t fakec_id;
  int fakec_push;   /* command for the loop thread */
} C;

static void onengine(plush_ctl *c, void *ud, unsigned id, long pid) {
  (void)c, (void)ud, (void)id, (void)pid;
  pthread_mutex_lock(&C.mu);
  C.registered++;
  pthread_cond_broadcast(&C.cv);
  pthread_mutex_unlock(&C.mu);
}

static void engexit(plush_engine *e, int status, const char *why, void *d) {
  (void)e, (void)status, (void)why;
  C.eng[(intptr_t)d] = NULL;
  pthread_mutex_lock(&C.mu);
  C.exited++;
  pthread_cond_broadcast(&C.cv);
  pthread_mutex_unlock(&C.mu);
}

static void ctlstopped(void *ud) { (void)ud; }

#define FAKE_PART (FAKE_LEN / 4 * 3)

/* The reply {r = {"xxx..."}}, FAKE_LEN bytes of payload in all. */
static plush_frame *fakereply(uint64_t id, uint32_t engine) {
  plush_hdr h = {.len = (uint32_t)FAKE_LEN, .type = PLUSH_T_REPLY,
                 .engine = engine, .id = id};
  plush_frame *f = plush_frame_new(&h);
  unsigned char *p = (unsigned char *)plush_frame_payload(f);
  uint32_t n = (uint32_t)FAKE_LEN - 9;
  memcpy(p, "\x81\xa1r\x91\xdb", 5);
  p[5] = (unsigned char)(n >> 24), p[6] = (unsigned char)(n >> 16);
  p[7] = (unsigned char)(n >> 8), p[8] = (unsigned char)n;
  memset(p + 9, 'x', n);
  return f;
}

static void fake_ready(plush_conn *c) {
  static const char reg[] = "\x82\xa3pid\x01\xa4host\xa4" "fake";
  plush_hdr h = {.type = PLUSH_T_REGISTER};
  plush_conn_write(c, &h, reg, sizeof reg - 1);
}

static void fake_frame(plush_conn *c, plush_frame *f) {
  if (f->hdr.type == PLUSH_T_WELCOME) C.fake_id = f->hdr.engine;
  if (f->hdr.type == PLUSH_T_PING) {
    plush_hdr h = {.type = PLUSH_T_PONG, .engine = C.fake_id,
                   .aux = f->hdr.aux};
    plush_conn_write(c, &h, NULL, 0);
  }
  if (f->hdr.type == PLUSH_T_REQ && C.fake_reply == NULL) {
    plush_hdr h;
    C.fake_reply = fakereply(f->hdr.id, C.fake_id);
    h = C.fake_reply->hdr;
    cr_assert_eq(plush_conn_relay_begin(c, &h), 0);
    cr_assert_eq(plush_conn_relay_write(c, C.fake_reply, 0, FAKE_PART), 0);
    if (memmem(plush_frame_payload(f), f->hdr.len, "die", 3))
      plush_conn_close(c, 0, "the fake engine dies mid-reply");
  }
  plush_frame_unref(f);
}

static void fake_close(plush_conn *c, int reason, const char *msg) {
  (void)c, (void)reason, (void)msg;
  C.fake = NULL;
}

static const plush_conn_cbs fakecbs = {fake_ready, fake_frame, NULL,
                                       fake_close, NULL, NULL};

static void fakec_frame(plush_conn *c, plush_frame *f) {
  (void)c;
  if (f->hdr.type == PLUSH_T_WELCOME) {
    pthread_mutex_lock(&C.mu);
    C.fakec_id = f->hdr.engine;
    C.registered++;
    pthread_cond_broadcast(&C.cv);
    pthread_mutex_unlock(&C.mu);
  }
  plush_frame_unref(f);
}

static void fakec_close(plush_conn *c, int reason, const char *msg) {
  (void)c, (void)reason, (void)msg;
  C.fakec = NULL;
}

static const plush_conn_cbs fakeccbs = {NULL, fakec_frame, NULL, fakec_close,
                                        NULL, NULL};

/* {op = "push", ns = {x = <FAKE_LEN - 20 bytes>}}, three quarters sent. */
static void fakec_push(void) {
  plush_hdr h = {.len = (uint32_t)FAKE_LEN, .type = PLUSH_T_REQ,
                 .id = (uint64_t)C.fakec_id << 32 | 1};
  plush_frame *f = plush_frame_new(&h);
  unsigned char *p = (unsigned char *)plush_frame_payload(f);
  uint32_t n = (uint32_t)FAKE_LEN - 20;
  memcpy(p, "\x82\xa2op\xa4push\xa2ns\x81\xa1x\xdb", 16);
  p[16] = (unsigned char)(n >> 24), p[17] = (unsigned char)(n >> 16);
  p[18] = (unsigned char)(n >> 8), p[19] = (unsigned char)n;
  memset(p + 20, 'y', n);
  cr_assert_eq(plush_conn_relay_begin(C.fakec, &h), 0);
  cr_assert_eq(plush_conn_relay_write(C.fakec, f, 0, FAKE_PART), 0);
  plush_conn_close(C.fakec, 0, "the fake client leaves mid-request");
  plush_frame_unref(f);
}

static void oncmd(uv_async_t *a) {
  int i;
  if (C.kill_engine >= 0 && C.eng[C.kill_engine]) {
    plush_engine_stop(C.eng[C.kill_engine]);
    C.kill_engine = -1;
  }
  if (C.fake_finish && C.fake && C.fake_reply) {
    plush_hdr none = {.type = PLUSH_T_PONG};
    C.fake_finish = 0;
    plush_conn_relay_write(C.fake, C.fake_reply, FAKE_PART,
                           FAKE_LEN - FAKE_PART);
    plush_conn_relay_end(C.fake, &none); /* an engine's PONG: harmless */
  }
  if (C.fakec_push && C.fakec) {
    C.fakec_push = 0;
    fakec_push();
  }
  if (C.quit) {
    if (C.fake) plush_conn_close(C.fake, 0, "done");
    if (C.fakec) plush_conn_close(C.fakec, 0, "done");
    plush_frame_unref(C.fake_reply);
    C.fake_reply = NULL;
    for (i = 0; i < NENG; i++)
      if (C.eng[i]) plush_engine_stop(C.eng[i]);
    plush_ctl_stop(C.ctl, ctlstopped, NULL);
    uv_close((uv_handle_t *)a, NULL);
  }
}

/* Asks the loop thread to stop engine id (a death, as the controller
** sees it: its connection closes). */
static void stop_engine(int id) {
  pthread_mutex_lock(&C.mu);
  C.kill_engine = id;
  pthread_mutex_unlock(&C.mu);
  uv_async_send(&C.cmd);
}

static void *run(void *arg) {
  (void)arg;
  uv_run(&C.loop, UV_RUN_DEFAULT);
  return NULL;
}

static void start(int fake) {
  plush_ctl_opts o;
  int i;
  signal(SIGPIPE, SIG_IGN);
  memset(&C, 0, sizeof C);
  C.kill_engine = -1;
  pthread_mutex_init(&C.mu, NULL);
  pthread_cond_init(&C.cv, NULL);
  cr_assert_eq(plush_auth_init(), 0);
  plush_key_generate(C.key, C.keyhex);
  uv_loop_init(&C.loop);
  uv_async_init(&C.loop, &C.cmd, oncmd);
  memset(&o, 0, sizeof o);
  memcpy(o.key, C.key, sizeof o.key);
  o.on_engine = onengine;
  cr_assert_eq(plush_ctl_start(&C.loop, &o, &C.ctl), 0);
  C.port = plush_ctl_port(C.ctl);
  for (i = 0; i < NENG; i++) {
    plush_engine_opts eo;
    memset(&eo, 0, sizeof eo);
    eo.host = "127.0.0.1";
    eo.port = C.port;
    eo.key = C.key;
    eo.id = -1;
    eo.on_exit = engexit;
    eo.data = (void *)(intptr_t)i;
    cr_assert_eq(plush_engine_start(&C.loop, &eo, &C.eng[i]), 0);
  }
  if (fake) {
    plush_conn_opts fo = {.key = C.key, .role = PLUSH_ROLE_ENGINE};
    plush_conn_opts co = {.key = C.key, .role = PLUSH_ROLE_CLIENT};
    cr_assert_eq(plush_conn_connect(&C.loop, "127.0.0.1", C.port, &fo,
                                    &fakecbs, NULL, &C.fake), 0);
    cr_assert_eq(plush_conn_connect(&C.loop, "127.0.0.1", C.port, &co,
                                    &fakeccbs, NULL, &C.fakec), 0);
  }
  pthread_create(&C.thread, NULL, run, NULL);
  pthread_mutex_lock(&C.mu);
  /* the fakes: an engine (registered) and a client (welcomed) */
  while (C.registered < NENG + 2 * fake) pthread_cond_wait(&C.cv, &C.mu);
  pthread_mutex_unlock(&C.mu);
}

static void setup(void) { start(0); }
static void setup_relay(void) { start(1); }

static void teardown(void) {
  C.quit = 1;
  uv_async_send(&C.cmd);
  pthread_join(C.thread, NULL);
  cr_assert_eq(C.exited, NENG, "every engine reported its exit");
  uv_loop_close(&C.loop);
}

/* A client state with plush.core, the connection details as globals and
** a helper `call(target, msg)` that submits and polls for the reply. */
static lua_State *client(void) {
  static const char prelude[] =
      "core = require 'plush.core'\n"
      "conn = core.connect('127.0.0.1', PORT, KEY, 5)\n"
      "inbox, outs = {}, {}\n"
      "function pump(t)\n"
      "  for _, ev in ipairs(conn:poll(t)) do\n"
      "    if ev.kind == 'output' then outs[#outs + 1] = ev\n"
      "    elseif ev.id then inbox[ev.id] = ev end\n"
      "  end\n"
      "end\n"
      "function wait(ids, limit)\n"
      "  local deadline = core.now() + (limit or 10)\n"
      "  while true do\n"
      "    local all = true\n"
      "    for _, id in ipairs(ids) do all = all and inbox[id] ~= nil end\n"
      "    if all then break end\n"
      "    assert(core.now() < deadline, 'no reply in time')\n"
      "    pump(1)\n"
      "  end\n"
      "  local r, out = {}, outs\n"
      "  for i, id in ipairs(ids) do r[i] = inbox[id]; inbox[id] = nil end\n"
      "  outs = {}\n"
      "  return r, out\n"
      "end\n"
      "function ask(msg) return wait({conn:ctrl(msg)})[1] end\n"
      "function call(target, msg)\n"
      "  return wait({conn:submit(target, msg)})[1]\n"
      "end\n";
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_plush_core);
  lua_setfield(L, -2, "plush.core");
  lua_pop(L, 1);
  lua_pushinteger(L, C.port);
  lua_setglobal(L, "PORT");
  lua_pushstring(L, C.keyhex);
  lua_setglobal(L, "KEY");
  if (luaL_dostring(L, prelude))
    cr_assert_fail("prelude: %s", lua_tostring(L, -1));
  return L;
}

static void lua_ok(lua_State *L, const char *code) {
  if (luaL_dostring(L, code)) cr_assert_fail("%s", lua_tostring(L, -1));
}

TestSuite(cluster, .init = setup, .fini = teardown);

Test(cluster, every_engine_answers_with_its_own_namespace) {
  lua_State *L = client();
  lua_ok(L,
         "local ids = conn:submit({0, 1, 2}, {op = 'exec', code = 'x = engine.id * 10'})\n"
         "for _, r in ipairs(wait(ids)) do assert(r.status == 'ok', r.status) end\n"
         "local rs = wait(conn:submit({0, 1, 2}, {op = 'exec', code = 'return x'}))\n"
         "for i, r in ipairs(rs) do\n"
         "  assert(r.engine == i - 1)\n"
         "  assert(math.type(r.value.r[1]) == 'integer' and r.value.r[1] == (i - 1) * 10)\n"
         "end");
  lua_close(L);
}

Test(cluster, output_streams_before_the_reply_in_order) {
  lua_State *L = client();
  lua_ok(L,
         "local rs, out = wait({conn:submit(1, {op = 'exec', code = "
         "\"for i = 1, 3 do print('line', i) end io.write('end') return 7\"})})\n"
         "assert(rs[1].value.r[1] == 7)\n"
         "assert(#out == 4, #out)\n"
         "for i = 1, 3 do assert(out[i].text == 'line\\t' .. i .. '\\n', out[i].text) end\n"
         "assert(out[4].text == 'end' and out[4].engine == 1)");
  lua_close(L);
}

Test(cluster, remote_errors_carry_message_chunk_and_line) {
  lua_State *L = client();
  lua_ok(L,
         "local r = call(0, {op = 'exec', code = 'local a = 1\\nerror(\"boom\")', name = 'cell'})\n"
         "assert(r.status == 'error')\n"
         "assert(r.value.kind == 'RemoteError')\n"
         "assert(r.value.message == 'cell:2: boom', r.value.message)\n"
         "assert(r.value.chunk == 'cell' and r.value.line == 2)\n"
         "assert(r.value.traceback:find('stack traceback', 1, true))\n"
         "local s = call(0, {op = 'exec', code = 'return +'})\n"
         "assert(s.status == 'error' and s.value.message:find('unexpected symbol', 1, true))\n"
         "assert(call(0, {op = 'exec', code = 'return 1'}).value.r[1] == 1)");
  lua_close(L);
}

Test(cluster, functions_travel_and_run_remotely) {
  lua_State *L = client();
  lua_ok(L,
         "local k = 5\n"
         "local f = function(n) return n + k + engine.id, math.floor(2.5) end\n"
         "local r = call(2, {op = 'apply', f = f, args = {n = 1, 10}})\n"
         "assert(r.status == 'ok', r.value and r.value.message)\n"
         "assert(r.value.r.n == 2 and r.value.r[1] == 17 and r.value.r[2] == 2)");
  lua_close(L);
}

Test(cluster, balanced_tasks_spread_over_engines) {
  lua_State *L = client();
  lua_ok(L,
         "local ids = {}\n"
         "for i = 1, 300 do ids[i] = conn:submit(nil, {op = 'exec', code = 'return engine.id'}) end\n"
         "local seen = {}\n"
         "for _, r in ipairs(wait(ids)) do\n"
         "  assert(r.status == 'ok'); seen[r.value.r[1]] = (seen[r.value.r[1]] or 0) + 1\n"
         "end\n"
         "assert(seen[0] and seen[1] and seen[2], 'all three engines worked')\n"
         "assert(seen[0] + seen[1] + seen[2] == 300)");
  lua_close(L);
}

Test(cluster, results_are_kept_by_id_for_other_clients) {
  lua_State *L = client();
  lua_State *M = client();
  lua_ok(L,
         "local r = call(0, {op = 'exec', code = 'return \"kept\", 2^53 + 1'})\n"
         "TASK = r.id");
  lua_getglobal(L, "TASK");
  lua_pushinteger(M, lua_tointeger(L, -1));
  lua_setglobal(M, "TASK");
  lua_ok(M,
         "local ev = ask({op = 'result', id = TASK})\n"
         "assert(ev.kind == 'ctrl' and ev.status == 'ok')\n"
         "assert(ev.value.r[1] == 'kept' and ev.value.r[2] == 2^53 + 1)\n"
         "local ev2 = ask({op = 'result', id = 12345})\n"
         "assert(ev2.status == 'badreq' and ev2.value.message == 'no result for task 12345')");
  lua_close(L);
  lua_close(M);
}

Test(cluster, timeout_fails_the_task_and_the_engine_carries_on) {
  lua_State *L = client();
  lua_ok(L,
         "local r = wait({conn:submit(1, {op = 'exec', code = 'while true do end'}, 0.2)})[1]\n"
         "assert(r.status == 'timeout', r.status)\n"
         "assert(r.value.kind == 'TimeoutError')\n"
         "assert(call(1, {op = 'exec', code = 'return engine.id'}).value.r[1] == 1)");
  lua_close(L);
}

/* An engine that goes away mid-task: its direct work fails with
** EngineError; balanced work it held runs elsewhere. */
Test(cluster, engine_death_fails_direct_work_and_moves_balanced_work) {
  lua_State *L = client();
  /* the balanced tasks on engines 0 and 1 wait for this file: no engine
  ** is idle, so none takes back (steals) the task engine 2 holds before
  ** engine 2 is stopped */
  char flag[64];
  snprintf(flag, sizeof flag, "/tmp/plush-test-cluster-%d.go", (int)getpid());
  unlink(flag);
  lua_pushstring(L, flag);
  lua_setglobal(L, "FLAG");
  lua_ok(L,
         "DIRECT = conn:submit(2, {op = 'exec', code = 'while true do end'})\n"
         "-- wait until engine 2 is running the direct task\n"
         "local deadline = core.now() + 10\n"
         "repeat\n"
         "  local info = ask({op = 'engines'}).value\n"
         "until info[3].running == DIRECT or core.now() > deadline\n"
         "assert(core.now() < deadline, 'engine 2 never ran the task')\n"
         "-- one of these lands on engine 2 (it has a free slot) and is stuck there\n"
         "BAL = {}\n"
         "for i = 1, 12 do BAL[i] = conn:submit(nil, {op = 'exec', code = "
         "'if engine.id == 2 then while true do end end "
         "while not io.open(' .. string.format('%q', FLAG) .. ') do end "
         "return engine.id, engine.task.attempt, engine.task.id'}) end\n"
         "local qs = ask({op = 'queue_status'}).value\n"
         "assert(qs.engines[2].queue == 2, 'engine 2 holds a balanced task')\n");
  stop_engine(2);
  /* engine 2 gone, then engines 0 and 1 go on */
  lua_ok(L,
         "local deadline = core.now() + 10\n"
         "repeat local ids = ask({op = 'ids'}).value until #ids == 2 or core.now() > deadline\n"
         "assert(core.now() < deadline, 'engine 2 never left')\n"
         "io.open(FLAG, 'w'):close()");
  lua_ok(L,
         "local d = wait({DIRECT})[1]\n"
         "assert(d.status == 'engine' and d.value.kind == 'EngineError', d.status)\n"
         "assert(d.value.message:find('engine 2', 1, true), d.value.message)\n"
         "local again = 0\n"
         "for i, r in ipairs(wait(BAL)) do\n"
         "  assert(r.status == 'ok', r.value.message)\n"
         "  assert(r.value.r[1] ~= 2)\n"
         "  -- engine.task: the task's id, and 2 for the one run again\n"
         "  assert(r.value.r[3] == BAL[i], r.value.r[3])\n"
         "  assert(r.value.r[2] == 1 or r.value.r[2] == 2, r.value.r[2])\n"
         "  if r.value.r[2] == 2 then again = again + 1 end\n"
         "end\n"
         "assert(again >= 1, 'the task engine 2 held ran again as attempt 2')\n"
         "local ids = ask({op = 'ids'}).value\n"
         "assert(#ids == 2 and ids[1] == 0 and ids[2] == 1)\n"
         "local r = call(2, {op = 'exec', code = 'return 1'})\n"
         "assert(r.status == 'engine' and r.value.message == 'engine 2 is not connected')\n"
         "assert(r.value.left == true, 'marked as an engine that left')\n"
         "r = call(7, {op = 'exec', code = 'return 1'})\n"
         "assert(r.status == 'badreq' and r.value.message == 'unknown engine 7', r.status)\n"
         "assert(r.value.kind == 'BadRequest' and r.value.left == nil)");
  lua_close(L);
  unlink(flag);
}

/* ---- models: messages between engines, the tuple space ----------- */

/*
** engine.send / engine.recv through the controller: a ring of the three
** engines 200 times round, tags filtering with the rest kept in order,
** exact values, a timeout, a send to an engine that does not exist, and
** a blocked recv interrupted (the engine then serves on).
*/
Test(cluster, engines_message_each_other) {
  lua_State *L = client();
  lua_ok(L,
         "local ring = [[\n"
         "  local n, me = 3, engine.id\n"
         "  local nxt, prev = (me + 1) % n, (me - 1) % n\n"
         "  if me == 0 then engine.send(nxt, {hops = 0}) end\n"
         "  local t\n"
         "  for round = 1, 200 do\n"
         "    t = engine.recv(prev)\n"
         "    t.hops = t.hops + 1\n"
         "    if me ~= 0 or round < 200 then engine.send(nxt, t) end\n"
         "  end\n"
         "  return me == 0 and t.hops or nil]]\n"
         "local rs = wait(conn:submit({0, 1, 2}, {op = 'exec', code = ring}))\n"
         "assert(rs[1].status == 'ok', rs[1].value.message)\n"
         "assert(rs[1].value.r[1] == 600, tostring(rs[1].value.r[1]))\n"
         "local r = call(1, {op = 'exec', code = [[\n"
         "  engine.send(2, 'a', 'x') engine.send(2, {0.1, 1 << 62}, 'y')\n"
         "  engine.send(2, 'b', 'x')]]})\n"
         "assert(r.status == 'ok')\n"
         "r = call(2, {op = 'exec', code = [[\n"
         "  local v, from, tag = engine.recv(1, 'y')\n"
         "  local a = engine.recv(nil, 'x')\n"
         "  local b, f2, t2 = engine.recv()\n"
         "  local none, why = engine.recv(nil, nil, 0.01)\n"
         "  local ok, e = pcall(engine.send, 77, 1)\n"
         "  return v[1] == 0.1 and v[2] == 1 << 62, from, tag, a, b, t2,\n"
         "    none, why, ok, e.kind, e.engine]]})\n"
         "assert(r.status == 'ok', r.value.message)\n"
         "local v = r.value.r\n"
         "assert(v[1] == true and v[2] == 1 and v[3] == 'y' and v[4] == 'a')\n"
         "assert(v[5] == 'b' and v[6] == 'x' and v[7] == nil and v[8] == 'timeout')\n"
         "assert(v[9] == false and v[10] == 'EngineError' and v[11] == 77)\n"
         "local id = conn:submit(0, {op = 'exec', code = 'return engine.recv(2, 9)'})\n"
         "local deadline = core.now() + 10\n"
         "repeat\n"
         "  local info = ask({op = 'engines'}).value\n"
         "until info[1].running == id or core.now() > deadline\n"
         "assert(ask({op = 'interrupt', targets = {0}}).status == 'ok')\n"
         "r = wait({id})[1]\n"
         "assert(r.status == 'error' and r.value.message:find('interrupted'), r.status)\n"
         "r = call(0, {op = 'exec', code = 'return engine.id'})\n"
         "assert(r.value.r[1] == 0)");
  lua_close(L);
}

/*
** The tuple space (a memory store here): an engine's blocked take gets
** the tuple another engine puts out; patterns with ANY and types; an
** interrupted take leaves the next tuple to the next taker; bad patterns
** are refused; engines may use no other control op.
*/
Test(cluster, tuple_space_between_engines) {
  lua_State *L = client();
  lua_ok(L,
         "local waiting = conn:submit(0, {op = 'exec', code = [[\n"
         "  local t = tuples:take{'job', tuples.type 'integer', tuples.ANY}\n"
         "  return t[2], t[3].x]]})\n"
         "local r = call(1, {op = 'exec', code = [[\n"
         "  tuples:out{'job', 1.5, {x = 0}} tuples:out{'job', 7, {x = 3}}]]})\n"
         "assert(r.status == 'ok', r.value.message)\n"
         "r = wait({waiting})[1]\n"
         "assert(r.status == 'ok' and r.value.r[1] == 7 and r.value.r[2] == 3)\n"
         "r = call(2, {op = 'exec', code = [[\n"
         "  local a = tuples:try_read{'job', tuples.type 'float', {x = 0}}\n"
         "  local b = tuples:try_take{'job', tuples.ANY, tuples.ANY}\n"
         "  local c = tuples:try_take{'job', tuples.ANY, tuples.ANY}\n"
         "  local none, why = tuples:take({'job'}, 0.01)\n"
         "  return a[2], b[2], c, none, why, tuples:count()]]})\n"
         "assert(r.status == 'ok', r.value.message)\n"
         "local v = r.value.r\n"
         "assert(v[1] == 1.5 and v[2] == 1.5 and v[3] == nil and v[4] == nil)\n"
         "assert(v[5] == 'timeout' and v[6] == 0)\n"
         "local id = conn:submit(0, {op = 'exec', code = \"return tuples:take{'p'}\"})\n"
         "local deadline = core.now() + 10\n"
         "repeat\n"
         "  local info = ask({op = 'engines'}).value\n"
         "until info[1].running == id or core.now() > deadline\n"
         "assert(ask({op = 'interrupt', targets = {0}}).status == 'ok')\n"
         "r = wait({id})[1]\n"
         "assert(r.status == 'error' and r.value.message:find('interrupted'))\n"
         "assert(ask({op = 'ts_out', tuple = {'p'}}).status == 'ok')\n"
         "r = ask({op = 'ts_take', pattern = {'p'}})\n"
         "assert(r.status == 'ok' and r.value[1] == 'p', 'the tuple is not lost')\n"
         "r = ask({op = 'ts_take', pattern = {print}})\n"
         "assert(r.status == 'badreq' and r.value.message:find('is a function'))\n"
         "r = ask({op = 'ts_out', space = '', tuple = {}})\n"
         "assert(r.status == 'badreq' and r.value.message:find('1 to 200 bytes'))\n"
         "r = call(1, {op = 'exec', code = \"return tuples:take{tuples.type 'int'}\"})\n"
         "assert(r.status == 'error' and r.value.message:find('no type named int'))\n"
         "r = call(1, {op = 'exec', code = \"return tuples:take{{['plush.type'] = 'x'}}\"})\n"
         "assert(r.status == 'error' and r.value.message:find('BadRequest'))\n"
         "assert(r.value.message:find('type that does not exist'))\n"
         "-- a tuple that cannot travel is not counted as put out: the\n"
         "-- engine's next task is not held up waiting for it\n"
         "r = call(1, {op = 'exec', code = 'tuples:out{coroutine.create(print)}'})\n"
         "assert(r.status == 'error' and r.value.message:find('thread'))\n"
         "r = call(1, {op = 'exec', code = 'return 1'})\n"
         "assert(r.status == 'ok' and r.value.r[1] == 1)");
  lua_close(L);
}

/* A recv waiting on an engine that dies raises EngineError. */
Test(cluster, recv_from_an_engine_that_died) {
  lua_State *L = client();
  lua_ok(L,
         "ID = conn:submit(0, {op = 'exec', code = [[\n"
         "  local first = engine.recv(2)\n"
         "  local ok, e = pcall(engine.recv, 2)\n"
         "  return first, ok, e.kind, e.message]]})\n"
         "local r = call(2, {op = 'exec', code = 'engine.send(0, \"last\")'})\n"
         "assert(r.status == 'ok')");
  stop_engine(2);
  lua_ok(L,
         "local r = wait({ID})[1]\n"
         "assert(r.status == 'ok', r.value.message)\n"
         "local v = r.value.r\n"
         "assert(v[1] == 'last' and v[2] == false and v[3] == 'EngineError')\n"
         "assert(v[4]:find('engine 2 died'), v[4])");
  lua_close(L);
}

/* ---- big replies relayed while they arrive (ctl_relay.c) ---------- */

TestSuite(relay, .init = setup_relay, .fini = teardown);

/* A 3 MiB reply goes on to the client as it arrives; output of another
** engine and a control answer sent meanwhile come whole, after it. */
Test(relay, a_big_reply_arrives_whole_and_what_came_meanwhile_after_it) {
  lua_State *L = client();
  lua_ok(L,
         "local before = ask({op = 'status'}).value.relayed\n"
         "assert(call(0, {op = 'exec', code = "
         "\"big = string.rep('0123456789abcdef', 3 * 2^16)\"}).status == 'ok')\n"
         "local a = conn:submit(0, {op = 'exec', code = 'return big'})\n"
         "local b = conn:submit(1, {op = 'exec', code = "
         "'for i = 1, 3000 do print(i) end return \"printed\"'})\n"
         "local q = conn:ctrl({op = 'ids'})\n"
         "local rs, out = wait({a, b, q})\n"
         "assert(rs[1].status == 'ok')\n"
         "assert(rs[1].value.r[1] == string.rep('0123456789abcdef', 3 * 2^16))\n"
         "assert(rs[2].value.r[1] == 'printed')\n"
         "assert(#rs[3].value == 4, 'four engines')\n"
         "local text, want = {}, {}\n"
         "for _, ev in ipairs(out) do text[#text + 1] = ev.text end\n"
         "for i = 1, 3000 do want[i] = i .. '\\n' end\n"
         "assert(table.concat(text) == table.concat(want))\n"
         "assert(ask({op = 'status'}).value.relayed == before + 1)\n"
         "-- small replies are forwarded whole, as before\n"
         "assert(call(0, {op = 'exec', code = 'return #big'}).value.r[1] == 3 * 2^20)\n"
         "assert(ask({op = 'status'}).value.relayed == before + 1)");
  lua_close(L);
}

/* While a reply is relayed, the client's connection carries nothing
** else: a control answer due meanwhile waits and comes after it. */
Test(relay, a_relay_under_way_holds_back_other_frames) {
  lua_State *L = client();
  lua_State *M = client(); /* L's answers wait behind the relay */
  lua_ok(L, "A = conn:submit(3, {op = 'exec', code = 'return 1'})");
  lua_ok(M,
         "local deadline = core.now() + 10\n"
         "repeat until ask({op = 'status'}).value.relayed == 1 or core.now() > deadline\n"
         "assert(core.now() < deadline, 'the fake reply was never relayed')");
  lua_ok(L, "Q = conn:ctrl({op = 'ids'})");
  pthread_mutex_lock(&C.mu);
  C.fake_finish = 1;
  pthread_mutex_unlock(&C.mu);
  uv_async_send(&C.cmd);
  lua_ok(L,
         "local order = {}\n"
         "local deadline = core.now() + 10\n"
         "while #order < 2 do\n"
         "  assert(core.now() < deadline, 'no replies in time')\n"
         "  for _, ev in ipairs(conn:poll(1)) do\n"
         "    if ev.id == A or ev.id == Q then order[#order + 1] = ev end\n"
         "  end\n"
         "end\n"
         "assert(order[1].id == A and order[2].id == Q)\n"
         "assert(order[1].status == 'ok' and order[1].engine == 3)\n"
         "assert(order[1].value.r[1] == string.rep('x', 2 * 2^20 - 9))\n"
         "assert(#order[2].value == 4)");
  lua_close(L);
  lua_close(M);
}

/* An engine that dies mid-reply: the relayed part is voided, the task
** fails once with EngineError, and the client's connection goes on. */
Test(relay, an_engine_dying_mid_reply_fails_its_task_once) {
  lua_State *L = client();
  lua_ok(L,
         "local id = conn:submit(3, {op = 'exec', code = 'die'})\n"
         "local r = wait({id})[1]\n"
         "assert(r.status == 'engine' and r.value.kind == 'EngineError', r.status)\n"
         "assert(r.value.message:find('engine 3', 1, true), r.value.message)\n"
         "local s = ask({op = 'status'}).value\n"
         "assert(s.relayed == 1 and s.relay_void == 1)\n"
         "assert(call(0, {op = 'exec', code = 'return 41 + 1'}).value.r[1] == 42)\n"
         "assert(inbox[id] == nil, 'a second answer for the dead task')\n"
         "local ids = ask({op = 'ids'}).value\n"
         "assert(#ids == 3 and ids[3] == 2)");
  lua_close(L);
}

/* A big request goes on to its engine as it arrives, and runs whole. */
Test(relay, a_big_request_is_relayed_to_its_engine) {
  lua_State *L = client();
  lua_ok(L,
         "local before = ask({op = 'status'}).value.relayed\n"
         "local s = string.rep('abc', 2^20)\n"
         "assert(call(1, {op = 'push', ns = {x = s}}).status == 'ok')\n"
         "assert(ask({op = 'status'}).value.relayed == before + 1)\n"
         "assert(call(1, {op = 'exec', code = 'return #x, x:sub(-4)'}).value.r[2] == 'cabc')\n"
         "assert(call(1, {op = 'exec', code = 'return x'}).value.r[1] == s)\n"
         "assert(ask({op = 'status'}).value.relayed == before + 2)");
  lua_close(L);
}

/* A client that leaves mid-request: the engine never runs the voided
** request, and goes on serving the others. */
Test(relay, a_client_leaving_mid_request_runs_nothing) {
  lua_State *L = client();
  lua_ok(L,
         "assert(call(0, {op = 'exec', code = 'x = \"before\"'}).status == 'ok')\n"
         "BEFORE = ask({op = 'status'}).value");
  pthread_mutex_lock(&C.mu);
  C.fakec_push = 1;
  pthread_mutex_unlock(&C.mu);
  uv_async_send(&C.cmd);
  lua_ok(L,
         "local deadline = core.now() + 10\n"
         "local s\n"
         "repeat s = ask({op = 'status'}).value\n"
         "until s.clients == BEFORE.clients - 1 or core.now() > deadline\n"
         "assert(core.now() < deadline, 'the fake client never left')\n"
         "assert(s.relayed == BEFORE.relayed + 1 and s.relay_void == BEFORE.relay_void + 1)\n"
         "assert(s.pending == 0, 'the dead request is no task')\n"
         "assert(call(0, {op = 'exec', code = 'return x'}).value.r[1] == 'before')");
  lua_close(L);
}

/* Big replies are kept within a sixteenth of the store's budget (32 MiB),
** counted in the blocks they hold (a 10 MiB reply: 12 MiB): a third one
** displaces the first (which then says "evicted", where an id never
** used says "no result"); the newer two stay. */
Test(relay, the_store_keeps_the_newest_big_replies) {
  lua_State *L = client();
  lua_ok(L,
         "assert(call(0, {op = 'exec', code = \"s = string.rep('q', 10 * 2^20)\"}).status == 'ok')\n"
         "local ids = {}\n"
         "for i = 1, 3 do\n"
         "  local r = call(0, {op = 'exec', code = 'return s'})\n"
         "  assert(r.status == 'ok' and #r.value.r[1] == 10 * 2^20)\n"
         "  ids[i] = r.id\n"
         "end\n"
         "local r1 = ask({op = 'result', id = ids[1]})\n"
         "assert(r1.status == 'badreq' and r1.value.message == 'the result of task ' .. ids[1]\n"
         "  .. ' was evicted from the store (its size bound, or plush results prune)', r1.value.message)\n"
         "assert(ask({op = 'result', id = ids[3] + 1000}).value.message == 'no result for task ' .. ids[3] + 1000)\n"
         "for i = 2, 3 do\n"
         "  local r = ask({op = 'result', id = ids[i]})\n"
         "  assert(r.status == 'ok' and r.value.r[1] == string.rep('q', 10 * 2^20))\n"
         "end\n"
         "local st = ask({op = 'status'}).value\n"
         "assert(st.stored_bytes >= 24 * 2^20 and st.stored_bytes < 32 * 2^20, st.stored_bytes)");
  lua_close(L);
}
