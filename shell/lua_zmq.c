/*
** lua_zmq.c — plush.zmq, the least of ZeroMQ (libzmq) that the Jupyter
** kernel (lua/plush/kernel.lua) needs, and the message signatures of
** Jupyter's wire protocol (HMAC-SHA256 with libsodium).
**
**   local zmq = require "plush.zmq"
**   local ctx = zmq.context()
**   local s = ctx:socket("ROUTER")      -- ROUTER, DEALER, PUB, SUB, REP, REQ
**   s:bind("tcp://127.0.0.1:5555")      -- true, or nil, "EADDRINUSE: ..."
**   s:send{part1, part2}                -- one multipart message
**   s:recv()                            -- {parts...}; nil when none waits
**   zmq.poll({s1, s2}, 0.5)             -- {true, false}: readable ones
**   ctx:heartbeat("tcp://...:port")     -- a REP echo on a thread of its own
**   ctx:close()                         -- every socket, the thread, the context
**   zmq.sign(key, p1, p2, ...)          -- hex HMAC-SHA256 of the parts
**   zmq.verify(key, hex, p1, p2, ...)   -- the same, compared in constant time
**   zmq.uuid()                          -- a random UUID (version 4)
**
** The heartbeat has a thread because Jupyter takes a kernel that stops
** echoing for dead, and the kernel's own thread runs user code for as
** long as a cell takes. ZeroMQ sockets are not thread-safe: the echo
** socket is made and bound here, then handed to the thread (pthread_create
** is a full barrier) and never touched again by this thread.
** Main thread only, except that thread.
*/
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <sodium.h>
#include <zmq.h>

int luaopen_plush_zmq(lua_State *L);

#define CTX_MT "plush.zmq.context"
#define SOCK_MT "plush.zmq.socket"

typedef struct Sock Sock;
typedef struct Ctx {
  void *z;          /* the zmq context, NULL once closed */
  Sock *socks;      /* open sockets, to close before zmq_ctx_term */
  pthread_t hb;     /* the heartbeat thread, when hbon */
  int hbon;
} Ctx;

struct Sock {
  void *z;          /* the zmq socket, NULL once closed */
  Ctx *ctx;
  Sock *next, *prev;
};

/* nil, "ENAME: message" (luv's convention), for operational failures. */
static int fail(lua_State *L, int e) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", e == ETERM ? "ETERM" : e == EADDRINUSE ? "EADDRINUSE"
                  : e == EINVAL ? "EINVAL" : e == EINTR ? "EINTR" : "EZMQ", zmq_strerror(e));
  return 2;
}

static Ctx *checkctx(lua_State *L, int i) {
  Ctx *c = luaL_checkudata(L, i, CTX_MT);
  if (c->z == NULL) luaL_argerror(L, i, "the context is closed");
  return c;
}

static Sock *checksock(lua_State *L, int i) {
  Sock *s = luaL_checkudata(L, i, SOCK_MT);
  if (s->z == NULL) luaL_argerror(L, i, "the socket is closed");
  return s;
}

static void sockclose(Sock *s) {
  if (s->z == NULL) return;
  zmq_close(s->z);
  s->z = NULL;
  if (s->prev) s->prev->next = s->next;
  else s->ctx->socks = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = NULL;
}

/* ---- the heartbeat ----------------------------------------------- */
/* The heartbeat: whatever comes is sent back, until the context ends. */

static void *echo(void *arg) {
  void *rep = arg;
  zmq_msg_t m;
  zmq_msg_init(&m);
  for (;;) {
    if (zmq_msg_recv(&m, rep, 0) < 0) {
      if (errno == EINTR) continue;
      break; /* ETERM: the context is being closed */
    }
    while (zmq_msg_send(&m, rep, 0) < 0 && errno == EINTR) {}
  }
  zmq_msg_close(&m);
  zmq_close(rep);
  return NULL;
}

/* ctx:heartbeat(endpoint) -> true, or nil and the reason. */
static int l_heartbeat(lua_State *L) {
  Ctx *c = checkctx(L, 1);
  const char *ep = luaL_checkstring(L, 2);
  int linger = 0, e;
  sigset_t all, old;
  void *rep;
  if (c->hbon) return luaL_error(L, "the heartbeat is running already");
  rep = zmq_socket(c->z, ZMQ_REP);
  if (rep == NULL) return fail(L, errno);
  zmq_setsockopt(rep, ZMQ_LINGER, &linger, sizeof linger);
  if (zmq_bind(rep, ep) < 0) {
    e = errno;
    zmq_close(rep);
    return fail(L, e);
  }
  /* Ctrl-C (or Jupyter's interrupt, a SIGINT) is the kernel thread's. */
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  e = pthread_create(&c->hb, NULL, echo, rep);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (e != 0) {
    zmq_close(rep);
    return fail(L, e);
  }
  c->hbon = 1;
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- the context ------------------------------------------------- */

static int l_context(lua_State *L) {
  Ctx *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, CTX_MT);
  c->z = zmq_ctx_new();
  if (c->z == NULL) return luaL_error(L, "zmq_ctx_new: %s", zmq_strerror(errno));
  return 1;
}

