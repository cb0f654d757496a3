/*
** lua_core.c — the plush.core Lua C module: the client's transport (a conn
** with a private libuv loop, driven from Lua by conn:poll), the wire codec on
** strings (lua_values.c, with the event tables), the clock and process
** helpers (lua_sys.c) and the SIGINT layer (sigint.c).
**
** A client is single-threaded: nothing runs on its loop except while Lua is
** inside core.connect, conn:poll or conn:close, and no callback of the loop
** ever touches Lua. Frames that arrive wait in a C FIFO until poll turns them
** into event tables in the caller's lua_State.
**
** Connecting, polling and closing are here: they share the client's loop
** and its callbacks (one owner, one teardown). The client struct is
** lua_client.h's; the requests are lua_send.c's; what needs no client
** (values, clock and processes, SIGINT) is in files of its own.
*/
#include "lua_core.h"
#include "lua_client.h"
#include "lua_fifo.h"
#include "lua_batch.h"
#include "lua_mute.h"
#include "lua_sys.h"
#include "lua_threads.h"
#include "lua_values.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <uv.h>

#include "codec.h"
#include "conn.h"
#include "lua_mem.h"
#include "mem.h"
#include "plush.h"
#include "proc.h"
#include "sigint.h"

#define CLOSE_GRACE 5.0 /* seconds close() waits for queued writes */

/*
** A budget per conn:poll, and a bound on what waits for it. A task that
** prints in a loop sends output faster than a terminal shows it; if one
** poll handed Lua everything that had arrived, the caller would spend
** seconds printing before it looked at the keyboard or at Ctrl-C again.
** So poll converts at most POLL_EVENTS frames or POLL_BYTES of payload
** and leaves the rest queued (the next poll returns at once). And reading
** stops while QUEUE_HIGH bytes wait here, until Lua has taken them below
** QUEUE_LOW: the socket, the controller and at last the printing engine
** then wait for us (their back-pressure), instead of our memory growing
** with everything the engine printed.
*/
#define POLL_EVENTS 256
#define POLL_BYTES ((size_t)64 << 10)
#define QUEUE_HIGH ((size_t)4 << 20)
#define QUEUE_LOW ((size_t)1 << 20)

/* ---- the client conn --------------------------------------------- */


static int qpush(client *c, plush_frame *f) {
  if (plush_fifo_push(&c->q, f) < 0) return PLUSH_ENOMEM;
  if (c->q.bytes > QUEUE_HIGH && !c->rpaused && c->conn != NULL) {
    plush_conn_pause(c->conn);
    c->rpaused = 1;
  }
  return 0;
}

/* Reading again once Lua took the queue below QUEUE_LOW. */
static void qresume(client *c) {
  if (c->rpaused && c->q.bytes < QUEUE_LOW) {
    c->rpaused = 0;
    if (c->conn != NULL) plush_conn_resume(c->conn);
  }
}

static void onready(plush_conn *pc) {
  client *c = plush_conn_data(pc);
  c->ready = 1;
}

/*
** A reply the controller relayed counts once the RELAY_END right behind it
** says so (plush_relay_take); a void one (its engine died mid-reply) is
** dropped: the task's EngineError follows.
*/
static void onframe(plush_conn *pc, plush_frame *f) {
  client *c = plush_conn_data(pc);
  int r;
  if (!c->welcomed && c->welcome == NULL && f->hdr.type == PLUSH_T_WELCOME) {
    c->welcome = f;
    return;
  }
  if ((r = plush_relay_take(&c->relayed, &f)) == PLUSH_RELAY_HELD) return;
  if (r < 0) {
    plush_conn_close(pc, PLUSH_EPROTO,
                     "protocol error: a relayed reply without its end");
    return;
  }
  if (f->hdr.type == PLUSH_T_REPLY && c->inflight > 0) c->inflight--;
  if (plush_mutes_drop(&c->mutes, f)) return;
  if (qpush(c, f) < 0) {
    plush_frame_unref(f);
    plush_conn_close(pc, PLUSH_ENOMEM, "out of memory queueing a frame");
  }
}

