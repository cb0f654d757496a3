/*
** test_lua_core.c — the plush.core Lua module against a fake controller.
**
** The fake controller runs on its own libuv loop in a thread of the test
** process and speaks the real handshake and frames (conn.c on both ends):
**   - every new client gets WELCOME {id = 7};
**   - a REQ is echoed as a REPLY (status OK, same id and payload, engine =
**     the target, 0 for balanced), except for these engines:
**       95   raises SIGINT in the process 50 ms later, answers nothing
**       96   sends an EVENT with the request's payload, then the REPLY
**       98   replies with an undecodable payload
**       99   sends two OUTPUT frames (stdout, stderr), then closes
**       100+s replies with status s
**   - a CTRL is echoed as a CTRL_REPLY.
** It records every REQ header it receives, so tests can check flags,
** targets and timeouts, and that a refused request sent nothing.
** Lua snippets synchronise on events (replies, closes), never on sleeps.
*/
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "conn.h"
#include "lua_core.h"
#include "plush.h"

#define KEYHEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define BADKEY "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define MAXREQ 256
#define MAXCONN 64

typedef struct fake {
  uv_loop_t loop;
  uv_tcp_t server;
  uv_async_t stop;
  pthread_t thread;
  int port;
  uint8_t key[PLUSH_KEY_SIZE];
  plush_conn *conns[MAXCONN];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int nreq;
  plush_hdr reqs[MAXREQ];
} fake;

static fake F;

#define FLOOD 5000 /* output frames engine 94 sends before its reply */

/* ------------------------------------------------------------------ */
/* The fake controller (runs in its thread). */

static void f_ready(plush_conn *c) {
  /* MessagePack {id = 7}: fixmap(1), fixstr "id", fixint 7. */
  static const char welcome[] = {(char)0x81, (char)0xa2, 'i', 'd', 7};
  plush_hdr h = {0};
  h.type = PLUSH_T_WELCOME;
  plush_conn_write(c, &h, welcome, sizeof welcome);
}

