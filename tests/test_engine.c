/*
** test_engine.c — the engine host against a fake controller.
**
** Each test runs a minimal controller in-process (a uv TCP server that
** accepts with plush_conn_accept and the test's key) and an engine started
** with plush_engine_start on the same loop; its Lua thread is a real
** second thread. Synchronisation is by frames only: every wait runs the
** loop until the awaited frame (or state) is there, bounded by a timer so
** that a bug fails the test instead of hanging it.
*/
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

#include "codec.h"
#include "conn.h"
#include "connfile.h"
#include "engine_host.h"
#include "plush.h"

#define WAIT 10.0 /* seconds any one wait may take */
#define MAXQ 4096

typedef struct fake {
  uv_loop_t loop;
  uv_tcp_t server, server2; /* the second: a "restarted controller" */
  int listening;            /* of server (1) and server2 (2), bits */
  uv_timer_t timer, tick;
  plush_conn *conn;         /* the engine's connection, our side */
  int port;
  uint8_t key[PLUSH_KEY_SIZE];
  lua_State *L;             /* the test's own state: encode, decode, check */
  plush_frame *q[MAXQ];     /* frames received, oldest first */
  size_t qh, qn;
  plush_engine *eng;
  int exited, status;
  char reason[256];
  int timedout, closed;
  int encrypt;              /* the fake controller asks for sealed frames */
  uint32_t id;
} fake;

static fake F;

/* Options start() adds for the engine: reconnect, file, memory_limit.
** Set before boot(); cleared by finish(). */
static plush_engine_opts extra;

/* ---- the fake controller ----------------------------------------- */

static void onframe(plush_conn *c, plush_frame *f) {
  (void)c;
  cr_assert_lt(F.qn, MAXQ, "too many frames queued");
  F.q[(F.qh + F.qn++) % MAXQ] = f;
}

static void onclose(plush_conn *c, int reason, const char *msg) {
  (void)c;
  (void)reason;
  (void)msg;
  F.conn = NULL;
  F.closed = 1;
}

static const plush_conn_cbs fakecbs = {NULL, onframe, NULL, onclose, NULL, NULL};

static void onconnect(uv_stream_t *server, int status) {
  plush_conn_opts o = {.key = F.key, .encrypt = F.encrypt};
  plush_conn *c;
  cr_assert_eq(status, 0);
  cr_assert_null(F.conn, "a second engine connected");
  cr_assert_eq(plush_conn_accept(server, &o, &fakecbs, &F, &c), 0);
  F.conn = c;
  F.closed = 0;
}

static void onexit(plush_engine *e, int status, const char *reason,
                   void *data) {
  (void)e;
  (void)data;
  F.exited = 1;
  F.status = status;
  snprintf(F.reason, sizeof F.reason, "%s", reason);
  F.eng = NULL;
}

static void ontimeout(uv_timer_t *t) {
  (void)t;
  F.timedout = 1;
}

static void ontick(uv_timer_t *t) { (void)t; }

/*
** Runs the loop until cond() holds, at most WAIT seconds. With poll set a
** 1 ms ticker keeps the loop turning, for conditions no event announces
** (a counter of the engine's).
*/
static void until(int (*cond)(void), const char *what, int poll) {
  F.timedout = 0;
  uv_timer_start(&F.timer, ontimeout, (uint64_t)(WAIT * 1000), 0);
  if (poll) uv_timer_start(&F.tick, ontick, 1, 1);
  while (!cond() && !F.timedout) uv_run(&F.loop, UV_RUN_ONCE);
  uv_timer_stop(&F.timer);
  uv_timer_stop(&F.tick);
  cr_assert(!F.timedout, "timed out waiting for %s", what);
}

static int hasframe(void) { return F.qn > 0; }
static int hasexited(void) { return F.exited; }
static int hasclosed(void) { return F.closed; }

static plush_frame *next(void) {
  plush_frame *f;
  until(hasframe, "a frame", 0);
  f = F.q[F.qh];
  F.qh = (F.qh + 1) % MAXQ;
  F.qn--;
  return f;
}

static const char *tname(int t) {
  static const char *names[] = {"?", "REGISTER", "WELCOME", "REQ", "REPLY",
                                "OUTPUT", "CTRL", "CTRL_REPLY", "INTERRUPT",
                                "PING", "PONG", "EVENT", "SHUTDOWN",
                                "STARTED", "RESTART", "RELAY_END",
                                "RECLAIM", "RECLAIMED", "MSG", "PEERS"};
  _Static_assert(sizeof names / sizeof *names == PLUSH_T__MAX,
                 "a name for every frame type");
  return t > 0 && t < PLUSH_T__MAX ? names[t] : "?";
}

/* The next frame, which must be of this type and (id != 0) for this id. */
static plush_frame *expect(int type, uint64_t id) {
  plush_frame *f = next();
  cr_assert_eq(f->hdr.type, type, "expected %s, got %s", tname(type),
               tname(f->hdr.type));
  if (id) cr_assert_eq(f->hdr.id, id, "%s for task %llu, not %llu",
                       tname(type), (unsigned long long)f->hdr.id,
                       (unsigned long long)id);
  return f;
}

/* The REPLY for id, past the notes (stream PLUSH_STREAM_NOTE) an
** interrupt may cause first: where the hook lands is a race (inside a
** coroutine whose resume catches it, the engine says so and raises again
** at the task's level). */
static plush_frame *reply_past_notes(uint64_t id) {
  for (;;) {
    plush_frame *f = next();
    if (f->hdr.type == PLUSH_T_OUTPUT && f->hdr.id == id &&
        f->hdr.aux == PLUSH_STREAM_NOTE) {
      plush_frame_unref(f);
      continue;
    }
    cr_assert_eq(f->hdr.type, PLUSH_T_REPLY, "expected REPLY, got %s",
                 tname(f->hdr.type));
    cr_assert_eq(f->hdr.id, id);
    return f;
  }
}

/* Decodes f's payload into the global `v` of the test's state. */
static void decode(plush_frame *f) {
  char err[256];
  int r = plush_decode(F.L, plush_frame_payload(f), f->hdr.len, NULL, err,
                       sizeof err);
  cr_assert_eq(r, 0, "cannot decode %s: %s", tname(f->hdr.type), err);
  lua_setglobal(F.L, "v");
}

/* Asserts a Lua expression over `v` (and friends) in the test's state. */
static void ok(const char *expr) {
  char src[2048];
  snprintf(src, sizeof src, "return %s", expr);
  if (luaL_dostring(F.L, src) != LUA_OK) {
    const char *e = lua_tostring(F.L, -1);
    (void)luaL_dostring(F.L, "return dump(v)");
    cr_assert_fail("check `%s` raised: %s; v = %s", expr, e,
                   lua_tostring(F.L, -1));
  }
  if (!lua_toboolean(F.L, -1)) {
    (void)luaL_dostring(F.L, "return dump(v)");
    cr_assert_fail("check `%s` failed; v = %s", expr, lua_tostring(F.L, -1));
  }
  lua_settop(F.L, 0);
}

static void sendhdr(int type, uint64_t id, uint32_t aux) {
  plush_hdr h = {.type = (uint8_t)type, .engine = F.id, .id = id, .aux = aux};
  cr_assert_not_null(F.conn);
  cr_assert_eq(plush_conn_write(F.conn, &h, NULL, 0), 0);
}

/* Sends what the Lua source returns as the payload of a frame. */
static void sendval(int type, uint64_t id, const char *src) {
  plush_buf b = PLUSH_BUF_INIT;
  plush_hdr h = {.type = (uint8_t)type, .engine = F.id, .id = id};
  char err[256];
  if (luaL_dostring(F.L, src) != LUA_OK)
    cr_assert_fail("bad test source: %s", lua_tostring(F.L, -1));
  cr_assert_eq(plush_encode(F.L, -1, &b, "msg", err, sizeof err), 0, "%s",
               err);
  lua_settop(F.L, 0);
  cr_assert_not_null(F.conn);
  cr_assert_eq(plush_conn_write(F.conn, &h, b.data, b.len), 0);
  plush_buf_free(&b);
}

/* An exec request with the code as a Lua long string. */
static void exec(uint64_t id, const char *code) {
  char src[4096];
  snprintf(src, sizeof src, "return {op = 'exec', code = [==[%s]==]}", code);
  sendval(PLUSH_T_REQ, id, src);
}

/* STARTED then the REPLY with status st, decoded into `v`. */
static void reply(uint64_t id, int st) {
  plush_frame *f;
  plush_frame_unref(expect(PLUSH_T_STARTED, id));
  f = expect(PLUSH_T_REPLY, id);
  cr_assert_eq(f->hdr.status, st, "task %llu: status %d, not %d",
               (unsigned long long)id, f->hdr.status, st);
  cr_assert_eq(f->hdr.engine, F.id);
  decode(f);
  plush_frame_unref(f);
}

/* ---- set-up ------------------------------------------------------ */

/* Listens on a fresh loopback port; returns it. */
static int listenon(uv_tcp_t *server, int bit) {
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  uv_tcp_init(&F.loop, server);
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_tcp_bind(server, (struct sockaddr *)&a, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)server, 16, onconnect), 0);
  uv_tcp_getsockname(server, (struct sockaddr *)&ss, &len);
  F.listening |= bit;
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void listen_(void) { F.port = listenon(&F.server, 1); }

static void closed_(uv_handle_t *h) { (void)h; }

/* Stops listening (bit 1: server, 2: server2). */
static void unlisten(int bit) {
  if (!(F.listening & bit)) return;
  F.listening &= ~bit;
  uv_close((uv_handle_t *)(bit == 1 ? &F.server : &F.server2), closed_);
}

static void start(int id, size_t high_water, int port) {
  plush_engine_opts o = {.host = "127.0.0.1",
                         .port = port,
                         .key = F.key,
                         .id = id,
                         .high_water = high_water,
                         .reconnect = extra.reconnect,
                         .file = extra.file,
                         .memory_limit = extra.memory_limit,
                         .on_exit = onexit};
  cr_assert_eq(plush_engine_start(&F.loop, &o, &F.eng), 0);
}