static void onclose(plush_conn *pc, int reason, const char *msg) {
  client *c = plush_conn_data(pc);
  c->conn = NULL;
  c->reason = reason;
  snprintf(c->msg, sizeof c->msg, "%s", msg);
  if (c->welcomed && !c->closing) c->owed = 1;
}

static const plush_conn_cbs cbs = {onready, onframe, NULL, onclose, NULL, NULL};

static void ontimer(uv_timer_t *t) {
  client *c = t->data;
  c->fired = 1;
}

static void settimer(client *c, double t) {
  double ms = ceil(t * 1000);
  c->fired = 0;
  uv_update_time(c->loop);
  uv_timer_start(&c->timer, ontimer, ms > 1e12 ? (uint64_t)1e12 : (uint64_t)ms,
                 0);
}

static void onintpipe(uv_poll_t *p, int status, int events) {
  (void)p, (void)status, (void)events;
  plush_sigint_drain();
}

/* lua_client.h */
void plush_client_watchint(client *c) {
  if (c->haspoll || c->nosigint || plush_sigint_fd() < 0 || c->loop == NULL) return;
  if (uv_poll_init(c->loop, &c->intpoll, plush_sigint_fd()) < 0) return;
  uv_poll_start(&c->intpoll, UV_READABLE, onintpipe);
  c->haspoll = 1;
}

/*
** Closing. A close started by us lets queued writes (a large request just
** submitted, a final ctrl) reach the controller, but waits at most grace
** seconds for them: a controller that stopped reading must not hang the
** client. What is still queued then is discarded.
*/
static void teardown(client *c, double grace) {
  if (c->loop == NULL) return;
  c->closing = 1;
  (void)plush_batch_flush(&c->batch); /* what waits is owed too */
  if (c->conn != NULL && grace > 0 && plush_conn_queued(c->conn) > 0) {
    settimer(c, grace);
    while (c->conn != NULL && plush_conn_queued(c->conn) > 0 && !c->fired)
      uv_run(c->loop, UV_RUN_ONCE);
    uv_timer_stop(&c->timer);
  }
  if (c->conn != NULL) {
    int reason = plush_conn_queued(c->conn) > 0 ? PLUSH_ECLOSED : 0;
    plush_conn_close(c->conn, reason, "closed by client");
    while (c->conn != NULL)
      if (uv_run(c->loop, UV_RUN_ONCE) == 0 && c->conn != NULL) break;
  }
  plush_fifo_free(&c->q);
  plush_mutes_free(&c->mutes);
  plush_frame_unref(c->welcome);
  plush_frame_unref(c->cur);
  plush_frame_unref(c->relayed);
  plush_frame_unref(c->applyf);
  c->welcome = c->cur = c->relayed = c->applyf = NULL;
  uv_close((uv_handle_t *)&c->timer, NULL);
  if (c->haspoll) uv_close((uv_handle_t *)&c->intpoll, NULL);
  c->haspoll = 0;
  if (c->hasfd) uv_close((uv_handle_t *)&c->fdpoll, NULL);
  c->hasfd = 0;
  uv_run(c->loop, UV_RUN_DEFAULT);
  /* A loop that cannot close still has handles pointing into it: leak it
  ** rather than free memory libuv may touch. */
  if (uv_loop_close(c->loop) == 0) free(c->loop);
  c->loop = NULL;
  plush_batch_stop(&c->batch);
  c->conn = NULL;
}

/* nil, "ENAME: message", "ENAME" (lua_client.h) */
int plush_client_operr(lua_State *L, const char *name, const char *fmt, ...) {
  char m[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m, sizeof m, fmt, ap);
  va_end(ap);
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", name, m);
  lua_pushstring(L, name);
  return 3;
}