static void raiseint(uv_timer_t *t) {
  kill(getpid(), SIGINT);
  uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static void answer(plush_conn *c, plush_frame *f) {
  plush_hdr h = f->hdr;
  uint32_t e = f->hdr.engine;
  h.type = PLUSH_T_REPLY;
  h.flags = 0;
  h.status = PLUSH_S_OK;
  h.aux = 0;
  h.engine = e == PLUSH_ANY ? 0 : e;
  if (e == 95) {
    uv_timer_t *t = malloc(sizeof *t);
    uv_timer_init(&F.loop, t);
    uv_timer_start(t, raiseint, 50, 0);
  } else if (e == 96) {
    plush_hdr ev = {0};
    ev.type = PLUSH_T_EVENT;
    plush_conn_write_hdr_frame(c, &ev, f);
    plush_conn_write_hdr_frame(c, &h, f);
  } else if (e == 94) { /* a flood of output, a note, the reply */
    plush_hdr o = h;
    char line[32];
    o.type = PLUSH_T_OUTPUT;
    o.aux = PLUSH_STREAM_STDOUT;
    for (int i = 1; i <= FLOOD; i++) {
      int n = snprintf(line, sizeof line, "line %d\n", i);
      plush_conn_write(c, &o, line, (size_t)n);
    }
    o.aux = PLUSH_STREAM_NOTE;
    plush_conn_write(c, &o, "caught the interrupt and went on", 32);
    plush_conn_write_hdr_frame(c, &h, f);
  } else if (e == 98) {
    plush_conn_write(c, &h, "\xc1", 1);
  } else if (e == 99) {
    plush_hdr o = h;
    o.type = PLUSH_T_OUTPUT;
    o.aux = PLUSH_STREAM_STDOUT;
    plush_conn_write(c, &o, "hello\n", 6);
    o.aux = PLUSH_STREAM_STDERR;
    plush_conn_write(c, &o, "oops", 4);
    plush_conn_close(c, 0, "bye");
  } else if (e >= 100 && e < 110) {
    h.status = (uint16_t)(e - 100);
    plush_conn_write_hdr_frame(c, &h, f);
  } else {
    plush_conn_write_hdr_frame(c, &h, f);
  }
}

static void f_frame(plush_conn *c, plush_frame *f) {
  if (f->hdr.type == PLUSH_T_REQ) {
    pthread_mutex_lock(&F.mu);
    if (F.nreq < MAXREQ) F.reqs[F.nreq] = f->hdr;
    F.nreq++;
    pthread_cond_broadcast(&F.cv);
    pthread_mutex_unlock(&F.mu);
    answer(c, f);
  } else if (f->hdr.type == PLUSH_T_CTRL) {
    plush_hdr h = f->hdr;
    h.type = PLUSH_T_CTRL_REPLY;
    h.status = PLUSH_S_OK;
    plush_conn_write_hdr_frame(c, &h, f);
  }
  plush_frame_unref(f);
}

static void f_close(plush_conn *c, int reason, const char *msg) {
  int i;
  (void)reason, (void)msg;
  for (i = 0; i < MAXCONN; i++)
    if (F.conns[i] == c) F.conns[i] = NULL;
}

static const plush_conn_cbs fcbs = {f_ready, f_frame, NULL, f_close, NULL, NULL};

static void f_accept(uv_stream_t *s, int status) {
  plush_conn_opts o = {0};
  plush_conn *c;
  int i;
  if (status < 0) return;
  o.key = F.key;
  if (plush_conn_accept(s, &o, &fcbs, NULL, &c) < 0) return;
  for (i = 0; i < MAXCONN; i++)
    if (F.conns[i] == NULL) {
      F.conns[i] = c;
      break;
    }
}

static void f_stop(uv_async_t *a) {
  int i;
  uv_close((uv_handle_t *)&F.server, NULL);
  for (i = 0; i < MAXCONN; i++)
    if (F.conns[i] != NULL) plush_conn_close(F.conns[i], PLUSH_ECLOSED, "stop");
  uv_close((uv_handle_t *)a, NULL);
}

static void *f_main(void *arg) {
  (void)arg;
  uv_run(&F.loop, UV_RUN_DEFAULT);
  return NULL;
}

static void fake_start(void) {
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  memset(&F, 0, sizeof F);
  pthread_mutex_init(&F.mu, NULL);
  pthread_cond_init(&F.cv, NULL);
  cr_assert_eq(plush_key_parse(KEYHEX, F.key), 0);
  cr_assert_eq(uv_loop_init(&F.loop), 0);
  uv_tcp_init(&F.loop, &F.server);
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_tcp_bind(&F.server, (struct sockaddr *)&a, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)&F.server, 64, f_accept), 0);
  uv_tcp_getsockname(&F.server, (struct sockaddr *)&ss, &len);
  F.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  uv_async_init(&F.loop, &F.stop, f_stop);
  cr_assert_eq(pthread_create(&F.thread, NULL, f_main, NULL), 0);
}

static void fake_stop(void) {
  uv_async_send(&F.stop);
  pthread_join(F.thread, NULL);
  cr_assert_eq(uv_loop_close(&F.loop), 0);
}

/* ------------------------------------------------------------------ */
/* Lua side: the state, helpers the snippets call, the runner. */

static lua_State *L;

static int server_reqs(lua_State *L1) {
  pthread_mutex_lock(&F.mu);
  lua_pushinteger(L1, F.nreq);
  pthread_mutex_unlock(&F.mu);
  return 1;
}

/* server_req(i): the i-th REQ header the server received (1-based). */
static int server_req(lua_State *L1) {
  lua_Integer i = luaL_checkinteger(L1, 1);
  plush_hdr h;
  pthread_mutex_lock(&F.mu);
  luaL_argcheck(L1, i >= 1 && i <= F.nreq && i <= MAXREQ, 1, "no such REQ");
  h = F.reqs[i - 1];
  pthread_mutex_unlock(&F.mu);
  lua_createtable(L1, 0, 5);
  lua_pushinteger(L1, h.flags);
  lua_setfield(L1, -2, "flags");
  lua_pushinteger(L1, h.engine);
  lua_setfield(L1, -2, "engine");
  lua_pushinteger(L1, h.aux);
  lua_setfield(L1, -2, "aux");
  lua_pushinteger(L1, (lua_Integer)h.id);
  lua_setfield(L1, -2, "id");
  lua_pushinteger(L1, h.len);
  lua_setfield(L1, -2, "len");
  return 1;
}