/* For failure messages: a value as readable text. */
static const char dumper[] =
    "function dump(x, d) d = d or 0\n"
    "  if type(x) == 'string' then return string.format('%q', x) end\n"
    "  if type(x) ~= 'table' or d > 4 then return tostring(x) end\n"
    "  local t = {}\n"
    "  for k, v in pairs(x) do\n"
    "    t[#t + 1] = '[' .. dump(k, d + 1) .. '] = ' .. dump(v, d + 1)\n"
    "  end\n"
    "  return '{' .. table.concat(t, ', ') .. '}'\n"
    "end";

static void init(void) {
  char hex[2 * PLUSH_KEY_SIZE + 1];
  signal(SIGPIPE, SIG_IGN);
  memset(&F, 0, sizeof F);
  uv_loop_init(&F.loop);
  uv_timer_init(&F.loop, &F.timer);
  uv_timer_init(&F.loop, &F.tick);
  F.L = luaL_newstate();
  luaL_openlibs(F.L);
  (void)luaL_dostring(F.L, dumper);
  cr_assert_eq(plush_key_generate(F.key, hex), 0);
  listen_();
}

/*
** An engine registered and welcomed as engine `as`; the REGISTER is
** checked on the way (pid, host, the id asked for).
*/
static void boot(int want, uint32_t as, size_t high_water) {
  char src[128];
  plush_frame *f;
  init();
  start(want, high_water, F.port);
  f = expect(PLUSH_T_REGISTER, 0);
  decode(f);
  plush_frame_unref(f);
  lua_pushinteger(F.L, (lua_Integer)getpid());
  lua_setglobal(F.L, "mypid");
  ok("v.pid == mypid and type(v.host) == 'string' and #v.host > 0");
  ok("v.reconnect == nil");
  if (want >= 0) {
    lua_pushinteger(F.L, want);
    lua_setglobal(F.L, "want");
    ok("v.id == want");
  } else {
    ok("v.id == nil");
  }
  F.id = as;
  snprintf(src, sizeof src, "return {id = %u}", as);
  sendval(PLUSH_T_WELCOME, 0, src);
}

/* Closes what is left and checks nothing leaked a handle. */
static void finish(void) {
  if (F.conn) plush_conn_close(F.conn, 0, "test over");
  until(hasclosed, "the connection to close", 0);
  unlisten(1);
  unlisten(2);
  uv_close((uv_handle_t *)&F.timer, closed_);
  uv_close((uv_handle_t *)&F.tick, closed_);
  uv_run(&F.loop, UV_RUN_DEFAULT);
  while (F.qn) {
    plush_frame_unref(F.q[F.qh]);
    F.qh = (F.qh + 1) % MAXQ;
    F.qn--;
  }
  cr_assert_eq(uv_loop_close(&F.loop), 0, "handles left open");
  lua_close(F.L);
  memset(&extra, 0, sizeof extra);
}

/* SHUTDOWN, and the engine must end with status 0. */
static void shutdown_(void) {
  sendhdr(PLUSH_T_SHUTDOWN, 0, 0);
  until(hasexited, "the engine to exit", 0);
  cr_assert_eq(F.status, PLUSH_ENGINE_DONE, "exit %d: %s", F.status,
               F.reason);
  finish();
}

/* ---- the tests --------------------------------------------------- */

Test(engine, registers_and_shuts_down) {
  boot(-1, 3, 0);
  exec(1, "return engine.id, engine.pid, engine.host");
  reply(1, PLUSH_S_OK);
  ok("v.r.n == 3 and v.r[1] == 3 and v.r[2] == mypid and #v.r[3] > 0");
  cr_assert_eq(plush_engine_id(F.eng), 3);
  shutdown_();
}

Test(engine, asks_for_its_id) {
  boot(7, 7, 0);
  exec(1, "return engine.id");
  reply(1, PLUSH_S_OK);
  ok("v.r[1] == 7");
  shutdown_();
}

Test(engine, exec_returns_values) {
  boot(-1, 0, 0);
  exec(11, "return 1+1");
  reply(11, PLUSH_S_OK);
  ok("v.r.n == 1 and v.r[1] == 2 and math.type(v.r[1]) == 'integer'");
  ok("type(v.started) == 'number' and v.started <= v.completed");
  exec(12, "x = 41");
  reply(12, PLUSH_S_OK);
  ok("v.r.n == 0");
  exec(13, "return x + 1, nil, 'a'");
  reply(13, PLUSH_S_OK);
  ok("v.r.n == 3 and v.r[1] == 42 and v.r[2] == nil and v.r[3] == 'a'");
  shutdown_();
}

static void output(const char *text, uint32_t stream, uint64_t id) {
  plush_frame *f = expect(PLUSH_T_OUTPUT, id);
  size_t n = strlen(text);
  cr_assert_eq(f->hdr.aux, stream, "stream %u, not %u", f->hdr.aux, stream);
  cr_assert_eq(f->hdr.engine, F.id);
  cr_assert(f->hdr.len == n && memcmp(plush_frame_payload(f), text, n) == 0,
            "output '%.*s', not '%s'", (int)f->hdr.len,
            plush_frame_payload(f), text);
  plush_frame_unref(f);
}

/*
** An expression line's values (auto = true, the shell's %px x) that
** cannot travel come back as their tostring, listed in `tostring`; an
** explicit return (no auto) keeps the codec's error.
*/
Test(engine, expression_values_that_cannot_travel_come_back_as_tostring) {
  boot(-1, 0, 0);
  sendval(PLUSH_T_REQ, 11, "return {op = 'exec', auto = true,\n"
                           "  code = 'return 1, io.stdout, {2}, coroutine.create(print)'}");
  reply(11, PLUSH_S_OK);
  ok("v.r.n == 4 and v.r[1] == 1 and v.r[3][1] == 2");
  ok("v.r[2]:match('^file %(0x%x+%)$') and v.r[4]:match('^thread: ')");
  ok("#v.tostring == 2 and v.tostring[1] == 2 and v.tostring[2] == 4");
  exec(12, "return io.stdout");
  reply(12, PLUSH_S_ERROR);
  ok("v.message == 'cannot serialise result[1]: userdata'");
  shutdown_();
}

/* The note on stream 3 that follows an interrupt the task did not obey. */
static void note(uint64_t id, const char *text) {
  output(text, PLUSH_STREAM_NOTE, id);
}

/*
** An interrupt that cannot act is said: in a C call the hook never fires;
** a pcall loop catches it and goes on.
*/
static char inccall[64]; /* a file os.execute's shell makes */

static int isinccall(void) { return access(inccall, F_OK) == 0; }

Test(engine, an_interrupt_that_waits_is_said) {
  char code[160];
  boot(-1, 0, 0);
  /* interrupted once the chunk is in the C call: its shell made the file
  ** (one that comes before the call ends the task at once, as it should) */
  snprintf(inccall, sizeof inccall, "/tmp/plush-test-inccall-%d",
           (int)getpid());
  unlink(inccall);
  snprintf(code, sizeof code,
           "print('in') os.execute('touch %s && sleep 2') return 'slept'",
           inccall);
  exec(21, code);
  plush_frame_unref(expect(PLUSH_T_STARTED, 21));
  output("in\n", PLUSH_STREAM_STDOUT, 21);
  until(isinccall, "the shell of os.execute", 1);
  unlink(inccall);
  sendhdr(PLUSH_T_INTERRUPT, 21, 0);
  note(21, "is in a C call: the interrupt waits for it to return");
  /* the hook fires once the call returns */
  plush_frame_unref(expect(PLUSH_T_REPLY, 21));
  /* interrupted only once inside the pcall (an interrupt that comes
  ** before the chunk's first instruction ends the task, as it should) */
  exec(22, "local first = true while true do pcall(function()"
           " if first then first = false print('in') end"
           " for _ = 1, 1e9 do end end) end");
  plush_frame_unref(expect(PLUSH_T_STARTED, 22));
  output("in\n", PLUSH_STREAM_STDOUT, 22);
  sendhdr(PLUSH_T_INTERRUPT, 22, 0);
  note(22, "caught the interrupt and went on");
  sendhdr(PLUSH_T_RESTART, 0, 0);
  {
    plush_frame *f = expect(PLUSH_T_REPLY, 22);
    cr_assert_eq(f->hdr.status, PLUSH_S_ERROR);
    plush_frame_unref(f);
  }
  shutdown_();
}

Test(engine, output_comes_before_the_reply_in_order) {
  plush_frame *f;
  boot(-1, 2, 0);
  exec(5, "print('a', 1, nil, 2.5, {} ~= nil)\n"
          "io.write('x', 2, 1.5)\n"
          "io.stdout:write('y', 'z'):write('!')\n"
          "io.stderr:write('e')\n"
          "print()\n"
          "coroutine.wrap(function() print('co') end)()\n"
          "return io.write('') == io.stdout");
  plush_frame_unref(expect(PLUSH_T_STARTED, 5));
  output("a\t1\tnil\t2.5\ttrue\n", PLUSH_STREAM_STDOUT, 5);
  output("x21.5", PLUSH_STREAM_STDOUT, 5);
  output("yz", PLUSH_STREAM_STDOUT, 5);
  output("!", PLUSH_STREAM_STDOUT, 5);
  output("e", PLUSH_STREAM_STDERR, 5);
  output("\n", PLUSH_STREAM_STDOUT, 5);
  output("co\n", PLUSH_STREAM_STDOUT, 5);
  f = expect(PLUSH_T_REPLY, 5);
  decode(f);
  plush_frame_unref(f);
  ok("v.r[1] == true");
  shutdown_();
}

/*
** On a sealed connection every frame is its own record: the engine's
** batches of small frames must be taken apart, in order.
*/
static int ready_(void) { return F.conn && plush_conn_is_ready(F.conn); }