/*
** ctx:close(): sockets closed first (zmq_ctx_term waits for every one),
** the heartbeat woken by zmq_ctx_shutdown (its recv fails with ETERM)
** and joined. Idempotent; also the __gc.
*/
static int l_ctxclose(lua_State *L) {
  Ctx *c = luaL_checkudata(L, 1, CTX_MT);
  if (c->z == NULL) return 0;
  while (c->socks) sockclose(c->socks);
  zmq_ctx_shutdown(c->z);
  if (c->hbon) pthread_join(c->hb, NULL);
  c->hbon = 0;
  while (zmq_ctx_term(c->z) < 0 && errno == EINTR) {}
  c->z = NULL;
  return 0;
}

static const struct { const char *name; int type; } kinds[] = {
    {"ROUTER", ZMQ_ROUTER}, {"DEALER", ZMQ_DEALER}, {"PUB", ZMQ_PUB},
    {"SUB", ZMQ_SUB},       {"REP", ZMQ_REP},       {"REQ", ZMQ_REQ}, {NULL, 0}};

/* ctx:socket(kind) -> a socket (linger 0: closing never waits on peers). */
static int l_socket(lua_State *L) {
  Ctx *c = checkctx(L, 1);
  const char *k = luaL_checkstring(L, 2);
  int i, linger = 0;
  Sock *s;
  for (i = 0; kinds[i].name && strcmp(kinds[i].name, k) != 0; i++) {}
  if (kinds[i].name == NULL) return luaL_argerror(L, 2, "ROUTER, DEALER, PUB, SUB, REP or REQ");
  s = lua_newuserdatauv(L, sizeof *s, 1);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, SOCK_MT);
  lua_pushvalue(L, 1); /* the context lives as long as its sockets */
  lua_setiuservalue(L, -2, 1);
  s->z = zmq_socket(c->z, kinds[i].type);
  if (s->z == NULL) return fail(L, errno);
  zmq_setsockopt(s->z, ZMQ_LINGER, &linger, sizeof linger);
  if (kinds[i].type == ZMQ_SUB) zmq_setsockopt(s->z, ZMQ_SUBSCRIBE, "", 0);
  s->ctx = c;
  s->next = c->socks;
  if (c->socks) c->socks->prev = s;
  c->socks = s;
  return 1;
}

/* ---- sockets ----------------------------------------------------- */

static int endpoint(lua_State *L, int bind) {
  Sock *s = checksock(L, 1);
  const char *ep = luaL_checkstring(L, 2);
  if ((bind ? zmq_bind(s->z, ep) : zmq_connect(s->z, ep)) < 0) return fail(L, errno);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_bind(lua_State *L) { return endpoint(L, 1); }
static int l_connect(lua_State *L) { return endpoint(L, 0); }

/* s:send{parts...}: a multipart message; every part a string. */
static int l_send(lua_State *L) {
  Sock *s = checksock(L, 1);
  lua_Integer i, n;
  size_t len;
  const char *p;
  luaL_checktype(L, 2, LUA_TTABLE);
  n = luaL_len(L, 2);
  if (n < 1) return luaL_argerror(L, 2, "a message has at least one part");
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "bad part %d (string expected, got %s)", (int)i, luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    p = lua_tolstring(L, -1, &len);
    while (zmq_send(s->z, p, len, i < n ? ZMQ_SNDMORE : 0) < 0) {
      if (errno != EINTR) return fail(L, errno);
    }
    lua_pop(L, 1);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/*
** s:recv([wait]) -> {parts...}; without `wait`, nil when no message
** waits. A message is taken whole (ZeroMQ delivers all its parts or none).
*/
static int l_recv(lua_State *L) {
  Sock *s = checksock(L, 1);
  int flags = lua_toboolean(L, 2) ? 0 : ZMQ_DONTWAIT, more = 1, n = 0;
  size_t sz = sizeof more;
  zmq_msg_t m;
  lua_newtable(L);
  while (more) {
    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, s->z, n > 0 ? 0 : flags) < 0) {
      int e = errno;
      if (e == EINTR) continue;
      zmq_msg_close(&m);
      if (e == EAGAIN && n == 0) {
        lua_pushnil(L);
        return 1;
      }
      return fail(L, e);
    }
    lua_pushlstring(L, zmq_msg_data(&m), zmq_msg_size(&m));
    lua_rawseti(L, -2, ++n);
    zmq_msg_close(&m);
    if (zmq_getsockopt(s->z, ZMQ_RCVMORE, &more, &sz) < 0) more = 0;
  }
  return 1;
}