/* server_wait(n): true once the server has received n REQs (10 s max). */
static int server_wait(lua_State *L1) {
  lua_Integer n = luaL_checkinteger(L1, 1);
  struct timespec dl;
  int r = 0;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 10;
  pthread_mutex_lock(&F.mu);
  while (F.nreq < n && r == 0) r = pthread_cond_timedwait(&F.cv, &F.mu, &dl);
  lua_pushboolean(L1, F.nreq >= n);
  pthread_mutex_unlock(&F.mu);
  return 1;
}

/* A port on which nothing listens: bound, then released. */
static int freeport(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), port;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  getsockname(fd, (struct sockaddr *)&a, &len);
  port = ntohs(a.sin_port);
  close(fd);
  return port;
}

/* A port that accepts TCP (kernel backlog) but never says HELLO. */
static int mutefd = -1;

static int muteport(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  mutefd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(mutefd, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(listen(mutefd, 8), 0);
  getsockname(mutefd, (struct sockaddr *)&a, &len);
  return ntohs(a.sin_port);
}

static const char prelude[] =
    "core = require 'plush.core'\n"
    "function connect(key) return core.connect('127.0.0.1', PORT, key or KEY) end\n"
    /* Exact equality: subtypes, float bits, any keys, nesting. */
    "function deepeq(a, b)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) == 'number' then\n"
    "    if math.type(a) ~= math.type(b) then return false end\n"
    "    if math.type(a) == 'float' then\n"
    "      return string.pack('<d', a) == string.pack('<d', b) end\n"
    "    return a == b\n"
    "  end\n"
    "  if type(a) ~= 'table' then return a == b end\n"
    "  for k, v in pairs(a) do if not deepeq(v, b[k]) then return false end end\n"
    "  for k in pairs(b) do if a[k] == nil then return false end end\n"
    "  return true\n"
    "end\n"
    /* Polls until pred(event); returns it and every event seen so far. */
    "function collect(c, pred, timeout)\n"
    "  local deadline, all = core.now() + (timeout or 20), {}\n"
    "  while true do\n"
    "    local left = deadline - core.now()\n"
    "    assert(left > 0, 'timed out waiting for an event')\n"
    "    for _, ev in ipairs(c:poll(left)) do\n"
    "      all[#all + 1] = ev\n"
    "      if pred(ev) then return ev, all end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "function reply_for(c, id)\n"
    "  return collect(c, function(e) return e.kind == 'reply' and e.id == id end)\n"
    "end\n";

static void run(const char *code) {
  if (luaL_loadbuffer(L, code, strlen(code), "=test") != LUA_OK ||
      lua_pcall(L, 0, 0, 0) != LUA_OK) {
    const char *m = lua_tostring(L, -1);
    cr_assert_fail("lua: %s", m ? m : "(error object)");
  }
}

static void setup(void) {
  fake_start();
  L = luaL_newstate();
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_plush_core);
  lua_setfield(L, -2, "plush.core");
  lua_pop(L, 1);
  lua_pushinteger(L, F.port);
  lua_setglobal(L, "PORT");
  lua_pushstring(L, KEYHEX);
  lua_setglobal(L, "KEY");
  lua_pushstring(L, BADKEY);
  lua_setglobal(L, "BADKEY");
  lua_register(L, "server_reqs", server_reqs);
  lua_register(L, "server_req", server_req);
  lua_register(L, "server_wait", server_wait);
  run(prelude);
}

static void teardown(void) {
  lua_close(L); /* closes every conn still open (__gc) */
  fake_stop();
  if (mutefd >= 0) close(mutefd);
  mutefd = -1;
}

/* No .timeout: Criterion 2.4's runner leaks its timeout bookkeeping (an
** ASan build then fails); ctest's TIMEOUT bounds the run and every wait
** in the snippets has its own deadline. */
TestSuite(lua_core, .init = setup, .fini = teardown);

/* ------------------------------------------------------------------ */
/* Connecting and closing. */

Test(lua_core, connect_gets_client_id_and_closes_idempotently) {
  run("local c = connect()\n"
      "assert(c:cid() == 7 and math.type(c:cid()) == 'integer')\n"
      "assert(c:connected() == true)\n"
      "assert(tostring(c):find('127.0.0.1:' .. PORT, 1, true))\n"
      "c:close()\n"
      "assert(c:connected() == false)\n"
      "c:close()\n"
      "local id, err, name = c:submit(3, {})\n"
      "assert(id == nil and name == 'ECLOSED', name)\n"
      "assert(err:find('ECLOSED: not connected: ', 1, true) == 1, err)\n"
      "assert(#c:poll(0) == 0 and #c:poll() == 0)\n");
}