/*
** The one-line reason a connect failed, from what on_close reported.
** A server that rejects our proof just closes the socket, so an EOF in
** the middle of the handshake means the key was refused.
*/
static const char *whyfailed(client *c, char *out, size_t n) {
  const char *w = c->where;
  if (c->conn != NULL) {
    snprintf(out, n, "timed out connecting to %s", w);
    return "ETIMEDOUT";
  } else if (c->ready) {
    snprintf(out, n, "cannot connect to %s: %s", w, c->msg);
  } else if (c->reason == PLUSH_EAUTH &&
             strncmp(c->msg, "not a plush", 11) == 0) {
    snprintf(out, n, "cannot connect to %s: not a plush controller", w);
  } else if (c->reason == PLUSH_EAUTH) {
    snprintf(out, n, "authentication refused by %s", w);
  } else if (c->reason == UV_ETIMEDOUT) {
    snprintf(out, n, "timed out connecting to %s", w);
  } else if (strncmp(c->msg, "cannot connect", 14) == 0) {
    snprintf(out, n, "cannot connect to %s: %s", w, plush_strerror(c->reason));
  } else if (c->reason == UV_EOF || c->reason == UV_ECONNRESET) {
    snprintf(out, n, "authentication refused by %s", w);
    return "EAUTH";
  } else {
    snprintf(out, n, "cannot connect to %s: %s", w, c->msg);
  }
  return c->reason < 0 ? plush_err_name(c->reason) : "ECLOSED";
}

/* Reads the client id from WELCOME {id = n}; 0 or -1 with err set. */
static int welcome(lua_State *L, client *c, char *err, size_t n) {
  plush_frame *f = c->welcome;
  char e[200];
  lua_Integer id = -1;
  int top = lua_gettop(L);
  if (plush_decode(L, plush_frame_payload(f), f->hdr.len, NULL, e,
                   sizeof e) < 0) {
    snprintf(err, n, "cannot connect to %s: bad WELCOME: %s", c->where, e);
    return -1;
  }
  if (lua_type(L, -1) == LUA_TTABLE && lua_getfield(L, -1, "id") &&
      lua_isinteger(L, -1))
    id = lua_tointeger(L, -1);
  lua_settop(L, top);
  if (id < 0 || id > INT32_MAX) {
    snprintf(err, n, "cannot connect to %s: bad WELCOME", c->where);
    return -1;
  }
  c->cid = (uint32_t)id;
  c->welcomed = 1;
  return 0;
}

/* core.connect(host, port, key [, timeout [, encrypt]]), or (fd, nil, key
** ...) over a socketpair end of lua_threads.c, then the conn's. */
static int l_connect(lua_State *L) {
  int byfd = lua_type(L, 1) == LUA_TNUMBER;
  lua_Integer fd = byfd ? luaL_checkinteger(L, 1) : -1;
  const char *host = byfd ? "in-process cluster" : luaL_checkstring(L, 1);
  lua_Integer port = byfd ? 0 : luaL_checkinteger(L, 2);
  const char *keyhex = luaL_checkstring(L, 3);
  double timeout = luaL_optnumber(L, 4, 10);
  int encrypt = lua_toboolean(L, 5); /* true: sealed even on loopback */
  uint8_t key[PLUSH_KEY_SIZE];
  char err[640];
  plush_conn_opts o;
  client *c;
  const char *name = "ECLOSED";
  int r;
  luaL_argcheck(L, byfd ? fd >= 0 && fd <= INT_MAX : port > 0 && port < 65536,
                byfd ? 1 : 2, byfd ? "descriptor expected" : "port out of range");
  luaL_argcheck(L, plush_key_parse(keyhex, key) == 0, 3,
                "key of 64 hex digits expected");
  luaL_argcheck(L, timeout > 0, 4, "positive number expected");
  /* its sinks (lua_values.c), the function of applyf (lua_send.c) */
  c = lua_newuserdatauv(L, sizeof *c, 2);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, CONN_MT);
  snprintf(c->where, sizeof c->where, "%s:%d", host, (int)port);
  if (byfd) snprintf(c->where, sizeof c->where, "%s", host);
  if ((c->loop = malloc(sizeof *c->loop)) == NULL)
    return plush_client_operr(L, "ENOMEM", "cannot connect to %s: out of memory", c->where);
  if ((r = uv_loop_init(c->loop)) < 0) {
    free(c->loop);
    c->loop = NULL;
    return plush_client_operr(L, uv_err_name(r), "cannot connect to %s: %s", c->where,
                 uv_strerror(r));
  }
  uv_timer_init(c->loop, &c->timer);
  c->timer.data = c;
  memset(&o, 0, sizeof o);
  o.key = key;
  o.role = PLUSH_ROLE_CLIENT;
  o.handshake_timeout = timeout + 1; /* our own timer speaks first */
  o.encrypt = encrypt;
  r = byfd ? plush_conn_open(c->loop, (uv_os_sock_t)fd, 0, &o, &cbs, c, &c->conn)
           : plush_conn_connect(c->loop, host, (int)port, &o, &cbs, c, &c->conn);
  if (r < 0 && byfd) close((int)fd);
  if (r < 0) {
    snprintf(err, sizeof err, "cannot connect to %s: %s", c->where,
             plush_strerror(r));
    teardown(c, 0);
    return plush_client_operr(L, plush_err_name(r), "%s", err);
  }
  settimer(c, timeout);
  err[0] = '\0';
  for (;;) {
    if (c->welcome != NULL) {
      if (welcome(L, c, err, sizeof err) < 0) name = "EPROTO";
      break;
    }
    if (c->conn == NULL || c->fired) break;
    uv_run(c->loop, UV_RUN_ONCE);
  }
  uv_timer_stop(&c->timer);
  if (!c->welcomed) {
    if (err[0] == '\0') name = whyfailed(c, err, sizeof err);
    teardown(c, 0);
    return plush_client_operr(L, name, "%s", err);
  }
  plush_frame_unref(c->welcome);
  c->welcome = NULL;
  plush_batch_init(&c->batch, &c->conn);
  return 1;
}