Test(engine, sealed_connection) {
  plush_frame *f;
  char src[64];
  init();
  F.encrypt = 1;
  start(-1, 0, F.port);
  until(ready_, "the handshake", 0);
  cr_assert(plush_conn_secure(F.conn));
  plush_frame_unref(expect(PLUSH_T_REGISTER, 0));
  F.id = 6;
  sendval(PLUSH_T_WELCOME, 0, "return {id = 6}");
  for (int i = 1; i <= 20; i++) {
    snprintf(src, sizeof src, "print(%d) io.write('x') return %d", i, i);
    exec((uint64_t)i, src);
  }
  for (int i = 1; i <= 20; i++) {
    snprintf(src, sizeof src, "%d\n", i);
    plush_frame_unref(expect(PLUSH_T_STARTED, (uint64_t)i));
    output(src, PLUSH_STREAM_STDOUT, (uint64_t)i);
    output("x", PLUSH_STREAM_STDOUT, (uint64_t)i);
    f = expect(PLUSH_T_REPLY, (uint64_t)i);
    decode(f);
    plush_frame_unref(f);
    lua_pushinteger(F.L, i);
    lua_setglobal(F.L, "i");
    ok("v.r[1] == i");
  }
  shutdown_();
}

Test(engine, writes_to_other_files_are_not_captured) {
  boot(-1, 0, 0);
  exec(1, "local p = os.tmpname()\n"
          "io.output(p) io.write('to file') io.close() io.output(io.stdout)\n"
          "local f = io.open(p, 'a') f:write('!') f:close()\n"
          "f = io.open(p) local s = f:read('a') f:close() os.remove(p)\n"
          "return s");
  reply(1, PLUSH_S_OK);
  ok("v.r[1] == 'to file!'");
  exec(2, "io.write({})");
  reply(2, PLUSH_S_ERROR);
  ok("v.message:find(\"bad argument #1 to 'write' (string expected, got "
     "table)\", 1, true)");
  shutdown_();
}

Test(engine, big_output_is_chunked) {
  plush_frame *f;
  size_t total = 0;
  int frames = 0;
  boot(-1, 0, 0);
  exec(1, "io.write(string.rep('x', 5 * 1024 * 1024 + 3))");
  plush_frame_unref(expect(PLUSH_T_STARTED, 1));
  while ((f = next())->hdr.type == PLUSH_T_OUTPUT) {
    total += f->hdr.len;
    frames++;
    plush_frame_unref(f);
  }
  cr_assert_eq(f->hdr.type, PLUSH_T_REPLY);
  plush_frame_unref(f);
  cr_assert_eq(total, 5 * 1024 * 1024 + 3);
  cr_assert_eq(frames, 2);
  shutdown_();
}

Test(engine, runtime_error) {
  boot(-1, 4, 0);
  exec(1, "local x = 1\nerror('boom')");
  reply(1, PLUSH_S_ERROR);
  ok("v.kind == 'RemoteError' and v.message == 'execute:2: boom'");
  ok("v.chunk == 'execute' and v.line == 2 and v.engine == 4");
  ok("v.traceback:find('stack traceback:', 1, true) == 1");
  ok("v.traceback:find('execute:2:', 1, true) ~= nil");
  ok("not v.traceback:find('[C]: in ?', 1, true)");
  ok("v.started <= v.completed and v.value == nil");
  exec(2, "return 'still here'");
  reply(2, PLUSH_S_OK);
  ok("v.r[1] == 'still here'");
  shutdown_();
}

Test(engine, syntax_error) {
  boot(-1, 0, 0);
  sendval(PLUSH_T_REQ, 1, "return {op = 'exec', code = 'x = = 1', "
                          "name = 'cell7'}");
  plush_frame *f = expect(PLUSH_T_STARTED, 1);
  plush_frame_unref(f);
  f = expect(PLUSH_T_REPLY, 1);
  cr_assert_eq(f->hdr.status, PLUSH_S_ERROR);
  decode(f);
  plush_frame_unref(f);
  ok("v.kind == 'RemoteError' and v.message:find('^cell7:1: ')");
  ok("v.chunk == 'cell7' and v.line == 1 and type(v.traceback) == 'string'");
  shutdown_();
}

Test(engine, error_objects) {
  boot(-1, 0, 0);
  exec(1, "error(setmetatable({code = 7}, "
          "{__tostring = function(e) return 'E' .. e.code end}))");
  reply(1, PLUSH_S_ERROR);
  ok("v.message == 'E7' and v.value.code == 7");
  exec(2, "error(42)");
  reply(2, PLUSH_S_ERROR);
  ok("v.message == '42' and v.value == 42");
  exec(3, "error(coroutine.create(print))");
  reply(3, PLUSH_S_ERROR);
  ok("v.message == '(error object is a thread value)' and v.value == nil");
  exec(4, "error('no position', 0)");
  reply(4, PLUSH_S_ERROR);
  ok("v.message == 'no position' and v.chunk == nil and v.line == nil");
  shutdown_();
}

Test(engine, push_then_pull) {
  boot(-1, 0, 0);
  sendval(PLUSH_T_REQ, 1, "return {op = 'push', ns = {a = 1, "
                          "t = {x = {y = 'deep'}}, f = 0.5}}");
  reply(1, PLUSH_S_OK);
  ok("v.r.n == 0");
  sendval(PLUSH_T_REQ, 2, "return {op = 'push', ns = {['t.z'] = 5}}");
  reply(2, PLUSH_S_OK);
  sendval(PLUSH_T_REQ, 3, "return {op = 'pull', names = {'a', 't.x.y', "
                          "'missing', 't.nope.z', 't.z', 'f'}}");
  reply(3, PLUSH_S_OK);
  ok("v.r.n == 6 and v.r[1] == 1 and v.r[2] == 'deep' and v.r[3] == nil");
  ok("v.r[4] == nil and v.r[5] == 5 and v.r[6] == 0.5");
  sendval(PLUSH_T_REQ, 4, "return {op = 'push', ns = {['a.b'] = 1}}");
  reply(4, PLUSH_S_ERROR);
  ok("v.message:find(\"cannot push 'a.b': 'a' is not a table\", 1, true)");
  shutdown_();
}

Test(engine, apply_a_function_from_here) {
  boot(-1, 9, 0);
  sendval(PLUSH_T_REQ, 1,
          "local k = 10\n"
          "return {op = 'apply', args = {n = 3, 1, nil, 2},\n"
          "  f = function(a, b, c) return a + c + k, b, engine.id end}");
  reply(1, PLUSH_S_OK);
  ok("v.r.n == 3 and v.r[1] == 13 and v.r[2] == nil and v.r[3] == 9");
  sendval(PLUSH_T_REQ, 2, "return {op = 'apply', f = function() "
                          "error('in f') end}");
  reply(2, PLUSH_S_ERROR);
  ok("v.message:find('in f$') and v.line ~= nil");
  shutdown_();
}

Test(engine, map_and_names) {
  boot(-1, 0, 0);
  sendval(PLUSH_T_REQ, 1, "return {op = 'map', f = function(x) return x * x "
                          "end, items = {1, 2, 3}, n = 3}");
  reply(1, PLUSH_S_OK);
  ok("v.r.n == 3 and v.r[1] == 1 and v.r[2] == 4 and v.r[3] == 9");
  exec(2, "obj = setmetatable({own = 1}, {__index = {method = 1, "
          "other = 2}}) str = 's'");
  reply(2, PLUSH_S_OK);
  sendval(PLUSH_T_REQ, 3, "return {op = 'names', prefix = 'str'}");
  reply(3, PLUSH_S_OK);
  ok("v.r[1] == 'str' and v.r[2] == 'string' and #v.r == 2");
  sendval(PLUSH_T_REQ, 4, "return {op = 'names', prefix = 'string.fo'}");
  reply(4, PLUSH_S_OK);
  ok("#v.r == 1 and v.r[1] == 'string.format'");
  sendval(PLUSH_T_REQ, 5, "return {op = 'names', prefix = 'obj.'}");
  reply(5, PLUSH_S_OK);
  ok("#v.r == 3 and v.r[1] == 'obj.method' and v.r[3] == 'obj.own'");
  sendval(PLUSH_T_REQ, 6, "return {op = 'names', prefix = 'nothing.here'}");
  reply(6, PLUSH_S_OK);
  ok("#v.r == 0");
  shutdown_();
}

/*
** A map runs its items under one protected call: a failing item is named
** (`item`), with the same message, traceback and error value as any
** error; an interrupt or the memory limit stops it inside an item too.
*/
Test(engine, map_names_the_failing_item) {
  plush_frame *f;
  boot(-1, 0, 0);
  sendval(PLUSH_T_REQ, 1, "return {op = 'map', f = function(x)\n"
                          "  if x == 30 then error('bad item ' .. x) end\n"
                          "  return x + 1 end, items = {10, 20, 30, 40}, n = 4}");
  reply(1, PLUSH_S_ERROR);
  ok("v.kind == 'RemoteError' and v.item == 3 and v.line == 2");
  ok("v.message:find(':2: bad item 30$') ~= nil");
  ok("v.traceback:find('stack traceback:', 1, true) == 1");
  ok("v.traceback:find(\"in function 'error'\", 1, true) ~= nil");
  ok("not v.traceback:find('[C]: in ?', 1, true)");
  sendval(PLUSH_T_REQ, 2, "return {op = 'map', f = function(x)\n"
                          "  if x == 'b' then error({code = 7}) end return x end,\n"
                          "  items = {'a', 'b', 'c'}, n = 3}");
  reply(2, PLUSH_S_ERROR);
  ok("v.item == 2 and v.value.code == 7");
  sendval(PLUSH_T_REQ, 3, "return {op = 'map', f = function(x)\n"
                          "  if x % 2 == 0 then return nil end return x * x end,\n"
                          "  items = {1, 2, 3, 4, 5}, n = 5}");
  reply(3, PLUSH_S_OK);
  ok("v.r.n == 5 and v.r[1] == 1 and v.r[2] == nil and v.r[3] == 9 and v.r[5] == 25");
  sendval(PLUSH_T_REQ, 41, "return {op = 'map', f = function(x) return (x or 0) + 1 end,\n"
                           "  items = {[2] = 2, [5] = 5, x = 'other key'}, n = 5}");
  reply(41, PLUSH_S_OK);
  ok("v.r.n == 5 and v.r[1] == 1 and v.r[2] == 3 and v.r[3] == 1 and v.r[5] == 6");
  ok("v.r.x == nil");
  sendval(PLUSH_T_REQ, 4, "return {op = 'map', f = error, items = {}, n = 0}");
  reply(4, PLUSH_S_OK);
  ok("v.r.n == 0 and v.r[1] == nil");
  sendval(PLUSH_T_REQ, 40, "return {op = 'map', f = function(x)\n"
                           "  return x == 2 and coroutine.create(print) or x end,\n"
                           "  items = {1, 2, 3}, n = 3}");
  reply(40, PLUSH_S_ERROR);
  ok("v.message == 'cannot serialise result[2]: thread'");
  sendval(PLUSH_T_REQ, 5, "return {op = 'map', f = function(x)\n"
                          "  if x == 2 then print('in') while true do end end\n"
                          "  return x end, items = {1, 2, 3}, n = 3}");
  plush_frame_unref(expect(PLUSH_T_STARTED, 5));
  /* interrupted once item 2 runs (an interrupt that comes before it ends
  ** the map earlier, as it should, and names no item) */
  output("in\n", PLUSH_STREAM_STDOUT, 5);
  sendhdr(PLUSH_T_INTERRUPT, 5, 0);
  f = reply_past_notes(5);
  cr_assert_eq(f->hdr.status, PLUSH_S_ERROR);
  decode(f);
  plush_frame_unref(f);
  ok("v.message:find('interrupted') and v.item == 2");
  exec(6, "return 'alive'");
  reply(6, PLUSH_S_OK);
  ok("v.r[1] == 'alive'");
  shutdown_();
}