Test(lua_core, wrong_key_is_refused) {
  run("local c, err, name = connect(BADKEY)\n"
      "assert(c == nil and name == 'EAUTH', name)\n"
      "assert(err:find('EAUTH: authentication refused by 127.0.0.1:' .. PORT, 1, "
      "true) == 1, err)\n"
      "assert(not err:find('\\n'), err)\n");
}

Test(lua_core, closed_port_cannot_connect) {
  char code[512];
  int p = freeport();
  snprintf(code, sizeof code,
           "local c, err, name = core.connect('127.0.0.1', %d, KEY)\n"
           "assert(c == nil and name == 'ECONNREFUSED', name)\n"
           "assert(err:find('ECONNREFUSED: cannot connect to 127.0.0.1:%d: ', 1, "
           "true) == 1, err)\n",
           p, p);
  run(code);
}

Test(lua_core, silent_server_times_out) {
  char code[512];
  int p = muteport();
  snprintf(code, sizeof code,
           "local t0 = core.now()\n"
           "local c, err, name = core.connect('127.0.0.1', %d, KEY, 0.3)\n"
           "assert(c == nil and name == 'ETIMEDOUT', name)\n"
           "assert(err:find('ETIMEDOUT: timed out connecting to 127.0.0.1:%d', 1, "
           "true) == 1, err)\n"
           "assert(core.now() - t0 < 5)\n",
           p, p);
  run(code);
}

Test(lua_core, connect_checks_its_arguments) {
  run("local ok, err = pcall(core.connect, '127.0.0.1', PORT, 'zz')\n"
      "assert(err:find('bad argument #3', 1, true), err)\n"
      "ok, err = pcall(core.connect, '127.0.0.1', 70000, KEY)\n"
      "assert(err:find('bad argument #2', 1, true), err)\n"
      "ok, err = pcall(core.connect, '127.0.0.1')\n"
      "assert(err:find('bad argument #2', 1, true), err)\n");
}

Test(lua_core, close_and_gc_release_everything) {
  run("do local c <close> = connect(); assert(c:connected()) end\n"
      "local c = connect(); c:submit(3, {x = 1}); c = nil\n"
      "collectgarbage(); collectgarbage()\n"
      "assert(server_wait(1))\n");
}

/* ------------------------------------------------------------------ */
/* Requests and replies. */

Test(lua_core, submit_round_trips_exact_values) {
  run("local c = connect()\n"
      "local msg = {op = 'exec', code = 'return 1', n = 42, f = 0.1,\n"
      "  neg = -0.0, inf = math.huge, big = math.maxinteger,\n"
      "  min = math.mininteger, odd = (1 << 53) + 1, s = 'a\\0b\\255',\n"
      "  nested = {1, 2, {x = {y = 'z'}}}, keys = {[1.5] = 'f', [true] = false}}\n"
      "local id = c:submit(3, msg)\n"
      "assert(math.type(id) == 'integer' and id >> 32 == 7, id)\n"
      "local ev = reply_for(c, id)\n"
      "assert(ev.kind == 'reply' and ev.engine == 3 and ev.status == 'ok')\n"
      "assert(deepeq(ev.value, msg))\n"
      "local h = server_req(server_reqs())\n"
      "assert(h.flags == 0 and h.engine == 3 and h.aux == 0 and h.id == id)\n");
}

Test(lua_core, submit_to_several_engines_encodes_once) {
  run("local c = connect()\n"
      "local ids = c:submit({0, 1, 2}, {op = 'x', v = {1, 2, 3}})\n"
      "assert(#ids == 3)\n"
      "for i, id in ipairs(ids) do\n"
      "  assert(id >> 32 == 7)\n"
      "  if i > 1 then assert(id == ids[i - 1] + 1) end\n"
      "end\n"
      "local got = {}\n"
      "collect(c, function(e)\n"
      "  if e.kind == 'reply' then got[e.id] = e end\n"
      "  return got[ids[1]] and got[ids[2]] and got[ids[3]]\n"
      "end)\n"
      "for i, id in ipairs(ids) do\n"
      "  assert(got[id].engine == i - 1 and got[id].value.v[3] == 3)\n"
      "end\n"
      "local n = server_reqs()\n"
      "for i = 0, 2 do assert(server_req(n - i).len == server_req(n).len) end\n"
      "assert(#c:submit({}, {}) == 0)\n");
}