static int pending(client *c) {
  return c->q.len > 0 || c->owed || plush_sigint_got || c->fdready;
}

static void onfd(uv_poll_t *p, int status, int events) {
  client *c = p->data;
  (void)status, (void)events;
  c->fdready = 1;
  uv_poll_stop(p);
}

static void onfdclose(uv_handle_t *h) {
  ((client *)h->data)->hasfd = 0;
}

/*
** poll's optional fd: the interactive shell waits on its terminal and on the
** controller in one call. One handle, kept while the fd stays the same.
** uv_poll_init puts the fd in non-blocking mode; on a terminal that flag
** belongs to the open file every process on it shares (stdout too, whose
** writes would then fail with EAGAIN), and epoll does not need it, so the old
** flags are put back. An fd epoll refuses (a regular file) is always
** readable: fdready = -1 says so.
*/
static void watchfd(client *c, int fd) {
  int flags, r;
  if (c->hasfd && c->fd != fd) {
    uv_close((uv_handle_t *)&c->fdpoll, onfdclose);
    while (c->hasfd) uv_run(c->loop, UV_RUN_NOWAIT);
  }
  c->fdready = 0;
  if (!c->hasfd) {
    flags = fcntl(fd, F_GETFL);
    r = uv_poll_init(c->loop, &c->fdpoll, fd);
    if (flags >= 0) fcntl(fd, F_SETFL, flags);
    if (r < 0) {
      c->fdready = -1;
      return;
    }
    c->fdpoll.data = c;
    c->hasfd = 1;
    c->fd = fd;
  }
  uv_poll_start(&c->fdpoll, UV_READABLE, onfd);
}

/* plush_lua_spin's test: something to report, or nothing more can come */
static int awake(void *ud) {
  client *c = ud;
  return pending(c) || c->conn == NULL;
}

/*
** Runs the loop until there is something to report or t seconds passed
** (t < 0: no limit, t == 0: one non-blocking turn). Once the connection
** is gone nothing more can arrive, so poll returns at once.
*/
static void await(client *c, double t, int fd) {
  (void)plush_batch_flush(&c->batch); /* a failure: the loop finds it */
  plush_client_watchint(c);
  if (fd >= 0) watchfd(c, fd);
  /* one look at what is ready, unless it is to wait anyway: a blocking
  ** turn hands over what is ready as well (one epoll_wait, not two, per
  ** reply waited for) */
  if (t == 0 || pending(c) || c->conn == NULL) uv_run(c->loop, UV_RUN_NOWAIT);
  /* a wait for one or two replies (a blocking call) meets them awake; with
  ** many in flight they come anyway, and the engines want the CPU */
  if (t != 0 && !pending(c) && c->conn != NULL && c->inflight <= 2)
    plush_lua_spin(c->loop, t, awake, c);
  if (t != 0 && !pending(c) && c->conn != NULL) {
    /* no timeout: a timer that fired for an earlier poll must not end this
    ** one before its first turn (the shell's prompt after a timed wait
    ** spun on it, deaf to the terminal) */
    if (t > 0) settimer(c, t);
    else c->fired = 0;
    while (!pending(c) && !c->fired && c->conn != NULL)
      if (uv_run(c->loop, UV_RUN_ONCE) == 0) break;
    uv_timer_stop(&c->timer);
  }
  if (c->hasfd) uv_poll_stop(&c->fdpoll);
}