Test(engine, map_under_the_memory_limit) {
  extra.memory_limit = 32 << 20;
  boot(-1, 0, 0);
  sendval(PLUSH_T_REQ, 1, "return {op = 'map', f = function(x)\n"
                          "  if x == 2 then local t = {} for i = 1, 1e8 do t[i] = i end end\n"
                          "  return x end, items = {1, 2, 3}, n = 3}");
  reply(1, PLUSH_S_ERROR);
  ok("v.message:find('not enough memory') and v.item == 2");
  sendval(PLUSH_T_REQ, 2, "local t = {} for i = 1, 100000 do t[i] = i end\n"
                          "return {op = 'map', f = function(x) return -x end, items = t,"
                          " n = #t}");
  reply(2, PLUSH_S_OK);
  ok("v.r.n == 100000 and v.r[100000] == -100000");
  shutdown_();
}

Test(engine, bad_requests) {
  boot(-1, 0, 0);
  sendval(PLUSH_T_REQ, 1, "return {op = 'nope'}");
  reply(1, PLUSH_S_BADREQ);
  ok("v.kind == 'BadRequest' and v.message == \"unknown op 'nope'\"");
  sendval(PLUSH_T_REQ, 2, "return 'not a table'");
  reply(2, PLUSH_S_BADREQ);
  sendval(PLUSH_T_REQ, 3, "return {op = 'exec'}");
  reply(3, PLUSH_S_BADREQ);
  ok("v.message == \"exec needs a string 'code'\"");
  shutdown_();
}

Test(engine, unserialisable_result) {
  boot(-1, 0, 0);
  exec(1, "return coroutine.create(print)");
  reply(1, PLUSH_S_ERROR);
  ok("v.message == 'cannot serialise result[1]: thread'");
  exec(2, "return 'fine'");
  reply(2, PLUSH_S_OK);
  shutdown_();
}

Test(engine, pong_while_busy_and_interrupt) {
  plush_frame *f;
  boot(-1, 1, 0);
  exec(100, "while true do end");
  plush_frame_unref(expect(PLUSH_T_STARTED, 100));
  sendhdr(PLUSH_T_PING, 0, 42);
  f = expect(PLUSH_T_PONG, 0);
  cr_assert_eq(f->hdr.aux, 42);
  cr_assert_eq(f->hdr.engine, 1);
  plush_frame_unref(f);
  sendhdr(PLUSH_T_INTERRUPT, 100, 0);
  f = reply_past_notes(100);
  decode(f);
  ok("v.message");
  cr_assert_eq(f->hdr.status, PLUSH_S_ERROR, "status %d", f->hdr.status);
  plush_frame_unref(f);
  ok("v.message:find('interrupted') and v.kind == 'RemoteError'");
  exec(101, "return 'alive'");
  reply(101, PLUSH_S_OK);
  ok("v.r[1] == 'alive'");
  shutdown_();
}

Test(engine, interrupt_zero_stops_whatever_runs) {
  plush_frame *f;
  boot(-1, 0, 0);
  exec(1, "local n = 0 while true do n = n + 1 end");
  plush_frame_unref(expect(PLUSH_T_STARTED, 1));
  sendhdr(PLUSH_T_INTERRUPT, 77, 0); /* not running: ignored */
  sendhdr(PLUSH_T_PING, 0, 1);
  plush_frame_unref(expect(PLUSH_T_PONG, 0));
  sendhdr(PLUSH_T_INTERRUPT, 0, 0);
  f = reply_past_notes(1);
  decode(f);
  plush_frame_unref(f);
  ok("v.message:find('interrupted')");
  shutdown_();
}

/*
** A task's STARTED is held back to leave with its next frame; one that
** blocks without output still has it sent while it runs (the loop's
** timer): the PONG asked after it comes before the REPLY. A quick
** task's STARTED still comes first.
*/
Test(engine, started_of_a_blocked_task_is_not_held) {
  boot(-1, 0, 0);
  exec(41, "os.execute('sleep 2') return 'woke'");
  plush_frame_unref(expect(PLUSH_T_STARTED, 41));
  sendhdr(PLUSH_T_PING, 0, 5);
  plush_frame_unref(expect(PLUSH_T_PONG, 0));
  plush_frame_unref(expect(PLUSH_T_REPLY, 41));
  exec(42, "return 42");
  reply(42, PLUSH_S_OK);
  ok("v.r.n == 1 and v.r[1] == 42");
  shutdown_();
}

Test(engine, interrupt_a_queued_request) {
  plush_frame *f;
  boot(-1, 0, 0);
  exec(1, "while true do end");
  exec(2, "ran = true");
  plush_frame_unref(expect(PLUSH_T_STARTED, 1));
  sendhdr(PLUSH_T_INTERRUPT, 2, 0);
  sendhdr(PLUSH_T_INTERRUPT, 1, 0);
  f = reply_past_notes(1);
  cr_assert_eq(f->hdr.status, PLUSH_S_ERROR);
  plush_frame_unref(f);
  f = expect(PLUSH_T_REPLY, 2); /* no STARTED: it never ran */
  cr_assert_eq(f->hdr.status, PLUSH_S_ERROR);
  decode(f);
  plush_frame_unref(f);
  ok("v.message == 'interrupted'");
  exec(3, "return ran");
  reply(3, PLUSH_S_OK);
  ok("v.r.n == 1 and v.r[1] == nil");
  shutdown_();
}

/*
** RECLAIM: a queued request is given back unrun (RECLAIMED, no STARTED,
** no REPLY) and the ones around it keep their order; a running one, an
** unknown one and one already given back are not touched.
*/
Test(engine, reclaim_a_queued_request) {
  plush_frame *f;
  boot(-1, 0, 0);
  exec(1, "while not go do end return 'first'");
  exec(2, "log = (log or '') .. 'b'");
  exec(3, "log = (log or '') .. 'c'");
  exec(4, "log = (log or '') .. 'd'");
  plush_frame_unref(expect(PLUSH_T_STARTED, 1));
  sendhdr(PLUSH_T_RECLAIM, 3, 0);
  plush_frame_unref(expect(PLUSH_T_RECLAIMED, 3));
  sendhdr(PLUSH_T_RECLAIM, 1, 0);  /* running: ignored */
  sendhdr(PLUSH_T_RECLAIM, 3, 0);  /* gone already: ignored */
  sendhdr(PLUSH_T_RECLAIM, 99, 0); /* unknown: ignored */
  sendhdr(PLUSH_T_PING, 0, 7);
  f = expect(PLUSH_T_PONG, 0); /* nothing came before the pong */
  cr_assert_eq(f->hdr.aux, 7);
  plush_frame_unref(f);
  sendhdr(PLUSH_T_INTERRUPT, 1, 0);
  f = reply_past_notes(1);
  plush_frame_unref(f);
  reply(2, PLUSH_S_OK);
  reply(4, PLUSH_S_OK);
  exec(5, "return log");
  reply(5, PLUSH_S_OK);
  ok("v.r[1] == 'bd'");
  shutdown_();
}

/*
** An interrupt may land before the user's code runs, while the request
** is still being decoded (a big one): that is "interrupted" too, never a
** bad request.
*/
Test(engine, interrupt_while_decoding) {
  plush_frame *f;
  boot(-1, 0, 0);
  sendval(PLUSH_T_REQ, 1, "local t = {} for i = 1, 300000 do t[i] = i end\n"
                          "return {op = 'apply', args = {n = 1, t},\n"
                          "  f = function(t) while true do end end}");
  sendhdr(PLUSH_T_INTERRUPT, 1, 0);
  while ((f = next())->hdr.type == PLUSH_T_STARTED) plush_frame_unref(f);
  cr_assert_eq(f->hdr.type, PLUSH_T_REPLY);
  cr_assert_eq(f->hdr.status, PLUSH_S_ERROR, "status %d", f->hdr.status);
  decode(f);
  plush_frame_unref(f);
  ok("v.kind == 'RemoteError' and v.message:find('interrupted')");
  shutdown_();
}