static int l_sockclose(lua_State *L) {
  Sock *s = luaL_checkudata(L, 1, SOCK_MT);
  sockclose(s);
  return 0;
}

/*
** zmq.poll(sockets, timeout) -> {readable...}, one boolean per socket, in
** order. timeout in seconds (nil: no limit). A signal (SIGINT) ends the
** wait early with nothing readable.
*/
static int l_poll(lua_State *L) {
  zmq_pollitem_t items[16];
  double t = luaL_optnumber(L, 2, -1);
  lua_Integer i, n;
  long ms = t < 0 ? -1 : (t > 1e6 ? 1000000000L : (long)(t * 1000));
  luaL_checktype(L, 1, LUA_TTABLE);
  n = luaL_len(L, 1);
  luaL_argcheck(L, n >= 1 && n <= 16, 1, "1 to 16 sockets");
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    items[i].socket = checksock(L, -1)->z;
    items[i].fd = 0;
    items[i].events = ZMQ_POLLIN;
    items[i].revents = 0;
    lua_pop(L, 1);
  }
  if (zmq_poll(items, (int)n, ms) < 0 && errno != EINTR) return fail(L, errno);
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    lua_pushboolean(L, (items[i].revents & ZMQ_POLLIN) != 0);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* ---- signatures -------------------------------------------------- */
/* Signatures: HMAC-SHA256 over the parts, as lowercase hex. */

static void digest(lua_State *L, int from, char hex[65]) {
  crypto_auth_hmacsha256_state st;
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  size_t klen, len;
  const char *key = luaL_checklstring(L, 1, &klen), *p;
  int i, top = lua_gettop(L);
  for (i = from; i <= top; i++) luaL_checkstring(L, i);
  crypto_auth_hmacsha256_init(&st, (const unsigned char *)key, klen);
  for (i = from; i <= top; i++) {
    p = lua_tolstring(L, i, &len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)p, len);
  }
  crypto_auth_hmacsha256_final(&st, mac);
  sodium_bin2hex(hex, 65, mac, sizeof mac);
}

static int l_sign(lua_State *L) {
  char hex[65];
  digest(L, 2, hex);
  lua_pushlstring(L, hex, 64);
  return 1;
}

/* zmq.verify(key, signature, parts...): whether signature is theirs. */
static int l_verify(lua_State *L) {
  char hex[65];
  size_t n;
  const char *sig = luaL_checklstring(L, 2, &n);
  digest(L, 3, hex);
  lua_pushboolean(L, n == 64 && sodium_memcmp(hex, sig, 64) == 0);
  return 1;
}

static int l_uuid(lua_State *L) {
  unsigned char b[16];
  char hex[33], id[37];
  randombytes_buf(b, sizeof b);
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  sodium_bin2hex(hex, sizeof hex, b, sizeof b);
  snprintf(id, sizeof id, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
           hex + 20);
  lua_pushstring(L, id);
  return 1;
}

static int l_version(lua_State *L) {
  int a, b, c;
  zmq_version(&a, &b, &c);
  lua_pushfstring(L, "%d.%d.%d", a, b, c);
  return 1;
}

int luaopen_plush_zmq(lua_State *L) {
  static const luaL_Reg ctxm[] = {{"socket", l_socket}, {"heartbeat", l_heartbeat},
                                  {"close", l_ctxclose}, {NULL, NULL}};
  static const luaL_Reg sockm[] = {{"bind", l_bind}, {"connect", l_connect},
                                   {"send", l_send}, {"recv", l_recv},
                                   {"close", l_sockclose}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"context", l_context}, {"poll", l_poll},
                                   {"sign", l_sign}, {"verify", l_verify},
                                   {"uuid", l_uuid}, {"version", l_version},
                                   {NULL, NULL}};
  if (sodium_init() < 0) return luaL_error(L, "libsodium cannot start");
  luaL_newmetatable(L, CTX_MT);
  luaL_newlib(L, ctxm);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_ctxclose);
  lua_setfield(L, -2, "__gc");
  luaL_newmetatable(L, SOCK_MT);
  luaL_newlib(L, sockm);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_sockclose);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 2);
  luaL_newlib(L, funcs);
  return 1;
}