Test(lua_core, balanced_submit_sets_flag_and_timeout) {
  run("local c = connect()\n"
      "local id = c:submit(nil, {op = 'b'}, 1.5)\n"
      "local ev = reply_for(c, id)\n"
      "assert(ev.status == 'ok' and ev.value.op == 'b')\n"
      "local h = server_req(server_reqs())\n"
      "assert(h.flags == 1 and h.engine == 0xffffffff, h.flags)\n"
      "assert(h.aux == 1500 and h.id == id, h.aux)\n");
}

Test(lua_core, unserialisable_request_sends_nothing) {
  run("local c = connect()\n"
      "local co = coroutine.create(function() end)\n"
      "local f = function() return co end\n"
      "local n0 = server_reqs()\n"
      "local ok, err = pcall(function() return c:submit(3, {f = f}) end)\n"
      "assert(not ok)\n"
      "assert(err:find('cannot serialise request.f<upvalue co>: thread', 1, "
      "true), err)\n"
      "assert(err:find('^test:%d+: '), err)\n"
      "ok, err = pcall(function() return c:submit({0, 1}, {co}) end)\n"
      "assert(not ok and err:find('thread', 1, true), err)\n"
      "ok, err = pcall(function() return c:ctrl{co} end)\n"
      "assert(not ok and err:find('thread', 1, true), err)\n"
      "local id = c:submit(4, {op = 'after'})\n"
      "reply_for(c, id)\n"
      "assert(server_reqs() == n0 + 1)\n"
      "assert(server_req(n0 + 1).id == id)\n");
}

Test(lua_core, submit_checks_its_arguments) {
  run("local c = connect()\n"
      "local ok, err = pcall(function() return c:submit('x', {}) end)\n"
      "assert(err:find(\"bad argument #1 to 'submit'\", 1, true), err)\n"
      "ok, err = pcall(function() return c:submit({1, 'x'}, {}) end)\n"
      "assert(err:find(\"bad argument #1 to 'submit'\", 1, true), err)\n"
      "ok, err = pcall(function() return c:submit(-1, {}) end)\n"
      "assert(err:find('out of range', 1, true), err)\n"
      "ok, err = pcall(function() return c:submit(1) end)\n"
      "assert(err:find(\"bad argument #2 to 'submit'\", 1, true), err)\n"
      "ok, err = pcall(function() return c:submit(1, {}, -2) end)\n"
      "assert(err:find(\"bad argument #3 to 'submit'\", 1, true), err)\n"
      "assert(server_reqs() == 0)\n");
}

Test(lua_core, ctrl_shares_the_id_space) {
  run("local c = connect()\n"
      "local a = c:submit(1, {})\n"
      "local id = c:ctrl{op = 'ids'}\n"
      "assert(id == a + 1 and id >> 32 == 7)\n"
      "local ev = collect(c, function(e) return e.kind == 'ctrl' and e.id == id end)\n"
      "assert(ev.status == 'ok' and ev.value.op == 'ids' and ev.engine == nil)\n");
}

Test(lua_core, statuses_map_to_names) {
  run("local c = connect()\n"
      "local names = {'ok', 'error', 'engine', 'timeout', 'badreq'}\n"
      "for s = 0, 4 do\n"
      "  local ev = reply_for(c, c:submit(100 + s, {kind = 'E'}))\n"
      "  assert(ev.status == names[s + 1], ev.status)\n"
      "  assert(ev.value.kind == 'E' and ev.engine == 100 + s)\n"
      "end\n");
}

Test(lua_core, undecodable_reply_becomes_an_error_reply) {
  run("local c = connect()\n"
      "local id = c:submit(98, {})\n"
      "local ev = reply_for(c, id)\n"
      "assert(ev.status == 'error' and ev.engine == 98)\n"
      "assert(ev.value.kind == 'RemoteError')\n"
      "assert(ev.value.message:find('^undecodable reply: '), ev.value.message)\n");
}

Test(lua_core, events_arrive_before_the_reply) {
  run("local c = connect()\n"
      "local id = c:submit(96, {event = 'engine_up', id = 4})\n"
      "local ev, all = reply_for(c, id)\n"
      "assert(#all == 2 and all[1].kind == 'event', #all)\n"
      "assert(all[1].value.event == 'engine_up' and all[1].value.id == 4)\n");
}