/* Code looping inside a coroutine is interrupted as well. */
Test(engine, interrupt_inside_a_coroutine) {
  plush_frame *f;
  boot(-1, 0, 0);
  exec(1, "gen = coroutine.wrap(function() while true do end end)\n"
          "local co = coroutine.create(function() gen() end)\n"
          "assert(coroutine.resume(co))");
  plush_frame_unref(expect(PLUSH_T_STARTED, 1));
  sendhdr(PLUSH_T_PING, 0, 1);
  plush_frame_unref(expect(PLUSH_T_PONG, 0));
  sendhdr(PLUSH_T_INTERRUPT, 1, 0);
  f = reply_past_notes(1);
  decode(f);
  plush_frame_unref(f);
  ok("v.message:find('interrupted')");
  /* A resume that returns false must not swallow the interrupt. */
  exec(2, "local co = coroutine.create(function() while true do end end)\n"
          "while true do coroutine.resume(co) end");
  plush_frame_unref(expect(PLUSH_T_STARTED, 2));
  sendhdr(PLUSH_T_PING, 0, 2);
  plush_frame_unref(expect(PLUSH_T_PONG, 0));
  sendhdr(PLUSH_T_INTERRUPT, 2, 0);
  f = reply_past_notes(2);
  decode(f);
  plush_frame_unref(f);
  ok("v.message:find('interrupted')");
  exec(3, "return coroutine.resume(coroutine.create(function(a) "
          "return a + 1 end), 1)");
  reply(3, PLUSH_S_OK);
  ok("v.r[1] == true and v.r[2] == 2");
  exec(4, "local g = coroutine.wrap(function() error('in co') end) g()");
  reply(4, PLUSH_S_ERROR);
  ok("v.message:find('in co')");
  shutdown_();
}

Test(engine, stop_while_busy) {
  boot(-1, 0, 0);
  exec(1, "while true do pcall(function() while true do end end) end");
  plush_frame_unref(expect(PLUSH_T_STARTED, 1));
  plush_engine_stop(F.eng);
  until(hasexited, "the engine to stop", 0);
  cr_assert_eq(F.status, PLUSH_ENGINE_DONE);
  finish();
}

Test(engine, controller_lost) {
  boot(-1, 0, 0);
  exec(1, "return 1");
  reply(1, PLUSH_S_OK);
  plush_conn_close(F.conn, 0, "controller dies");
  until(hasexited, "the engine to notice", 0);
  cr_assert_eq(F.status, PLUSH_ENGINE_FAILED);
  cr_assert(strstr(F.reason, "lost the controller") != NULL, "%s", F.reason);
  finish();
}

/* A port that was free a moment ago: bound, then closed again. */
static int freeport(void) {
  uv_tcp_t t;
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int len = sizeof ss, port;
  uv_tcp_init(&F.loop, &t);
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_tcp_bind(&t, (struct sockaddr *)&a, 0), 0);
  uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
  port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&F.loop, UV_RUN_NOWAIT);
  return port;
}

Test(engine, no_controller) {
  init();
  start(-1, 0, freeport());
  until(hasexited, "the engine to give up", 0);
  cr_assert_eq(F.status, PLUSH_ENGINE_FAILED);
  cr_assert(strstr(F.reason, "cannot reach the controller") != NULL, "%s",
            F.reason);
  F.closed = 1;
  finish();
}

static plush_engine_stats stats;
static int blocked(void) {
  plush_engine_stats_get(F.eng, &stats);
  return stats.blocked > 0;
}

/*
** The controller stops reading while a chunk prints 32 MiB: the Lua thread
** must block near the high-water mark instead of queueing it all; once
** reading resumes, every byte arrives, in order, then the reply.
*/
Test(engine, output_back_pressure) {
  const size_t hw = 256 * 1024, piece = 64 * 1024, pieces = 512;
  size_t total = 0;
  plush_frame *f;
  boot(-1, 0, hw);
  plush_conn_pause(F.conn);
  exec(1, "for i = 1, 512 do io.write(string.rep(string.char(65 + i % 26), "
          "65536)) end return 'done'");
  until(blocked, "the Lua thread to block on output", 1);
  plush_conn_resume(F.conn);
  plush_frame_unref(expect(PLUSH_T_STARTED, 1));
  while ((f = next())->hdr.type == PLUSH_T_OUTPUT) {
    char want = (char)(65 + (total / piece + 1) % 26);
    cr_assert_eq(f->hdr.len, piece);
    cr_assert_eq(plush_frame_payload(f)[0], want, "output out of order");
    total += f->hdr.len;
    plush_frame_unref(f);
  }
  cr_assert_eq(f->hdr.type, PLUSH_T_REPLY);
  plush_frame_unref(f);
  cr_assert_eq(total, piece * pieces);
  plush_engine_stats_get(F.eng, &stats);
  cr_assert_leq(stats.out_peak, hw + 2 * (piece + 24), "peak %zu bytes",
                stats.out_peak);
  shutdown_();
}

static int blocked_again(void) {
  plush_engine_stats_get(F.eng, &stats);
  return stats.blocked >= 2;
}

/*
** An interrupt lets a print blocked on back-pressure go, so that the hook
** can raise; code that catches it (here in a coroutine, where the
** interrupt stays aimed at the task) and prints on must wait again, not
** queue without bound.
*/
Test(engine, a_caught_interrupt_does_not_lift_back_pressure) {
  const size_t hw = 256 * 1024, piece = 4096;
  plush_frame *f;
  boot(-1, 0, hw);
  plush_conn_pause(F.conn);
  exec(1, "local s = string.rep('x', 4096)\n"
          "coroutine.wrap(function() while true do pcall(function()\n"
          "  while true do io.write(s) end end) end end)()");
  until(blocked, "the Lua thread to block on output", 1);
  sendhdr(PLUSH_T_INTERRUPT, 1, 0);
  until(blocked_again, "the Lua thread to block again", 1);
  plush_engine_stats_get(F.eng, &stats);
  cr_assert_leq(stats.out_peak, hw + 2 * (piece + 24), "peak %zu bytes",
                stats.out_peak);
  sendhdr(PLUSH_T_RESTART, 0, 0); /* raises until the task is over */
  plush_conn_resume(F.conn);
  plush_frame_unref(expect(PLUSH_T_STARTED, 1));
  while ((f = next())->hdr.type == PLUSH_T_OUTPUT) plush_frame_unref(f);
  cr_assert_eq(f->hdr.type, PLUSH_T_REPLY);
  cr_assert_eq(f->hdr.status, PLUSH_S_ERROR);
  plush_frame_unref(f);
  shutdown_();
}

/* ---- reliability: reconnection, restart, memory limit ------------- */

static int hasconn(void) { return F.conn != NULL && !F.closed; }

static int offline_(void) {
  plush_engine_stats_get(F.eng, &stats);
  return !stats.online;
}

/*
** The link is cut from the controller's side; what arrived on it and was
** not read yet is forgotten, as a dead controller would.
*/
static void forget(void) {
  while (F.qn) {
    plush_frame_unref(F.q[F.qh]);
    F.qh = (F.qh + 1) % MAXQ;
    F.qn--;
  }
}

static void cut(void) {
  cr_assert_not_null(F.conn);
  plush_conn_close(F.conn, 0, "link cut");
  until(hasclosed, "the link to close", 0);
  forget();
}

/*
** The engine dials again (a fresh accept): its REGISTER must ask for the
** id `want`; it is welcomed as `as`.
*/
static void comeback(int want, uint32_t as) {
  char src[64];
  plush_frame *f;
  until(hasconn, "the engine to reconnect", 0);
  f = expect(PLUSH_T_REGISTER, 0);
  decode(f);
  plush_frame_unref(f);
  lua_pushinteger(F.L, want);
  lua_setglobal(F.L, "want");
  ok("v.id == want and v.pid == mypid and v.reconnect == true");
  F.id = as;
  snprintf(src, sizeof src, "return {id = %u}", as);
  sendval(PLUSH_T_WELCOME, 0, src);
}

Test(engine, reconnects_with_its_namespace) {
  extra.reconnect = 30;
  boot(-1, 3, 0);
  exec(1, "x = 42 return engine.id");
  reply(1, PLUSH_S_OK);
  ok("v.r[1] == 3");
  cut();
  comeback(3, 3);
  exec(2, "return x, engine.id");
  reply(2, PLUSH_S_OK);
  ok("v.r[1] == 42 and v.r[2] == 3");
  /* The controller may give another id (the old one was taken): the
  ** namespace follows, and the next REGISTER asks for the new one. */
  cut();
  comeback(3, 8);
  exec(3, "return x, engine.id");
  reply(3, PLUSH_S_OK);
  ok("v.r[1] == 42 and v.r[2] == 8");
  cut();
  comeback(8, 8);
  exec(4, "x = x + 1 return x");
  reply(4, PLUSH_S_OK);
  ok("v.r[1] == 43");
  plush_engine_stats_get(F.eng, &stats);
  cr_assert_eq(stats.reconnects, 3);
  cr_assert(stats.online);
  shutdown_(); /* SHUTDOWN still ends it, with status 0 */
}

/*
** A restarted controller listens on another port with another key and
** writes them to the connection file: the engine reads it again before
** each attempt.
*/
Test(engine, reconnect_rereads_the_connection_file) {
  plush_connfile cf = {.host = "127.0.0.1", .pid = 1, .profile = "default"};
  char path[256], hex[2 * PLUSH_KEY_SIZE + 1], err[256];
  snprintf(path, sizeof path, "/tmp/plush-test-engine-%d.json", (int)getpid());
  unlink(path);
  extra.reconnect = 30;
  extra.file = path;
  boot(-1, 2, 0);
  cf.port = F.port;
  memcpy(cf.key, F.key, sizeof cf.key);
  cr_assert_eq(plush_connfile_write(path, &cf, err, sizeof err), 0, "%s", err);
  exec(1, "y = 'kept'");
  reply(1, PLUSH_S_OK);
  /* The "new controller": another port, another key, the file rewritten;
  ** the old one stops listening and drops the engine. */
  cf.port = listenon(&F.server2, 2);
  cr_assert_neq(cf.port, F.port);
  cr_assert_eq(plush_key_generate(F.key, hex), 0);
  memcpy(cf.key, F.key, sizeof cf.key);
  cr_assert_eq(plush_connfile_write(path, &cf, err, sizeof err), 0, "%s", err);
  unlisten(1);
  cut();
  comeback(2, 2);
  exec(2, "return y, engine.id");
  reply(2, PLUSH_S_OK);
  ok("v.r[1] == 'kept' and v.r[2] == 2");
  unlink(path);
  shutdown_();
}

