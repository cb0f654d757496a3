/*
** ctl_guard.c — what keeps one peer from stopping the controller for
** everyone: every Lua call on its state protected, payloads checked by
** shape before use (REGISTER here, scheduling options in ctl_sched.c,
** CTRL in ctl_ops.c), and connections bounded.
**
** Capacity. A connection costs a socket and ~70 KB before it has proved
** anything, so unauthenticated ones are capped twice: handshakes under
** way from one address (max_pending_addr) and in all (max_pending). A
** newcomer over either cap costs the OLDEST handshake of its address (or
** of all): an honest client finishes its handshake in a round trip, so
** the oldest is the one sitting on it (slowloris). Connections in all are
** capped by max_conns, kept 64 under the file-descriptor limit so that a
** client is told "controller at capacity" (plush_conn_refuse) while a
** descriptor is still there to tell it with. Should descriptors run out
** anyway (the store, a launcher's pipes), libuv's reserve descriptor
** accepts and closes the waiting connections (its EMFILE trick) and the
** controller logs it, at most once a second.
*/
#include <lauxlib.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "codec.h"
#include "ctl.h"
#include "log.h"
#include "plush.h"

typedef struct guarded {
  void (*fn)(void *);
  void *ud;
} guarded;

static int trampoline(lua_State *L) {
  guarded *g = lua_touserdata(L, 1);
  g->fn(g->ud);
  return 0;
}

int ctl_protect(plush_ctl *c, void (*fn)(void *), void *ud, char *err,
                size_t n) {
  lua_State *L = c->L;
  guarded g = {fn, ud};
  int top = lua_gettop(L), r = 0;
  if (!lua_checkstack(L, 4)) {
    snprintf(err, n, "out of memory");
    return PLUSH_ENOMEM;
  }
  lua_pushcfunction(L, trampoline);
  lua_pushlightuserdata(L, &g);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    const char *m = lua_tostring(L, -1);
    snprintf(err, n, "%s", m ? m : "error object is not a string");
    r = PLUSH_EINVAL;
  }
  lua_settop(L, top);
  return r;
}

/* An optional integer field in [lo, hi]: 1 read, 0 absent, -1 bad. */
static int optint(lua_State *L, const char *k, lua_Integer lo,
                  lua_Integer hi, lua_Integer *out) {
  int t = lua_getfield(L, -1, k), r = 0;
  if (t != LUA_TNIL) {
    r = lua_isinteger(L, -1) && lua_tointeger(L, -1) >= lo &&
                lua_tointeger(L, -1) <= hi ? 1 : -1;
    if (r > 0) *out = lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  return r;
}

/*
** REGISTER {pid, host, id?, rank?, size?, reconnect?}, checked by shape
** before anything is taken from it.
*/
static void readreg(void *ud) {
  ctl_reg *r = ud;
  lua_State *L = r->c->L;
  lua_Integer v = -1;
  if (plush_decode(L, plush_frame_payload(r->f), r->f->hdr.len, NULL,
                   r->err, sizeof r->err) < 0) {
    r->bad = r->err;
    return;
  }
  if (!lua_istable(L, -1)) {
    r->bad = "REGISTER is not a table";
    return;
  }
  if (optint(L, "pid", 0, INT32_MAX, &v) <= 0) {
    r->bad = "REGISTER: pid must be a process id";
    return;
  }
  r->pid = (long)v;
  if (lua_getfield(L, -1, "host") != LUA_TSTRING) {
    r->bad = "REGISTER: host must be a string";
    return;
  }
  snprintf(r->host, sizeof r->host, "%s", lua_tostring(L, -1));
  lua_pop(L, 1);
  lua_Integer rank = -1, size = -1;
  if (optint(L, "id", 0, (lua_Integer)PLUSH_ANY - 1, &r->want) < 0 ||
      optint(L, "rank", 0, INT32_MAX, &rank) < 0 ||
      optint(L, "size", 1, INT32_MAX, &size) < 0) {
    r->bad = "REGISTER: id, rank and size must be counts";
    return;
  }
  r->rank = (int)rank;
  r->size = (int)size;
  switch (lua_getfield(L, -1, "reconnect")) {
  case LUA_TNIL: break;
  case LUA_TBOOLEAN: r->back = lua_toboolean(L, -1); break;
  default: r->bad = "REGISTER: reconnect must be a boolean";
  }
}

void ctl_read_register(plush_ctl *c, plush_frame *f, ctl_reg *r) {
  memset(r, 0, sizeof *r);
  r->c = c;
  r->f = f;
  r->want = -1;
  if (ctl_protect(c, readreg, r, r->err, sizeof r->err) < 0) r->bad = r->err;
}

/* Outside ctl_protect nothing raises but a memory error; should one
** come, say so before Lua aborts. */
static int panic(lua_State *L) {
  const char *m = lua_tostring(L, -1);
  plush_error("unprotected error in the controller's Lua state: %s",
              m ? m : "?");
  return 0;
}

void ctl_guard_init(plush_ctl *c) {
  struct rlimit rl;
  int cap;
  lua_atpanic(c->L, panic);
  if (c->o.max_conns <= 0) c->o.max_conns = 4096;
  if (c->o.max_pending <= 0) c->o.max_pending = 1024;
  if (c->o.max_pending_addr <= 0) c->o.max_pending_addr = 256;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    cap = rl.rlim_cur > 64 + 16 ? (int)rl.rlim_cur - 64 : 16;
    if (c->o.max_conns > cap) c->o.max_conns = cap;
  }
  plush_parser_set_budget(c->o.partial_max);
}