Test(lua_core, output_then_close_by_peer) {
  run("local c = connect()\n"
      "local id = c:submit(99, {op = 'bye'})\n"
      "local ev, all = collect(c, function(e) return e.kind == 'closed' end)\n"
      "assert(#all == 3, #all)\n"
      "local o1, o2 = all[1], all[2]\n"
      "assert(o1.kind == 'output' and o1.id == id and o1.engine == 99)\n"
      "assert(o1.stream == 1 and o1.text == 'hello\\n')\n"
      "assert(o2.kind == 'output' and o2.stream == 2 and o2.text == 'oops')\n"
      "assert(type(ev.message) == 'string' and #ev.message > 0)\n"
      "assert(c:connected() == false)\n"
      "local id, err, name = c:submit(3, {})\n"
      "assert(id == nil and name == 'ECLOSED', name)\n"
      "assert(err == 'ECLOSED: not connected: ' .. ev.message, err)\n"
      "id, err, name = c:ctrl{}\n"
      "assert(id == nil and name == 'ECLOSED' and err:find('not connected', 1, true), err)\n"
      "assert(#c:poll(0) == 0)\n"
      "assert(#c:poll() == 0)\n"
      "c:close()\n");
}

/*
** A flood of output is handed over a few hundred events at a time, so
** that the caller gets back to its keyboard and Ctrl-C between them.
*/
Test(lua_core, poll_hands_over_a_flood_in_bounded_turns) {
  run("local c = connect()\n"
      "local id = c:submit(94, {op = 'flood'})\n"
      "local most, lines, note, done = 0, 0, nil, false\n"
      "local deadline = core.now() + 20\n"
      "while not done do\n"
      "  assert(core.now() < deadline, 'timed out')\n"
      "  local evs = c:poll(5)\n"
      "  if #evs > most then most = #evs end\n"
      "  for _, ev in ipairs(evs) do\n"
      "    if ev.kind == 'output' and ev.stream == 1 then lines = lines + 1\n"
      "    elseif ev.kind == 'output' and ev.stream == 3 then note = ev.text\n"
      "    elseif ev.kind == 'reply' then done = ev.id == id end\n"
      "  end\n"
      "end\n"
      "assert(lines == 5000, lines)\n"
      "assert(most <= 256, most)\n"
      "assert(note == 'caught the interrupt and went on', note)\n");
}

/*
** conn:mute drops a task's output, queued or still to come, and counts
** it; its notes still come through.
*/
Test(lua_core, mute_drops_and_counts_a_tasks_output) {
  run("local c = connect()\n"
      "local id = c:submit(94, {op = 'flood'})\n"
      "local seen, bytes = 0, 0\n"
      "local deadline = core.now() + 20\n"
      "while seen == 0 do\n"
      "  assert(core.now() < deadline, 'timed out')\n"
      "  for _, e in ipairs(c:poll(5)) do\n"
      "    if e.kind == 'output' then seen = seen + 1 bytes = bytes + #e.text end\n"
      "  end\n"
      "end\n"
      "assert(seen < 5000, 'the flood came in one poll')\n"
      "c:mute(id)\n"
      "local _, all = reply_for(c, id)\n"
      "local notes = 0\n"
      "for _, e in ipairs(all) do\n"
      "  assert(e.kind ~= 'output' or e.stream == 3, 'output after mute')\n"
      "  if e.kind == 'output' then notes = notes + 1 end\n"
      "end\n"
      "assert(notes == 1, notes)\n"
      "local lines, dropped = c:unmute(id)\n"
      "assert(seen + lines == 5000, seen + lines)\n"
      "local total = 0\n"
      "for i = 1, 5000 do total = total + #('line ' .. i .. '\\n') end\n"
      "assert(bytes + dropped == total, bytes + dropped)\n"
      "assert(select('#', c:unmute(id)) == 2 and c:unmute(id) == 0)\n");
}

/* A write to a controller that is gone must fail, not kill the process:
** loading the module ignores SIGPIPE, unless the program handles it. */
Test(lua_core, loading_the_module_ignores_sigpipe) {
  struct sigaction sa;
  cr_assert_eq(sigaction(SIGPIPE, NULL, &sa), 0);
  cr_assert(sa.sa_handler == SIG_IGN, "SIGPIPE not ignored after require");
}