/* conn:poll([timeout [, fd [, flat [, pending, none, meta]]]]) -> events
** (design.md); with flat, OK replies as 7 plain values each
** (plush_lua_addreply), and the number of events after the list; with the
** client's pending table, its NONE and the Deferred metatable too, the
** OK replies of plain tasks fire their Deferreds here (lua_settle.c). */
static int l_poll(lua_State *L) {
  client *c = plush_client_of(L);
  size_t took = 0;
  double t = -1;
  lua_Integer n = 0, k = 0, fd = luaL_optinteger(L, 3, -1);
  int flat = lua_toboolean(L, 4); /* OK replies as plain values */
  plush_settle st = {5, 6, 7, 0};
  int settle = flat && lua_istable(L, 5) && lua_istable(L, 6) && lua_istable(L, 7);
  int sinks;
  if (settle) lua_settop(L, 7);
  sinks = lua_getiuservalue(L, 1, 1) == LUA_TTABLE ? lua_gettop(L) : 0;
  luaL_argcheck(L, fd >= -1 && fd <= INT_MAX, 3, "file descriptor expected");
  if (!lua_isnoneornil(L, 2)) {
    t = luaL_checknumber(L, 2);
    luaL_argcheck(L, t == t, 2, "number of seconds expected");
    if (t < 0) t = 0;
    if (t > 1e9) t = -1;
  }
  plush_mem_trim(PLUSH_MEM_AGE); /* big blocks kept for reuse go back */
  /* A big value the last poll made (a pulled string) usually replaced an
  ** older one the program has dropped by now: collected before the next
  ** big frame comes, its block is that frame's, already resident (the
  ** frame's own pages became the string, lua_mem.h). */
  if (c->bigseen) plush_lua_mem_room(L, c->bigseen);
  c->bigseen = 0;
  if (c->loop != NULL) await(c, t, (int)fd);
  /* the list, sized for the frames it takes (grown only by the 3 extra
  ** kinds below) */
  lua_createtable(L, (int)(c->q.len < POLL_EVENTS ? c->q.len : POLL_EVENTS) *
                        (flat ? 7 : 1), 0);
  plush_frame_unref(c->cur);
  c->cur = NULL;
  while (c->q.len > 0 && k < POLL_EVENTS && took < POLL_BYTES) {
    c->cur = plush_fifo_pop(&c->q);
    took += c->cur->hdr.len;
    if (c->cur->hdr.len >= PLUSH_MEM_BIG && c->cur->hdr.len > c->bigseen)
      c->bigseen = c->cur->hdr.len;
    if (settle && !sinks && n == 0 && plush_lua_settle(L, c->cur, &st))
      k++; /* before any other event (lua_settle.c) */
    else if (flat && !sinks && plush_lua_addreply(L, c->cur, &n))
      k++;
    else if (sinks ? plush_lua_pushevent_sunk(L, sinks, c->cur)
                   : plush_lua_pushevent(L, c->cur))
      lua_rawseti(L, -2, ++n), k++;
    plush_frame_unref(c->cur);
    c->cur = NULL;
  }
  qresume(c);
  if (c->owed) {
    c->owed = 0;
    lua_createtable(L, 0, 2);
    plush_lua_setstr(L, "kind", "closed");
    plush_lua_setstr(L, "message", c->msg);
    lua_rawseti(L, -2, ++n), k++;
  }
  if (c->fdready) {
    c->fdready = 0;
    lua_createtable(L, 0, 2);
    plush_lua_setstr(L, "kind", "readable");
    plush_lua_setint(L, "fd", fd);
    lua_rawseti(L, -2, ++n), k++;
  }
  if (!c->nosigint && plush_sigint_take()) {
    lua_createtable(L, 0, 1);
    plush_lua_setstr(L, "kind", "sigint");
    lua_rawseti(L, -2, ++n), k++;
  }
  if (!flat) return 1;
  lua_pushinteger(L, k); /* the number of events */
  return 2;
}