/* "ip" of "ip:port" (IPv6 too: the port follows the last colon). */
static size_t addrlen(const char *peer) {
  const char *colon = strrchr(peer, ':');
  return colon ? (size_t)(colon - peer) : strlen(peer);
}

static int sameaddr(const char *a, const char *b) {
  size_t n = addrlen(a);
  return n == addrlen(b) && memcmp(a, b, n) == 0;
}

static int pending(peer *p) {
  return p->kind == P_NEW && p->conn && plush_conn_pending(p->conn);
}

/* Drops the oldest handshake (of p's address when same): peers are
** listed newest first, so the last pending one. */
static void dropoldest(plush_ctl *c, peer *p, int same, const char *why) {
  peer *q;
  for (q = c->peers.prev; q != &c->peers; q = q->prev) {
    if (q == p || !pending(q)) continue;
    if (same && !sameaddr(plush_conn_peer(q->conn), plush_conn_peer(p->conn)))
      continue;
    plush_warn("dropping the handshake of %s, the oldest under way: %s",
               plush_conn_peer(q->conn), why);
    c->dropped++;
    plush_conn_busy(q->conn);
    return;
  }
}

void ctl_guard_admit(plush_ctl *c, peer *p) {
  peer *q;
  int all = 0, mine = 0;
  if (c->conns > c->conns_peak) c->conns_peak = c->conns;
  for (q = c->peers.next; q != &c->peers; q = q->next) {
    if (!pending(q)) continue;
    all++;
    if (sameaddr(plush_conn_peer(q->conn), plush_conn_peer(p->conn))) mine++;
  }
  if (mine > c->o.max_pending_addr) {
    char why[96];
    snprintf(why, sizeof why, "over %d handshakes from one address",
             c->o.max_pending_addr);
    dropoldest(c, p, 1, why);
  } else if (all > c->o.max_pending) {
    char why[96];
    snprintf(why, sizeof why, "over %d handshakes under way",
             c->o.max_pending);
    dropoldest(c, p, 0, why);
  }
}

/* Logs at most once a second; counts what it did not log. */
static void ratelog(plush_ctl *c, const char *fmt, const char *a) {
  uint64_t now = uv_now(c->loop);
  c->refused++;
  if (c->refuse_logged && now - c->refuse_logged < 1000) {
    c->refuse_quiet++;
    return;
  }
  if (c->refuse_quiet)
    plush_warn("(%zu more refused connections not logged)", c->refuse_quiet);
  c->refuse_logged = now ? now : 1;
  c->refuse_quiet = 0;
  plush_warn(fmt, a);
}

int ctl_guard_full(plush_ctl *c, uv_stream_t *server) {
  char peer[64], msg[160];
  if (c->conns < c->o.max_conns) return 0;
  if (plush_conn_refuse(server, peer, sizeof peer) < 0) return 1;
  snprintf(msg, sizeof msg, "%s (%d connections)", peer, c->o.max_conns);
  ratelog(c, "connection from %s refused: controller at capacity", msg);
  return 1;
}

/*
** Each heartbeat: after a flood of connections has gone (a fall to under
** half the peak, from over 256), malloc's free memory goes back to the
** system: each connection's ~70 KB were small blocks, which glibc keeps
** (5,000 of them once left 270 MB resident).
*/
void ctl_guard_beat(plush_ctl *c) {
  if (c->conns_peak > 256 && c->conns < c->conns_peak / 2) {
    malloc_trim(0);
    c->conns_peak = c->conns;
  }
}

void ctl_guard_acceptfail(plush_ctl *c, int status) {
  ratelog(c, "cannot accept a connection: %s (libuv accepted and closed "
             "it on its reserve descriptor)", uv_strerror(status));
}