Test(lua_core, poll_zero_just_looks) {
  run("local c = connect()\n"
      "local t0 = core.now()\n"
      "assert(#c:poll(0) == 0)\n"
      "assert(#c:poll(0.05) == 0)\n"
      "assert(core.now() - t0 >= 0.04)\n");
}

Test(lua_core, large_payloads_go_out_and_come_back) {
  run("local c = connect()\n"
      "local big = string.rep('0123456789abcdef', 2 * 1024 * 1024) .. 'end'\n"
      "local id = c:submit(3, {s = big})\n"
      "local ev = reply_for(c, id)\n"
      "assert(ev.value.s == big)\n"
      "local ids = c:submit({1, 2}, {s = big})\n"
      "local got = 0\n"
      "collect(c, function(e)\n"
      "  if e.kind == 'reply' then assert(e.value.s == big); got = got + 1 end\n"
      "  return got == 2\n"
      "end)\n"
      /* close() flushes what is still queued */
      "local n = server_reqs()\n"
      "c:submit(5, {s = big})\n"
      "c:close()\n"
      "assert(server_wait(n + 1))\n");
}

Test(lua_core, sigint_wakes_a_blocked_poll) {
  run("assert(core.catch_sigint(true) == false)\n"
      "assert(core.sigint() == false)\n"
      "local c = connect()\n"
      "local t0 = core.now()\n"
      "c:submit(95, {op = 'sigint'})\n"
      "collect(c, function(e) return e.kind == 'sigint' end)\n"
      "assert(core.now() - t0 < 10)\n"
      "assert(core.sigint() == false)\n" /* poll consumed it */
      "assert(core.kill(core.getpid(), 'INT') == true)\n"
      "local deadline = core.now() + 10\n"
      "while not core.sigint() do assert(core.now() < deadline) end\n"
      "assert(core.catch_sigint(false) == true)\n");
}

/* ------------------------------------------------------------------ */
/* Codec, time, processes. */

Test(lua_core, encode_decode_round_trip) {
  run("local t = {}\n"
      "local v = {1, 2.5, 'x', {a = {b = true}}, [10] = -0.0, s1 = t, s2 = t}\n"
      "local s = core.encode(v)\n"
      "assert(type(s) == 'string')\n"
      "local d = core.decode(s)\n"
      "assert(deepeq(d, v) and d.s1 == d.s2)\n"
      "assert(core.decode(core.encode(nil)) == nil)\n"
      "assert(math.type(core.decode(core.encode(3))) == 'integer')\n"
      "local ok, err = pcall(core.encode, {x = coroutine.create(print)}, 'args')\n"
      "assert(not ok and err:find('cannot serialise args.x: thread', 1, true), err)\n"
      "assert(not pcall(core.decode, '\\xc1'))\n"
      "ok, err = pcall(core.decode, core.encode(1) .. 'x')\n"
      "assert(not ok and err:find('trailing', 1, true), err)\n");
}

Test(lua_core, slices_encode_as_the_items_they_view) {
  run("local t = {}\n"
      "for i = 1, 1000 do t[i] = i % 7 == 0 and i / 7 or i end\n"
      "local s = core.slice(t, 11, 800)\n"
      "assert(core.encode(s) == core.encode(table.move(t, 11, 800, 1, {})))\n"
      "local d = core.decode(core.encode(s))\n"
      "assert(#d == 790 and d[1] == 11 and d[4] == 2.0 and d[790] == 800)\n"
      "assert(core.encode(core.slice(t, 5, 4)) == '\\x90')\n"
      "assert(deepeq(core.decode(core.encode({x = core.slice(t, 1, 2)})), {x = {1, 2}}))\n"
      "assert(not pcall(core.slice, 'not a table', 1, 2))\n"
      "assert(not pcall(core.slice, t, 1))\n");
}

Test(lua_core, clocks) {
  run("local a = core.now(); local b = core.now()\n"
      "assert(math.type(a) == 'float' and b >= a)\n"
      "assert(core.time() > 1.6e9 and math.abs(core.time() - os.time()) < 2)\n");
}

Test(lua_core, small_helpers) {
  char code[256];
  snprintf(code, sizeof code, "assert(core.getpid() == %d)\n", (int)getpid());
  run(code);
  run("assert(type(core.hostname()) == 'string' and #core.hostname() > 0)\n"
      "assert(math.type(core.ncpu()) == 'integer' and core.ncpu() >= 1)\n"
      "assert(type(core.isatty(0)) == 'boolean')\n"
      "local d = core.bindirs()\n"
      "assert(type(d) == 'table' and #d >= 1)\n"
      "for _, x in ipairs(d) do assert(type(x) == 'string') end\n"
      "local t0 = core.now(); core.sleep(0.01)\n"
      "assert(core.now() - t0 >= 0.009)\n");
}