/* conn:mute(id), conn:mute{id, ...}, conn:unmute(id): lua_mute.h. */
static int l_mute(lua_State *L) {
  client *c = plush_client_of(L);
  plush_lua_mute(L, 2, &c->mutes, &c->q);
  qresume(c);
  return 0;
}

static int l_unmute(lua_State *L) {
  return plush_lua_unmute(L, 2, &plush_client_of(L)->mutes);
}

/* conn:nosigint(): its polls neither wake for nor take a Ctrl-C (the
** engine.client() of an engine thread: Ctrl-C is its process's client's). */
static int l_nosigint(lua_State *L) {
  plush_client_of(L)->nosigint = 1;
  return 0;
}

/* conn:waitfd() -> fd, ms, for a poll(2) instead of conn:poll (engine_co.c):
** after a non-blocking turn (what was written since is watched too), fd is
** readable once the loop has work (-1: gone, nothing more comes), ms is the
** time to its next timer (-1: none; 0: events are queued). */
static int l_waitfd(lua_State *L) {
  client *c = plush_client_of(L);
  int fd = -1, ms = -1;
  (void)plush_batch_flush(&c->batch);
  if (c->loop != NULL) uv_run(c->loop, UV_RUN_NOWAIT);
  if (c->loop != NULL && c->conn != NULL) { /* else nothing more comes */
    fd = uv_backend_fd(c->loop);
    ms = uv_backend_timeout(c->loop);
  }
  if (c->q.len > 0 || c->owed) ms = 0;
  lua_pushinteger(L, fd);
  lua_pushinteger(L, ms);
  return 2;
}

static int l_cid(lua_State *L) {
  lua_pushinteger(L, plush_client_of(L)->cid);
  return 1;
}

static int l_connected(lua_State *L) {
  client *c = plush_client_of(L);
  lua_pushboolean(L, c->conn != NULL && plush_conn_is_ready(c->conn));
  return 1;
}

static int l_close(lua_State *L) {
  teardown(plush_client_of(L), CLOSE_GRACE);
  return 0;
}

static int l_tostring(lua_State *L) {
  client *c = plush_client_of(L);
  lua_pushfstring(L, "plush.conn (%s, cid %d%s)", c->where, (int)c->cid,
                  c->conn != NULL ? "" : ", closed");
  return 1;
}

/* ---- the module -------------------------------------------------- */

static const luaL_Reg connmeta[] = {
    {"__gc", l_close}, {"__close", l_close}, {"__tostring", l_tostring},
    {NULL, NULL}};

static const luaL_Reg connmethods[] = {
    {"cid", l_cid},   {"submit", plush_client_submit}, {"ctrl", plush_client_ctrl},
    {"close", l_close},   {"connected", l_connected},
    {"sink", plush_lua_sink}, {"apply", plush_client_apply}, {"exec", plush_client_exec},
    {"mute", l_mute}, {"unmute", l_unmute}, {"nosigint", l_nosigint},
    {"waitfd", l_waitfd}, {NULL, NULL}};

static const luaL_Reg funcs[] = {
    {"connect", l_connect}, {"mem_stats", plush_lua_mem_stats}, {NULL, NULL}};

int luaopen_plush_core(lua_State *L) {
  plush_lua_unload_sentinel(L);
  plush_sigpipe_ignore();
  plush_lua_mem_install(L);
  if (luaL_newmetatable(L, CONN_MT)) {
    luaL_setfuncs(L, connmeta, 0);
    luaL_newlibtable(L, connmethods);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, connmethods, 1); /* toclient's upvalue */
    lua_pushvalue(L, -2);
    plush_lua_settle_keys(L); /* and poll's keys (lua_settle.c) */
    lua_pushcclosure(L, l_poll, 1 + PLUSH_SETTLE_KEYS);
    lua_setfield(L, -2, "poll");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  luaL_setfuncs(L, plush_sys_funcs, 0);
  luaL_setfuncs(L, plush_codec_funcs, 0);
  plush_threads_open(L);
  lua_pushliteral(L, PLUSH_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