Test(engine, gives_up_reconnecting) {
  uint64_t t0, took;
  extra.reconnect = 0.5;
  boot(-1, 0, 0);
  exec(1, "return 1");
  reply(1, PLUSH_S_OK);
  unlisten(1); /* nobody to come back to */
  uv_update_time(&F.loop);
  t0 = uv_now(&F.loop);
  cut();
  until(hasexited, "the engine to give up", 0);
  took = uv_now(&F.loop) - t0;
  cr_assert_eq(F.status, PLUSH_ENGINE_FAILED);
  cr_assert(strstr(F.reason, "gave up reconnecting to the controller after "
                             "0.5 s") != NULL, "%s", F.reason);
  cr_assert_geq(took, 450, "gave up after %llu ms", (unsigned long long)took);
  cr_assert_lt(took, 5000, "gave up after %llu ms", (unsigned long long)took);
  finish();
}

/* plush_engine_stop (a signal) while the engine waits to retry. */
Test(engine, stop_while_reconnecting) {
  extra.reconnect = 30;
  boot(-1, 0, 0);
  exec(1, "return 1");
  reply(1, PLUSH_S_OK);
  unlisten(1);
  cut();
  until(offline_, "the engine to see the link down", 1);
  plush_engine_stop(F.eng);
  until(hasexited, "the engine to stop", 0);
  cr_assert_eq(F.status, PLUSH_ENGINE_DONE, "%s", F.reason);
  finish();
}

static int firstdone(void) {
  plush_engine_stats_get(F.eng, &stats);
  return stats.tasks >= 1;
}

/*
** The link drops while a task prints (blocked on back-pressure, even):
** it goes on running, what it prints meanwhile is counted and dropped
** (not queued for nobody), and neither its output nor its reply reaches
** the controller it reconnects to. The global it set is there.
*/
Test(engine, output_dropped_while_disconnected) {
  const size_t hw = 256 * 1024, piece = 64 * 1024, total = 1024 * piece;
  extra.reconnect = 30;
  boot(-1, 4, hw);
  plush_conn_pause(F.conn);
  exec(1, "for i = 1, 1024 do io.write(string.rep('x', 65536)) end\n"
          "print('the end') printed = true return 'nobody hears this'");
  until(blocked, "the Lua thread to block on output", 1);
  cut();
  comeback(4, 4);
  until(firstdone, "the task to end", 1);
  plush_engine_stats_get(F.eng, &stats);
  cr_assert_geq(stats.dropped, total / 2, "dropped %zu", stats.dropped);
  cr_assert_leq(stats.dropped, total + 8, "dropped %zu", stats.dropped);
  cr_assert_leq(stats.out_peak, hw + 2 * (piece + 24), "peak %zu bytes",
                stats.out_peak);
  exec(2, "return printed"); /* STARTED 2 comes first: nothing of task 1 */
  reply(2, PLUSH_S_OK);
  ok("v.r[1] == true");
  shutdown_();
}

/*
** RESTART: the running task is interrupted (a pcall loop cannot hold it),
** a request queued before the RESTART is answered without running, and
** those after it run in the fresh namespace, in order, with the same
** engine table.
*/
Test(engine, restart_gives_a_fresh_namespace) {
  plush_frame *f;
  extra.memory_limit = 64 << 20;
  boot(-1, 5, 0);
  exec(1, "x = 1 string.extra = true");
  reply(1, PLUSH_S_OK);
  exec(2, "while true do pcall(function() while true do end end) end");
  plush_frame_unref(expect(PLUSH_T_STARTED, 2));
  exec(3, "y = 'queued before the restart'");
  sendhdr(PLUSH_T_RESTART, 0, 0);
  exec(4, "z = 1");
  exec(5, "z = z + 1\n"
          "return x, y, z, engine.id, string.extra, engine.memory_limit");
  f = expect(PLUSH_T_REPLY, 2);
  cr_assert_eq(f->hdr.status, PLUSH_S_ERROR);
  decode(f);
  plush_frame_unref(f);
  ok("v.message:find('interrupted: the engine is restarting', 1, true)");
  f = expect(PLUSH_T_REPLY, 3); /* no STARTED: it never ran */
  cr_assert_eq(f->hdr.status, PLUSH_S_ERROR);
  decode(f);
  plush_frame_unref(f);
  ok("v.message == 'interrupted: the engine is restarting'");
  reply(4, PLUSH_S_OK);
  reply(5, PLUSH_S_OK);
  ok("v.r.n == 6 and v.r[1] == nil and v.r[2] == nil and v.r[3] == 2");
  ok("v.r[4] == 5 and v.r[5] == nil and v.r[6] == 64 * 1024 * 1024");
  /* An idle restart too; output and interrupts work in the new state. */
  sendhdr(PLUSH_T_RESTART, 0, 0);
  exec(6, "print(z) return engine.id");
  plush_frame_unref(expect(PLUSH_T_STARTED, 6));
  output("nil\n", PLUSH_STREAM_STDOUT, 6);
  f = expect(PLUSH_T_REPLY, 6);
  decode(f);
  plush_frame_unref(f);
  ok("v.r[1] == 5");
  plush_engine_stats_get(F.eng, &stats);
  cr_assert_eq(stats.restarts, 2);
  shutdown_();
}

/*
** --memory-limit: a runaway allocation fails as Lua's "not enough memory"
** in that task only; the engine answers the next request; a namespace
** filled to the limit still gets its reply encoded (the engine's own work
** is not under the limit).
*/
Test(engine, memory_limit) {
  extra.memory_limit = 32 << 20;
  boot(-1, 0, 0);
  exec(1, "local t = {} for i = 1, 1e8 do t[i] = i end");
  reply(1, PLUSH_S_ERROR);
  ok("v.kind == 'RemoteError' and v.message:find('not enough memory')");
  exec(2, "return engine.memory_limit, engine.memory_used()");
  reply(2, PLUSH_S_OK);
  ok("v.r[1] == 32 * 1024 * 1024 and math.type(v.r[2]) == 'integer'");
  ok("v.r[2] > 0 and v.r[2] < 4 * 1024 * 1024");
  exec(3, "s = string.rep('x', 64 * 1024 * 1024)");
  reply(3, PLUSH_S_ERROR);
  ok("v.message:find('not enough memory')");
  exec(4, "return string.rep('y', 10 * 1024 * 1024)");
  reply(4, PLUSH_S_OK);
  ok("#v.r[1] == 10 * 1024 * 1024");
  exec(5, "return engine"); /* the engine table still travels */
  reply(5, PLUSH_S_OK);
  ok("v.r[1].id == 0 and type(v.r[1].memory_used) == 'function'");
  /* Fill the namespace to within a few kilobytes of the limit, keeping a
  ** result whose encoding needs far more than that. */
  exec(6, "res = {} for i = 1, 10000 do res[i] = {i} end\n"
          "fill = {}\n"
          "for _, size in ipairs{1000000, 10000} do\n"
          "  pcall(function()\n"
          "    while true do fill[#fill + 1] = string.rep('f', size) end\n"
          "  end)\n"
          "end\n"
          "fill[#fill] = nil fill[#fill] = nil\n"
          "return res");
  reply(6, PLUSH_S_OK);
  ok("#v.r[1] == 10000 and v.r[1][10000][1] == 10000");
  exec(7, "fill, res = nil, nil collectgarbage()\n"
          "return engine.memory_used()");
  reply(7, PLUSH_S_OK);
  ok("v.r[1] < 4 * 1024 * 1024");
  shutdown_();
}

/* ---- the idle collection ---------------------------------------- */

static int paused;
static void onpause(uv_timer_t *t) {
  (void)t;
  paused = 1;
}
static int haspaused(void) { return paused; }

/* Runs the loop ms milliseconds, sending nothing: the engine stays idle. */
static void idlefor(uint64_t ms) {
  paused = 0;
  uv_timer_start(&F.tick, onpause, ms, 0);
  until(haspaused, "a pause", 0);
}

/* Whether a Lua expression over `v` holds in the test's state. */
static int holds(const char *expr) {
  char src[512];
  int r;
  snprintf(src, sizeof src, "return %s", expr);
  cr_assert_eq(luaL_dostring(F.L, src), LUA_OK, "%s", lua_tostring(F.L, -1));
  r = lua_toboolean(F.L, -1);
  lua_settop(F.L, 0);
  return r;
}

/*
** Asks for collectgarbage('count') (into `v`) after idle periods longer
** than the engine's wait (250 ms) until `expr` holds: at most 20 tries.
** Each ask is a request, which puts the collection off again.
*/
static void idle_until(uint64_t *id, const char *expr) {
  for (int i = 0; i < 20; i++) {
    idlefor(400);
    exec(++*id, "return collectgarbage('count'), collectgarbage('isrunning')");
    reply(*id, PLUSH_S_OK);
    if (holds(expr)) return;
  }
  ok(expr);
}

/*
** An engine collects what its tasks left once it has stayed idle, the
** user calling no collectgarbage (also what a task let go of that an
** earlier one made); not while the user has stopped the
** collector; and the collector's mode stays the user's.
*/
Test(engine, idle_engine_collects_its_garbage) {
  uint64_t id = 1;
  static const char garbage[] =
      "local t = {} for i = 1, 4000 do t[i] = {i} end\n"
      "return collectgarbage('count')";
  boot(-1, 0, 0);
  exec(id, garbage); /* ~300 kB, all garbage once the task is over */
  reply(id, PLUSH_S_OK);
  ok("v.r[1] > 0 and (function() before = v.r[1] return true end)()");
  idle_until(&id, "v.r[1] < before - 200");
  /* made by one task, let go of by a later one that allocates nothing:
  ** collected too, though the heap did not grow since the last collection */
  exec(++id, "big = {} for i = 1, 4000 do big[i] = {i} end\n"
             "return collectgarbage('count')");
  reply(id, PLUSH_S_OK);
  ok("(function() before = v.r[1] return true end)()");
  idlefor(400); /* the idle collection finds it alive */
  exec(++id, "big = nil");
  reply(id, PLUSH_S_OK);
  idle_until(&id, "v.r[1] < before - 200");
  /* stopped: nothing collected, however long the engine idles */
  exec(++id, "collectgarbage('stop')\n" "local t = {} for i = 1, 4000 do t[i] = {i} end\n"
             "return collectgarbage('count')");
  reply(id, PLUSH_S_OK);
  ok("(function() before = v.r[1] return true end)()");
  idlefor(700);
  exec(++id, "return collectgarbage('count'), collectgarbage('isrunning')");
  reply(id, PLUSH_S_OK);
  ok("v.r[1] >= before and v.r[2] == false");
  /* restarted, in generational mode: collected, and the mode kept */
  exec(++id, "collectgarbage('restart') return collectgarbage('generational')");
  reply(id, PLUSH_S_OK);
  ok("v.r[1] == 'incremental'");
  exec(++id, garbage);
  reply(id, PLUSH_S_OK);
  ok("(function() before = v.r[1] return true end)()");
  idle_until(&id, "v.r[1] < before - 200 and v.r[2] == true");
  exec(++id, "return collectgarbage('incremental'), collectgarbage('count')");
  reply(id, PLUSH_S_OK);
  ok("v.r[1] == 'generational'");
  shutdown_();
}