Test(lua_core, spawn_and_wait_for_exit_codes) {
  run("local pid = core.spawn{'/bin/sh', '-c', 'exit 3'}\n"
      "assert(math.type(pid) == 'integer' and pid > 0)\n"
      "assert(core.wait(pid, 10) == 3)\n"
      "pid = core.spawn{'sh', '-c', 'kill -9 $$'}\n"
      "assert(core.wait(pid) == 137)\n"
      "local ok, err = pcall(core.spawn, {'plush-no-such-program'})\n"
      "assert(not ok)\n"
      "assert(err:find('cannot run plush-no-such-program: No such file or "
      "directory', 1, true), err)\n"
      "assert(not pcall(core.spawn, {}))\n"
      "assert(not pcall(core.spawn, {'sh'}, {stdout = 5}))\n");
}

Test(lua_core, kill_and_alive) {
  run("local pid = core.spawn{'sleep', '30'}\n"
      "assert(core.alive(pid) == true)\n"
      "local r, why = core.wait(pid, 0)\n"
      "assert(r == nil and why == 'timeout')\n"
      "assert(core.kill(pid, 'KILL') == true)\n"
      "local deadline = core.now() + 10\n"
      "while core.alive(pid) do assert(core.now() < deadline) end\n"
      "assert(core.wait(pid, 1) == 137)\n" /* kept when alive() reaped */
      "assert(core.alive(pid) == false)\n"
      "local ok, msg = core.kill(pid, 'TERM')\n"
      "assert(ok == nil and type(msg) == 'string')\n"
      "assert(not pcall(core.kill, pid, 'NOPE'))\n"
      "assert(not pcall(core.kill, 0))\n"
      "pid = core.spawn{'sleep', '30'}\n"
      "assert(core.kill(pid, 15))\n"
      "assert(core.wait(pid, 10) == 128 + 15)\n"
      "assert(core.alive(1) == true)\n");
}

Test(lua_core, spawn_options) {
  char code[2048], dir[] = "/tmp/plush-test-XXXXXX";
  int fd = open("/dev/null", O_RDONLY); /* inheritable: must not leak */
  cr_assert(fd >= 3);
  cr_assert_not_null(mkdtemp(dir));
  snprintf(code, sizeof code,
           "local dir, fd = '%s', %d\n"
           "local function slurp(p)\n"
           "  local f = assert(io.open(p)); local s = f:read('a'); f:close()\n"
           "  return s\n"
           "end\n"
           "local script = 'echo \"$PLUSH_T1\"; echo err >&2; read x && exit 4;'\n"
           "  .. '[ -e /proc/$$/fd/' .. fd .. ' ] && exit 5;'\n"
           "  .. '[ \"$(cut -d\" \" -f6 /proc/$$/stat)\" = \"$$\" ] && exit 6;'\n"
           "  .. 'exit 0'\n"
           "local pid = core.spawn({'sh', '-c', script}, {stdout = dir .. '/out',\n"
           "  stderr = dir .. '/err', env = {PLUSH_T1 = 'bar', N = 1}})\n"
           "assert(core.wait(pid, 10) == 0)\n"
           "assert(slurp(dir .. '/out') == 'bar\\n')\n"
           "assert(slurp(dir .. '/err') == 'err\\n')\n"
           /* appended, not truncated */
           "pid = core.spawn({'sh', '-c', 'echo again'}, {stdout = dir .. '/out'})\n"
           "assert(core.wait(pid, 10) == 0)\n"
           "assert(slurp(dir .. '/out') == 'bar\\nagain\\n')\n"
           /* detached: its own session, output to /dev/null by default */
           "pid = core.spawn({'sh', '-c',\n"
           "  '[ \"$(cut -d\" \" -f6 /proc/$$/stat)\" = \"$$\" ]'}, {detach = true})\n"
           "assert(core.wait(pid, 10) == 0)\n"
           "os.remove(dir .. '/out'); os.remove(dir .. '/err'); os.remove(dir)\n",
           dir, fd);
  run(code);
  close(fd);
}
