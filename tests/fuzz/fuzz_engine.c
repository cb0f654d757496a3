/*
** fuzz_engine.c — libFuzzer target for the ENGINE's request handling
** after authentication: a real engine (plush_engine_start, its Lua
** thread) on a loop in this process, connected through the real
** handshake to a minimal fake controller on the same loop, and the input
** turned into frames that controller sends it. After each input the
** controller sends {op = "exec", code = "return 1"} and the engine must
** answer it within 5 s (a request still running after 500 ms is
** interrupted, every 250 ms: the engine must stop it), and every request of the input must have had
** exactly one answer (REPLY, or RECLAIMED) before it: a crash, a hang, a
** leak, a dropped link, a lost or doubled answer or an engine that
** stopped serving is a finding.
**
** The engine runs only code from a fixed menu (fe_code, fe_funcs) picked
** by input bytes, never code from the input: the fuzzer explores request
** shapes and values, not arbitrary Lua (which could loop forever or call
** os.exit). Values from the input that hold a function are not sent.
**
** Input: records until it ends, each
**   byte 0  what (low 3 bits): 0 REQ built from the menu, 1 REQ whose
**           payload is the record's bytes, 2 INTERRUPT, 3 RESTART,
**           4 RECLAIM, 5 PING, 6 any other frame type (byte 1), 7 REQ
**           from the menu with the flags of byte 1
**   byte 1  for 0 and 7: op (low 3 bits, of fe_ops) and menu entry (high
**           5 bits); for 2 and 4: which task (0: the running one, else
**           the n-th last sent); for 6: the frame type
**   byte 2-3  payload length n (little-endian), then n payload bytes
** For 0 and 7 the payload is the codec's encoding of a table whose fields
** join the request (args, items, n, ns, names, prefix, name, auto ...);
** op, code and f are always the menu's. tests/fuzz/corpus/engine has
** seeds of every kind (gen_corpus.c).
*/
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <lauxlib.h>
#include <lualib.h>

#include "buf.h"
#include "codec.h"
#include "conn.h"
#include "engine_host.h"
#include "frame.h"
#include "log.h"
#include "plush.h"

#define FE_SYNC 0x7fffffffu /* the check request's id */
#define FE_ID 1u            /* the engine's id */
#define FE_WAIT 5000        /* ms any wait may take */
#define FE_MAXREQ 4096      /* requests one input may send (records >= 4 B) */

static const uint8_t fe_key[PLUSH_KEY_SIZE] = "plush-fuzz-eng-key-0123456789ab";

static const char *const fe_ops[] = {"exec", "apply", "push", "pull",
                                     "map",  "names", "exec", "nosuchop"};

/* exec's code; each returns in well under a second */
static const char *const fe_code[] = {
    "return 1",
    "return ...",
    "error('boom')",
    "error({code = 7})",
    "error()",
    "return nil, 2, nil",
    "print('hi', 1, nil) io.write('x', 2)",
    "return function(x) return x end",
    "local t = {} t.t = t return t",
    "x = (x or 0) + 1 return x",
    "return string.rep('a', 70000)",
    "local s = 0 for i = 1, 100000 do s = s + i end return s",
    "return setmetatable({}, {__gc = function() error('gc') end})",
    "collectgarbage() return collectgarbage('count') > 0",
    "return coroutine.wrap(function() coroutine.yield(1) end)()",
    "coroutine.yield(1)",
    "return io.stdout",
    "return {1, 2, 3, n = 3}, {a = {b = {c = {}}}}",
    "return print",
    "local t0 = os.clock() while os.clock() - t0 < 0.02 do end return 2",
    "return 1 +",
    "return select('#', ...)",
    "return table.pack(pcall(error, 'x'))",
    "return 0/0, 1/0, math.mininteger, -0.0",
    "return engine and engine.id",
    "local t = {} for i = 1, 1000 do t[i] = {i} end return t",
    "return string.rep('\\0\\255', 10)",
    "return load('return 3')()",
    "return setmetatable({}, {__index = function() error('idx') end})",
    "return setmetatable({}, {__pairs = function() error('p') end})",
    "return _G",
    "return require('string')"};

/* apply's and map's f */
static const char *const fe_funcs[] = {
    "return function(...) return ... end",
    "return function(x) return x.y end",
    "return function(x) error(x) end",
    "return function(...) return select('#', ...) end",
    "return tostring",
    "return function(x) return x, x end",
    "return function(x) print(x) return #tostring(x) end",
    "return function() return function() end end"};

#define NCODE (sizeof fe_code / sizeof *fe_code)
#define NFUNC (sizeof fe_funcs / sizeof *fe_funcs)