/* ---- exec's chunk cache ------------------------------------------ */

/* An exec request with a chunk name. */
static void execnamed(uint64_t id, const char *name, const char *code) {
  char src[1024];
  snprintf(src, sizeof src, "return {op = 'exec', name = '%s', code = [==[%s]==]}",
           name, code);
  sendval(PLUSH_T_REQ, id, src);
}

/*
** The same code run again runs as if compiled anew: a new function each
** time, its _ENV the globals whatever an earlier run did to its own, the
** functions an earlier run made keeping theirs; its chunk name and lines
** as sent; a syntax error each time; past the cache's size still right.
*/
Test(engine, repeated_chunks_share_nothing) {
  static const char same[] =
      "local before, getinfo = _ENV == _G, debug.getinfo\n"
      "fs = fs or {}\n"
      "fs[#fs + 1] = function() return y end\n"
      "mains = mains or {}\n"
      "mains[#mains + 1] = getinfo(1, 'f').func\n"
      "if #fs == 2 then _ENV = {y = 'second'} end\n"
      "return before, getinfo(1, 'S').source, getinfo(1, 'l').currentline";
  boot(-1, 0, 0);
  exec(1, "y = 'global'");
  reply(1, PLUSH_S_OK);
  for (uint64_t id = 2; id <= 4; id++) {
    exec(id, same);
    reply(id, PLUSH_S_OK);
    ok("v.r[1] == true and v.r[2] == '=execute' and v.r[3] == 7");
  }
  exec(5, "return fs[1](), fs[2](), fs[3](), mains[1] ~= mains[2], "
          "mains[2] ~= mains[3], mains[1] ~= mains[3]");
  reply(5, PLUSH_S_OK);
  ok("v.r[1] == 'global' and v.r[2] == 'second' and v.r[3] == 'global' "
     "and v.r[4] and v.r[5] and v.r[6]");
  /* the name is part of what was compiled */
  execnamed(6, "one", "error('x')");
  reply(6, PLUSH_S_ERROR);
  ok("v.message == 'one:1: x'");
  execnamed(7, "two", "error('x')");
  reply(7, PLUSH_S_ERROR);
  ok("v.message == 'two:1: x'");
  execnamed(8, "one", "error('x')");
  reply(8, PLUSH_S_ERROR);
  ok("v.message == 'one:1: x'");
  for (uint64_t id = 9; id <= 10; id++) {
    exec(id, "a = = 1");
    reply(id, PLUSH_S_ERROR);
    ok("v.message:find('execute:1:', 1, true) == 1");
  }
  /* more distinct chunks than the cache holds, each run twice */
  for (int i = 0; i < 200; i++) {
    char code[64], want[64];
    snprintf(code, sizeof code, "return %d", i / 2);
    exec(11 + (uint64_t)i, code);
    reply(11 + (uint64_t)i, PLUSH_S_OK);
    snprintf(want, sizeof want, "v.r.n == 1 and v.r[1] == %d", i / 2);
    ok(want);
  }
  shutdown_();
}

/* A limit too small for the libraries fails the engine with a reason. */
Test(engine, memory_limit_too_small) {
  extra.memory_limit = 16 << 10;
  init();
  start(-1, 0, F.port);
  until(hasexited, "the engine to fail", 0);
  cr_assert_eq(F.status, PLUSH_ENGINE_FAILED);
  cr_assert(strstr(F.reason, "memory limit of 16384 bytes") != NULL, "%s",
            F.reason);
  finish();
}

/*
** A link that dies without a reset: when WELCOME says dead_after, the
** engine gives a controller that stays silent that long up and dials
** again; PINGs keep the link alive.
*/
static uv_timer_t pinger, span;
static int spanned;
static void onping(uv_timer_t *t) {
  (void)t;
  sendhdr(PLUSH_T_PING, 0, 7);
}
static void onspan(uv_timer_t *t) {
  (void)t;
  spanned = 1;
}
static int hasspanned(void) { return spanned; }

Test(engine, silent_controller_is_given_up) {
  plush_frame *f;
  extra.reconnect = 30;
  init();
  start(-1, 0, F.port);
  plush_frame_unref(expect(PLUSH_T_REGISTER, 0));
  lua_pushinteger(F.L, (lua_Integer)getpid());
  lua_setglobal(F.L, "mypid");
  F.id = 1;
  sendval(PLUSH_T_WELCOME, 0, "return {id = 1, dead_after = 0.3}");
  exec(1, "x = 'still here'");
  reply(1, PLUSH_S_OK);
  /* 0.9 s of pings every 50 ms: the link stays up. */
  uv_timer_init(&F.loop, &pinger);
  uv_timer_init(&F.loop, &span);
  uv_timer_start(&pinger, onping, 50, 50);
  uv_timer_start(&span, onspan, 900, 0);
  until(hasspanned, "0.9 s to pass", 0);
  uv_timer_stop(&pinger);
  cr_assert(!F.closed, "the engine hung up while pinged");
  cr_assert_gt(F.qn, 10);
  while (F.qn) {
    f = next();
    cr_assert_eq(f->hdr.type, PLUSH_T_PONG);
    plush_frame_unref(f);
  }
  /* Silence: the engine hangs up and comes back. */
  until(hasclosed, "the engine to give the silent controller up", 0);
  forget();
  comeback(1, 1);
  exec(2, "return x");
  reply(2, PLUSH_S_OK);
  ok("v.r[1] == 'still here'");
  uv_close((uv_handle_t *)&pinger, NULL);
  uv_close((uv_handle_t *)&span, NULL);
  shutdown_();
}

/*
** Scalar results take engines/engine_reply.c's fast path (written
** straight into the reply, no tables): every MessagePack width of
** integers and strings, floats (NaN, infinities), booleans, nil holes,
** map heads past 15 entries, 64 results (the most it takes) and 65 (the
** general path), a string of 1 MiB (the general path's big string).
** Each is checked against the same expression run in the test's state.
*/
static void same(uint64_t id, const char *expr) {
  char src[1024];
  snprintf(src, sizeof src, "return %s", expr);
  exec(id, src);
  reply(id, PLUSH_S_OK);
  snprintf(src, sizeof src,
           "(function(w) local k = 0\n"
           "  for key in pairs(v.r) do k = k + 1 end\n"
           "  if v.r.n ~= w.n or math.type(v.r.n) ~= 'integer' then return false end\n"
           "  local m = 1\n"
           "  for i = 1, w.n do\n"
           "    local a, b = v.r[i], w[i]\n"
           "    if b ~= nil then m = m + 1 end\n"
           "    if not ((a == b and math.type(a) == math.type(b)) or (a ~= a and b ~= b))\n"
           "    then return false end\n"
           "  end\n"
           "  return k == m and type(v.started) == 'number' and v.started <= v.completed\n"
           "end)(table.pack(%s))", expr);
  ok(src);
}

Test(engine, scalar_replies_travel_exactly) {
  static const char *exprs[] = {
      "",
      "nil",
      "nil, nil, 3, nil",
      "true, false, 0, -1, -32, -33, 127, 128, 255, 256, 65535, 65536",
      "-128, -129, -32768, -32769, -2147483648, -2147483649, 4294967295, "
      "4294967296, math.maxinteger, math.mininteger",
      "0.0, -0.0, 1.5, 2^53, 1/0, -1/0, 0/0, 0.1, math.pi",
      "'', 'a\\0b', ('x'):rep(31), ('x'):rep(32), ('y'):rep(255), ('y'):rep(256)",
      "('z'):rep(65535), ('z'):rep(65536), ('w'):rep(1 << 20)",
      "table.unpack((function() local t = {} for i = 1, 20 do t[i] = i end "
      "return t end)())",
      "table.unpack((function() local t = {} for i = 1, 64 do t[i] = i * 0.5 end "
      "return t end)())",
      "table.unpack((function() local t = {} for i = 1, 65 do t[i] = 'v' .. i end "
      "return t end)())",
  };
  boot(-1, 0, 0);
  for (size_t i = 0; i < sizeof exprs / sizeof *exprs; i++)
    same(i + 1, exprs[i]);
  exec(99, "return 1, {2}, 'three'"); /* a table: the general path */
  reply(99, PLUSH_S_OK);
  ok("v.r.n == 3 and v.r[1] == 1 and v.r[2][1] == 2 and v.r[3] == 'three'");
  /* an apply's results take it too */
  sendval(PLUSH_T_REQ, 100, "return {op = 'apply', args = {n = 2, 40, 'x'},\n"
                            "  f = function(a, b) return a + 2, b .. 'y', nil end}");
  reply(100, PLUSH_S_OK);
  ok("v.r.n == 3 and v.r[1] == 42 and v.r[2] == 'xy' and v.r[3] == nil");
  shutdown_();
}

/*
** apply's request read without its tables (engines/engine_req.c): the
** three keys in each of their six orders, args {n = 0} (no table made),
** a table, or absent; and what it leaves to the general path answers as
** before: values shared between f and args or inside args (BACKREF,
** UPVALUE), another key, a bad f or args.
*/
static void enc_into(plush_buf *b, const char *src) {
  char err[256];
  if (luaL_dostring(F.L, src) != LUA_OK)
    cr_assert_fail("bad test source: %s", lua_tostring(F.L, -1));
  cr_assert_eq(plush_encode(F.L, -1, b, "part", err, sizeof err), 0, "%s", err);
  lua_settop(F.L, 0);
}