static struct {
  uv_loop_t loop;
  uv_tcp_t server;
  uv_timer_t timer, nudge;
  uint64_t running;    /* the last request STARTED and not answered */
  int port, timedout;
  lua_State *L;        /* ours: builds and encodes requests */
  plush_conn *conn;    /* our end of the engine's link */
  plush_engine *eng;
  int welcomed, exited, synced;
  uint64_t seq, sent[8];
  int tolerant;        /* the input sent frames the engine may close on */
  /* this input's requests: each is answered once (REPLY or RECLAIMED) */
  uint64_t out[FE_MAXREQ];
  unsigned char answered[FE_MAXREQ];
  size_t nout;
} FE;

static void fe_check(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "fuzz_engine: %s\n", what);
    abort();
  }
}

/* ---- the fake controller ---- */

static void fe_send(int type, int flags, uint64_t id, uint32_t aux,
                    const void *p, size_t n) {
  plush_hdr h;
  memset(&h, 0, sizeof h);
  h.type = (uint8_t)type;
  h.flags = (uint8_t)flags;
  h.engine = FE_ID;
  h.id = id;
  h.aux = aux;
  if (FE.conn) plush_conn_write(FE.conn, &h, p, n);
}

static void ct_frame(plush_conn *c, plush_frame *f) {
  (void)c;
  if (f->hdr.type == PLUSH_T_REGISTER) {
    static const char welcome[] = "\x81\xa2id\x01"; /* {id = 1} */
    fe_send(PLUSH_T_WELCOME, 0, 0, 0, welcome, sizeof welcome - 1);
    FE.welcomed = 1;
  } else if (f->hdr.type == PLUSH_T_STARTED && f->hdr.id != FE_SYNC) {
    FE.running = f->hdr.id;
  } else if ((f->hdr.type == PLUSH_T_REPLY ||
              f->hdr.type == PLUSH_T_RECLAIMED) && f->hdr.id != FE_SYNC) {
    size_t i;
    for (i = 0; i < FE.nout && FE.out[i] != f->hdr.id; i++) {}
    fe_check(i < FE.nout, "an answer to a request never sent");
    fe_check(!FE.answered[i], "a request answered twice");
    FE.answered[i] = 1;
    if (FE.running == f->hdr.id) FE.running = 0;
  } else if (f->hdr.type == PLUSH_T_REPLY && f->hdr.id == FE_SYNC) {
    fe_check(f->hdr.status == PLUSH_S_OK, "the check request failed");
    fe_check(f->hdr.len > 0, "the check request's reply is empty");
    FE.synced = 1;
  }
  plush_frame_unref(f);
}

static void ct_close(plush_conn *c, int reason, const char *msg) {
  (void)c, (void)reason, (void)msg;
  FE.conn = NULL;
  FE.welcomed = 0;
}

static const plush_conn_cbs ctcbs = {NULL, ct_frame, NULL, ct_close, NULL,
                                     NULL};

static void ct_accept(uv_stream_t *server, int status) {
  plush_conn_opts o;
  plush_conn *c;
  memset(&o, 0, sizeof o);
  o.key = fe_key;
  fe_check(status == 0, "accept");
  fe_check(FE.conn == NULL, "a second engine link");
  fe_check(plush_conn_accept(server, &o, &ctcbs, NULL, &c) == 0, "accept");
  FE.conn = c;
}

static void fe_exit(plush_engine *e, int status, const char *reason,
                    void *data) {
  (void)e, (void)data;
  if (getenv("FUZZ_ENGINE_LOG"))
    fprintf(stderr, "fuzz_engine: engine exited %d: %s\n", status, reason);
  FE.exited = 1;
  FE.eng = NULL;
}

/* ---- driving the loop ---- */

static void fe_timeout(uv_timer_t *t) {
  (void)t;
  FE.timedout = 1;
}

/* A request may legitimately run long (a map over 2^30 items): while
** the check waits, the running one is interrupted every 250 ms. */
static void fe_nudge(uv_timer_t *t) {
  (void)t;
  if (FE.running) fe_send(PLUSH_T_INTERRUPT, 0, FE.running, 0, NULL, 0);
}

/* Runs the loop until *flag, or FE_WAIT ms (a finding). */
static void fe_until(const int *flag, const char *what) {
  FE.timedout = 0;
  uv_timer_start(&FE.timer, fe_timeout, FE_WAIT, 0);
  while (!*flag && !FE.timedout) uv_run(&FE.loop, UV_RUN_ONCE);
  uv_timer_stop(&FE.timer);
  fe_check(*flag, what);
}