/* {op = "apply", f = fsrc, args = asrc} with its keys in the order of
** the digits of order (0 op, 1 f, 2 args); asrc NULL: no args key. */
static void sendapply(uint64_t id, const char *order, const char *fsrc,
                      const char *asrc) {
  plush_buf b = PLUSH_BUF_INIT;
  plush_hdr h = {.type = PLUSH_T_REQ, .engine = F.id, .id = id};
  cr_assert_eq(plush_buf_append(&b, asrc ? "\x83" : "\x82", 1), 0);
  for (const char *o = order; *o; o++) {
    if (*o == '0') cr_assert_eq(plush_buf_append(&b, "\xa2op\xa5" "apply", 9), 0);
    if (*o == '1') {
      cr_assert_eq(plush_buf_append(&b, "\xa1" "f", 2), 0);
      enc_into(&b, fsrc);
    }
    if (*o == '2' && asrc) {
      cr_assert_eq(plush_buf_append(&b, "\xa4" "args", 5), 0);
      enc_into(&b, asrc);
    }
  }
  cr_assert_eq(plush_conn_write(F.conn, &h, b.data, b.len), 0);
  plush_buf_free(&b);
}

Test(engine, apply_requests_read_without_their_table) {
  static const char *orders[] = {"012", "021", "102", "120", "201", "210"};
  static const char count[] =
      "local k = 5 return function(...) return select('#', ...), k, ... end";
  uint64_t id = 1;
  boot(-1, 0, 0);
  for (int i = 0; i < 6; i++) {
    sendapply(id, orders[i], count, "return {n = 0}");
    reply(id++, PLUSH_S_OK);
    ok("v.r.n == 2 and v.r[1] == 0 and v.r[2] == 5");
    sendapply(id, orders[i], count, "return {n = 3, 'a', nil, 3.5}");
    reply(id++, PLUSH_S_OK);
    ok("v.r.n == 5 and v.r[1] == 3 and v.r[3] == 'a' and v.r[4] == nil and v.r[5] == 3.5");
    sendapply(id, orders[i], count, NULL);
    reply(id++, PLUSH_S_OK);
    ok("v.r.n == 2 and v.r[1] == 0");
  }
  sendapply(id, "012", count, "return {}");
  reply(id++, PLUSH_S_OK);
  ok("v.r.n == 2 and v.r[1] == 0");
  /* shared: inside args, and between f's upvalue and args (both orders) */
  sendval(PLUSH_T_REQ, id, "local t = {1, 2} return {op = 'apply', args = {n = 2, t, t},\n"
                           "  f = function(a, b) return rawequal(a, b), #a end}");
  reply(id++, PLUSH_S_OK);
  ok("v.r.n == 2 and v.r[1] == true and v.r[2] == 2");
  sendval(PLUSH_T_REQ, id, "local t = {7} return {op = 'apply', args = {n = 1, t},\n"
                           "  f = function(x) return rawequal(x, t), t[1] end}");
  reply(id++, PLUSH_S_OK);
  ok("v.r.n == 2 and v.r[1] == true and v.r[2] == 7");
  sendval(PLUSH_T_REQ, id, "local n = 0 local function g() n = n + 1 return n end\n"
                           "return {op = 'apply', args = {n = 1, g},\n"
                           "  f = function(h) h() return n, g() end}");
  reply(id++, PLUSH_S_OK);
  ok("v.r.n == 2 and v.r[1] == 1 and v.r[2] == 2");
  /* left to the general path: another key, a bad f or args */
  sendval(PLUSH_T_REQ, id, "return {op = 'apply', f = function(a) return a end,"
                           " args = {n = 1, 9}, extra = true}");
  reply(id++, PLUSH_S_OK);
  ok("v.r.n == 1 and v.r[1] == 9");
  sendapply(id, "012", "return 5", "return {n = 0}");
  reply(id++, PLUSH_S_BADREQ);
  ok("v.message == \"apply needs a function 'f'\"");
  sendapply(id, "210", count, "return 5");
  reply(id++, PLUSH_S_BADREQ);
  ok("v.message == \"apply: 'args' must be a table\"");
  sendapply(id, "012", count, "return {n = -1}");
  reply(id++, PLUSH_S_BADREQ);
  ok("v.message == 'apply: bad argument count -1'");
  shutdown_();
}

/*
** A function without upvalues sent again is the closure loaded the first
** time (engines/engine_req.c keeps it by its bytecode): seen through its
** identity, which it finds by debug.getinfo and keeps in the globals it
** gets as an argument. A function with an upvalue is loaded fresh every
** time, its upvalue too; 40 functions over the cache's 32 slots each
** answer their own value, first and second time.
*/
Test(engine, functions_without_upvalues_kept_by_bytecode) {
  static const char same[] =
      "return function(G, tag) local me = G.debug.getinfo(1, 'f').func\n"
      "  local was = G.rawequal(G[tag], me) G[tag] = me return was end";
  static const char upv[] =
      "local n = 0 return function(G) n = n + 1\n"
      "  local me = G.debug.getinfo(1, 'f').func\n"
      "  local was = rawequal(G.upv, me) G.upv = me return was, n end";
  char src[128];
  uint64_t id = 1;
  boot(-1, 0, 0);
  sendapply(id, "012", same, "return {n = 2, _G, 'a'}");
  reply(id++, PLUSH_S_OK);
  ok("v.r.n == 1 and v.r[1] == false");
  sendapply(id, "201", same, "return {n = 2, _G, 'a'}");
  reply(id++, PLUSH_S_OK);
  ok("v.r.n == 1 and v.r[1] == true");
  for (int i = 0; i < 2; i++) {
    sendapply(id, "012", upv, "return {n = 1, _G}");
    reply(id++, PLUSH_S_OK);
    ok("v.r.n == 2 and v.r[1] == false and v.r[2] == 1");
  }
  for (int round = 0; round < 2; round++)
    for (int k = 1; k <= 40; k++) {
      snprintf(src, sizeof src, "return function(x) return x + %d end", k);
      sendapply(id, "012", src, "return {n = 1, 1000}");
      reply(id++, PLUSH_S_OK);
      snprintf(src, sizeof src, "v.r.n == 1 and v.r[1] == %d", 1000 + k);
      ok(src);
    }
  /* kept or not after the others passed, it answers as itself */
  sendapply(id, "012", same, "return {n = 2, _G, 'b'}");
  reply(id++, PLUSH_S_OK);
  ok("v.r.n == 1 and v.r[1] == false");
  shutdown_();
}

/* A map of n pairs (kv[2i] the key's Lua source, kv[2i + 1] the
** value's), encoded in that order, as a request. */
static void sendpairs(uint64_t id, int n, const char *const *kv) {
  plush_buf b = PLUSH_BUF_INIT;
  plush_hdr h = {.type = PLUSH_T_REQ, .engine = F.id, .id = id};
  uint8_t head = (uint8_t)(0x80 | n);
  cr_assert_eq(plush_buf_append(&b, &head, 1), 0);
  for (int i = 0; i < 2 * n; i++) enc_into(&b, kv[i]);
  cr_assert_eq(plush_conn_write(F.conn, &h, b.data, b.len), 0);
  plush_buf_free(&b);
}

/*
** exec's request read without its table (engines/engine_req.c): keys in
** any order, with and without name and auto, code in every str width;
** and the general path's answers for what it leaves: another key, a
** name that is not a string, an auto that is not a boolean, no code.
*/
Test(engine, exec_requests_read_without_their_table) {
  static const char *const a[] = {"return 'code'", "return 'x = (x or 0) + 1 return x'",
                                  "return 'op'", "return 'exec'"};
  static const char *const b[] = {"return 'name'", "return 'mine'",
                                  "return 'auto'", "return true", "return 'op'",
                                  "return 'exec'", "return 'code'", "return '1 +'"};
  static const char *const c[] = {"return 'auto'", "return false", "return 'op'",
                                  "return 'exec'", "return 'code'",
                                  "return 'return ' .. ('1 + '):rep(20) .. '1'"};
  static const char *const d[] = {"return 'op'", "return 'exec'", "return 'code'",
                                  "return 'return #[[' .. ('z'):rep(300) .. ']]'",
                                  "return 'name'", "return 7", "return 'auto'", "return 1"};
  static const char *const e[] = {"return 'op'", "return 'exec'", "return 'code'",
                                  "return 'return 5'", "return 'other'", "return 1"};
  static const char *const g[] = {"return 'op'", "return 'exec'", "return 'name'",
                                  "return 'x'"};
  static const char *const h[] = {"return 'op'", "return 'exec'", "return 'code'",
                                  "return 'error(\"boom\")'", "return 'name'",
                                  "return 'named'"};
  boot(-1, 0, 0);
  sendpairs(1, 2, a);
  reply(1, PLUSH_S_OK);
  ok("v.r.n == 1 and v.r[1] == 1");
  sendpairs(2, 2, a);
  reply(2, PLUSH_S_OK);
  ok("v.r.n == 1 and v.r[1] == 2");
  sendpairs(3, 4, b); /* a syntax error names the chunk */
  reply(3, PLUSH_S_ERROR);
  ok("v.message:find('^mine:1:') ~= nil and v.chunk == 'mine'");
  sendpairs(4, 3, c);
  reply(4, PLUSH_S_OK);
  ok("v.r.n == 1 and v.r[1] == 21");
  sendpairs(5, 4, d); /* str 16 code; name 7 and auto 1: the general path */
  reply(5, PLUSH_S_OK);
  ok("v.r.n == 1 and v.r[1] == 300");
  sendpairs(6, 3, e);
  reply(6, PLUSH_S_OK);
  ok("v.r.n == 1 and v.r[1] == 5");
  sendpairs(7, 2, g);
  reply(7, PLUSH_S_BADREQ);
  ok("v.message == \"exec needs a string 'code'\"");
  sendpairs(8, 3, h);
  reply(8, PLUSH_S_ERROR);
  ok("v.message == 'named:1: boom' and v.chunk == 'named' and v.line == 1");
  shutdown_();
}