static void fe_start(void) {
  plush_engine_opts o;
  memset(&o, 0, sizeof o);
  o.host = "127.0.0.1";
  o.port = FE.port;
  o.key = fe_key;
  o.id = -1;
  o.memory_limit = (size_t)64 << 20;
  o.on_exit = fe_exit;
  FE.exited = 0;
  fe_check(plush_engine_start(&FE.loop, &o, &FE.eng) == 0, "engine start");
  fe_until(&FE.welcomed, "the engine did not register");
}

/* The engine is gone or its link is: stop what is left, start anew. */
static void fe_restart(void) {
  if (FE.eng) plush_engine_stop(FE.eng);
  if (FE.conn) plush_conn_close(FE.conn, 0, "restart");
  if (!FE.exited) fe_until(&FE.exited, "the engine does not stop");
  while (FE.conn) uv_run(&FE.loop, UV_RUN_ONCE);
  fe_start();
}

static void fe_init(void) {
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (FE.L) return;
  signal(SIGPIPE, SIG_IGN);
  plush_log_level(getenv("FUZZ_ENGINE_LOG") ? PLUSH_LOG_DEBUG
                                            : PLUSH_LOG_ERROR + 1);
  fe_check(plush_auth_init() == 0, "auth init");
  uv_loop_init(&FE.loop);
  uv_timer_init(&FE.loop, &FE.timer);
  uv_timer_init(&FE.loop, &FE.nudge);
  uv_tcp_init(&FE.loop, &FE.server);
  uv_ip4_addr("127.0.0.1", 0, &a);
  fe_check(uv_tcp_bind(&FE.server, (struct sockaddr *)&a, 0) == 0, "bind");
  fe_check(uv_listen((uv_stream_t *)&FE.server, 4, ct_accept) == 0, "listen");
  uv_tcp_getsockname(&FE.server, (struct sockaddr *)&ss, &len);
  FE.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  FE.L = luaL_newstate();
  luaL_openlibs(FE.L);
  fe_check(luaL_dostring(FE.L,
    "function hasfn(v, seen)\n"
    "  if type(v) == 'function' or type(v) == 'userdata' then return true end\n"
    "  if type(v) ~= 'table' then return false end\n"
    "  seen = seen or {}\n"
    "  if seen[v] then return false end\n"
    "  seen[v] = true\n"
    "  for k, x in next, v do\n"
    "    if hasfn(k, seen) or hasfn(x, seen) then return true end\n"
    "  end\n"
    "  return getmetatable(v) ~= nil\n"
    "end") == LUA_OK, "hasfn");
  fe_start();
}

/*
** Decodes the input's bytes in our state: the value (or nil when they do
** not decode or hold a function, which would run input code) on top.
*/
static int fe_value(const uint8_t *p, size_t n) {
  char err[128];
  int top = lua_gettop(FE.L);
  if (plush_decode(FE.L, (const char *)p, n, NULL, err, sizeof err) != 0) {
    lua_settop(FE.L, top);
    lua_pushnil(FE.L);
    return 0;
  }
  lua_getglobal(FE.L, "hasfn");
  lua_pushvalue(FE.L, -2);
  if (lua_pcall(FE.L, 1, 1, 0) != LUA_OK || lua_toboolean(FE.L, -1)) {
    lua_settop(FE.L, top);
    lua_pushnil(FE.L);
    return 0;
  }
  lua_pop(FE.L, 1);
  return 1;
}

/* A request sent: one answer is due before the check request's. */
static void fe_sent(uint64_t id) {
  memmove(FE.sent + 1, FE.sent, sizeof FE.sent - sizeof *FE.sent);
  FE.sent[0] = id;
  fe_check(FE.nout < FE_MAXREQ, "too many requests");
  FE.answered[FE.nout] = 0;
  FE.out[FE.nout++] = id;
}

/* Encodes the value on top of our state (popped) as a REQ. */
static void fe_req(int flags, const char *what) {
  plush_buf b = PLUSH_BUF_INIT;
  char err[128];
  uint64_t id = ++FE.seq;
  if (plush_encode(FE.L, -1, &b, "request", err, sizeof err) == 0) {
    fe_sent(id);
    fe_send(PLUSH_T_REQ, flags, id, 0, b.data, b.len);
  } else {
    fe_check(what == NULL, what ? what : "");
  }
  plush_buf_free(&b);
  lua_pop(FE.L, 1);
}

/* A request of the menu's op and code, with the input's fields. */
static void fe_menu(int sel, int flags, const uint8_t *p, size_t n) {
  const char *op = fe_ops[sel & 7];
  int k = sel >> 3;
  lua_State *L = FE.L;
  if (!fe_value(p, n) || !lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
  }
  lua_pushstring(L, op);
  lua_setfield(L, -2, "op");
  lua_pushstring(L, fe_code[(size_t)k % NCODE]);
  lua_setfield(L, -2, "code");
  if (k & 16) {
    lua_pushnil(L); /* apply/map without f: a bad request */
  } else {
    fe_check(luaL_dostring(L, fe_funcs[(size_t)k % NFUNC]) == LUA_OK, "menu");
  }
  lua_setfield(L, -2, "f");
  fe_req(flags, "cannot encode a menu request");
}

/* A request whose payload is the input's, unless it would run its code. */
static void fe_raw(const uint8_t *p, size_t n) {
  int send = fe_value(p, n);
  if (send && lua_istable(FE.L, -1)) {
    if (lua_getfield(FE.L, -1, "code") != LUA_TNIL) send = 0;
    lua_pop(FE.L, 1);
  }
  lua_pop(FE.L, 1);
  if (send) {
    uint64_t id = ++FE.seq;
    fe_sent(id);
    fe_send(PLUSH_T_REQ, 0, id, 0, p, n);
  }
}

static int fe_ready(void) { return FE.welcomed && FE.conn && !FE.exited; }

/* The engine still serves: the check request is answered. */
static void fe_sync(void) {
  static const char req[] = "\x82\xa2op\xa4" "exec\xa4" "code\xa8" "return 1";
  if (!fe_ready()) {
    fe_check(FE.tolerant, "the engine left after well-formed frames");
    fe_restart();
    FE.nout = 0;
  }
  FE.synced = 0;
  fe_send(PLUSH_T_REQ, 0, FE_SYNC, 0, req, sizeof req - 1);
  FE.timedout = 0;
  uv_timer_start(&FE.timer, fe_timeout, FE_WAIT, 0);
  uv_timer_start(&FE.nudge, fe_nudge, 500, 250);
  while (!FE.synced && !FE.timedout && fe_ready())
    uv_run(&FE.loop, UV_RUN_ONCE);
  uv_timer_stop(&FE.timer);
  uv_timer_stop(&FE.nudge);
  if (!FE.synced && FE.tolerant && !fe_ready()) {
    fe_restart();
    FE.tolerant = 0;
    FE.nout = 0; /* the link they went on is gone */
    fe_sync();
    return;
  }
  fe_check(FE.synced, "the engine stopped answering");
  /* the engine runs its requests in order: all answered by now (those
  ** of a link that closed were forgotten with it) */
  for (size_t i = 0; i < FE.nout; i++)
      fe_check(FE.answered[i], "a request left unanswered");
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  int busy = 0;
  fe_init();
  if (!fe_ready()) fe_restart();
  FE.tolerant = 0;
  memset(FE.sent, 0, sizeof FE.sent); /* an input names only its own tasks */
  FE.nout = 0;
  FE.running = 0;
  while (n >= 4) {
    int what = d[0] & 7, b = d[1];
    size_t len = (size_t)d[2] | (size_t)d[3] << 8;
    uint64_t which;
    d += 4, n -= 4;
    if (len > n) len = n;
    which = (b & 7) ? FE.sent[(b & 7) - 1] : 0;
    /* the slow snippet at most a few times an input */
    if ((what == 0 || what == 7) && (size_t)(b >> 3) % NCODE == 19 &&
        ++busy > 4)
      b &= 7;
    switch (what) {
    case 0: fe_menu(b, 0, d, len); break;
    case 1: fe_raw(d, len); break;
    case 2: fe_send(PLUSH_T_INTERRUPT, 0, which, 0, NULL, 0); break;
    case 3: fe_send(PLUSH_T_RESTART, 0, 0, 0, d, len); break;
    case 4: fe_send(PLUSH_T_RECLAIM, 0, which, 0, NULL, 0); break;
    case 5: fe_send(PLUSH_T_PING, 0, ++FE.seq, (uint32_t)b, NULL, 0); break;
    case 6: {
      int type = 1 + b % (PLUSH_T__MAX - 1);
      /* SHUTDOWN ends the engine, a bad WELCOME too: as designed */
      if (type == PLUSH_T_SHUTDOWN || type == PLUSH_T_WELCOME) break;
      FE.tolerant = 1; /* a protocol error may close the link */
      if (type == PLUSH_T_REQ) { /* a request of its own: answered too */
        fe_sent(++FE.seq);
        fe_send(type, b >> 5, FE.seq, 0, d, len);
      } else {
        fe_send(type, b >> 5, FE.seq, 0, d, len);
      }
      break;
    }
    case 7:
      if (b & PLUSH_F_RELAYED) FE.tolerant = 1; /* no RELAY_END follows */
      fe_menu(b, b & 7, d, len);
      break;
    }
    d += len, n -= len;
    uv_run(&FE.loop, UV_RUN_NOWAIT);
  }
  fe_sync();
  return 0;
}
