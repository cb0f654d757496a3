/*
** ctl_ops.c — the controller's control plane: CTRL requests (dispatched
** by the ctlops table), and the replies, failures and events the
** controller writes itself. The result store they read is ctl_store.c.
*/
#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ctl.h"
#include "log.h"
#include "plush.h"

/* ---- replies the controller writes ------------------------------- */

void ctl_setint(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

void ctl_setstr(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* Encodes the value on top of c->L (popped) into a new frame. */
static plush_frame *mkframe(plush_ctl *c, int type, int status,
                            uint32_t engine, uint64_t id) {
  plush_buf b = PLUSH_BUF_INIT;
  plush_hdr h = {0, (uint8_t)type, 0, (uint16_t)status, engine, id, 0};
  plush_frame *f = NULL;
  char err[200];
  if (plush_encode(c->L, -1, &b, "reply", err, sizeof err) == 0) {
    h.len = (uint32_t)b.len;
    if ((f = plush_frame_new(&h)) != NULL && b.len)
      memcpy(plush_frame_payload(f), b.data, b.len);
  } else {
    plush_error("cannot encode a reply: %s", err);
  }
  plush_buf_free(&b);
  lua_pop(c->L, 1);
  return f;
}

/* The failure whose fields are on top of c->L (popped), stored unless a
** BadRequest, and delivered. */
static void failwith(plush_ctl *c, task *t, uint64_t id, uint32_t engine,
                     int status) {
  plush_frame *f;
  if ((f = mkframe(c, PLUSH_T_REPLY, status, engine, id)) == NULL) return;
  if (status != PLUSH_S_BADREQ) ctl_store(c, f, t);
  ctl_deliver(c, NULL, f);
  plush_frame_unref(f);
}

void ctl_fail(plush_ctl *c, task *t, uint64_t id, uint32_t engine,
              int status, const char *kind, const char *fmt, ...) {
  char msg[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (status == PLUSH_S_BADREQ)
    plush_warn("bad request %llu from client %u: %s", (unsigned long long)id,
               (unsigned)(id >> 32), msg);
  lua_createtable(c->L, 0, 3);
  ctl_setstr(c->L, "kind", kind);
  ctl_setstr(c->L, "message", msg);
  if (engine != PLUSH_ANY) ctl_setint(c->L, "engine", engine);
  failwith(c, t, id, engine, status);
}

/*
** A direct task for an engine that has left the cluster (its id was given
** once): EngineError with left = true. The client's view of every engine
** drops such an engine from its answer -- it was not alive when the
** controller routed the request -- where a request to that engine alone
** fails.
*/
void ctl_fail_left(plush_ctl *c, task *t, uint32_t engine) {
  lua_createtable(c->L, 0, 4);
  ctl_setstr(c->L, "kind", "EngineError");
  lua_pushfstring(c->L, "engine %d is not connected", (int)engine);
  lua_setfield(c->L, -2, "message");
  ctl_setint(c->L, "engine", engine);
  lua_pushboolean(c->L, 1);
  lua_setfield(c->L, -2, "left");
  failwith(c, t, t->id, engine, PLUSH_S_ENGINE);
}

void ctl_event(plush_ctl *c) {
  plush_frame *f = mkframe(c, PLUSH_T_EVENT, 0, 0, 0);
  size_t i = 0;
  uint64_t k;
  void *v;
  if (f == NULL) return;
  while (plush_map_next(&c->clients, &i, &k, &v)) {
    peer *p = v;
    if (p->conn) plush_conn_write_frame(p->conn, f);
  }
  plush_frame_unref(f);
}

void ctl_answer(plush_ctl *c, peer *p, uint64_t id, int status) {
  plush_frame *f = mkframe(c, PLUSH_T_CTRL_REPLY, status, 0, id);
  if (f == NULL) return;
  if (p->conn) plush_conn_write_frame(p->conn, f);
  plush_frame_unref(f);
}

void ctl_refuse(plush_ctl *c, peer *p, uint64_t id, const char *msg) {
  lua_createtable(c->L, 0, 2);
  ctl_setstr(c->L, "kind", "BadRequest");
  ctl_setstr(c->L, "message", msg);
  ctl_answer(c, p, id, PLUSH_S_BADREQ);
}

/*
** A bad request is answered to its sender, whoever the id names (a REQ
** with another client's task id is refused to the one that sent it), and
** logged: BadRequest, as a REPLY or CTRL_REPLY (type) to id, naming
** engine unless it is PLUSH_ANY. Never stored.
*/
void ctl_badreq(plush_ctl *c, peer *p, int type, uint64_t id,
                uint32_t engine, const char *fmt, ...) {
  char msg[300];
  va_list ap;
  plush_frame *f;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  plush_warn("bad request from %s %u (%s): %s",
             p->kind == P_CLIENT ? "client" : "peer", p->id,
             p->conn ? plush_conn_peer(p->conn) : "gone", msg);
  lua_createtable(c->L, 0, 3);
  ctl_setstr(c->L, "kind", "BadRequest");
  ctl_setstr(c->L, "message", msg);
  if (engine != PLUSH_ANY) ctl_setint(c->L, "engine", engine);
  f = mkframe(c, type, PLUSH_S_BADREQ, engine == PLUSH_ANY ? 0 : engine, id);
  if (f == NULL) return;
  if (p->conn) plush_conn_write_frame(p->conn, f);
  plush_frame_unref(f);
}

/* ---- the ops ----------------------------------------------------- */

static void op_ids(plush_ctl *c) {
  size_t n = c->engines.count, i;
  uint32_t *ids = malloc((n ? n : 1) * sizeof *ids);
  lua_createtable(c->L, (int)n, 0);
  if (ids == NULL) return;
  ctl_sorted_ids(c, ids);
  for (i = 0; i < n; i++) {
    lua_pushinteger(c->L, ids[i]);
    lua_rawseti(c->L, -2, (lua_Integer)i + 1);
  }
  free(ids);
}

static void op_engines(plush_ctl *c) {
  size_t n = c->engines.count, i;
  uint32_t *ids = malloc((n ? n : 1) * sizeof *ids);
  lua_State *L = c->L;
  lua_createtable(L, (int)n, 0);
  if (ids == NULL) return;
  ctl_sorted_ids(c, ids);
  for (i = 0; i < n; i++) {
    peer *e = plush_map_get(&c->engines, ids[i]);
    lua_createtable(L, 0, 8);
    ctl_setint(L, "id", e->id);
    ctl_setint(L, "pid", e->pid);
    ctl_setstr(L, "host", e->host);
    ctl_setstr(L, "state", e->inflight > 0 ? "busy" : "idle");
    ctl_setint(L, "queue", e->inflight);
    if (e->running) ctl_setint(L, "running", (lua_Integer)e->running);
    if (e->rank >= 0) ctl_setint(L, "rank", e->rank);
    if (e->size >= 0) ctl_setint(L, "size", e->size);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  free(ids);
}

static void op_queue(plush_ctl *c) {
  lua_State *L = c->L;
  size_t i = 0;
  uint64_t k;
  void *v;
  lua_createtable(L, 0, 2);
  ctl_setint(L, "unassigned", (lua_Integer)c->queued);
  lua_newtable(L);
  while (plush_map_next(&c->engines, &i, &k, &v)) {
    peer *e = v;
    lua_createtable(L, 0, 2);
    ctl_setint(L, "queue", e->inflight);
    if (e->running) ctl_setint(L, "running", (lua_Integer)e->running);
    lua_rawseti(L, -2, e->id);
  }
  lua_setfield(L, -2, "engines");
}

static void op_history(plush_ctl *c) {
  lua_Integer limit;
  lua_getfield(c->L, -1, "limit");
  limit = lua_tointeger(c->L, -1);
  lua_pop(c->L, 1);
  ctl_store_history(c, limit);
}

static void op_status(plush_ctl *c) {
  lua_State *L = c->L;
  lua_createtable(L, 0, 16);
  ctl_setint(L, "engines", (lua_Integer)c->engines.count);
  ctl_setint(L, "clients", (lua_Integer)c->clients.count);
  ctl_setint(L, "pending", (lua_Integer)c->tasks.count);
  ctl_setint(L, "queued", (lua_Integer)c->queued);
  ctl_setint(L, "stored", (lua_Integer)ctl_store_count(c));
  ctl_setint(L, "stored_bytes", (lua_Integer)c->store_used);
  ctl_setint(L, "relayed", (lua_Integer)c->relayed);
  ctl_setint(L, "relay_void", (lua_Integer)c->relay_void);
  ctl_setint(L, "teed", (lua_Integer)c->teed);
  ctl_setint(L, "stolen", (lua_Integer)c->stolen);
  ctl_setint(L, "parked", (lua_Integer)c->parked);      /* ctl_park.c */
  ctl_setint(L, "spilled", (lua_Integer)c->spills);
  ctl_setint(L, "stalled", (lua_Integer)c->disconnected);
  ctl_setint(L, "checkpoints", (lua_Integer)c->ckpts);     /* ctl_store.c */
  ctl_setint(L, "checkpoints_busy", (lua_Integer)c->ckpts_busy);
  ctl_setint(L, "pid", (lua_Integer)uv_os_getpid());
  lua_pushnumber(L, (double)(uv_now(c->loop) - c->started) / 1000);
  lua_setfield(L, -2, "uptime");
}

/* The stored reply goes back with its own status and payload, as is. */
static void op_result(plush_ctl *c, peer *p, uint64_t rid) {
  lua_State *L = c->L;
  plush_frame *f;
  lua_Integer id;
  lua_getfield(L, -1, "id");
  id = lua_tointeger(L, -1);
  lua_pop(L, 1);
  if ((f = ctl_store_get(c, (uint64_t)id)) != NULL) {
    plush_hdr h = f->hdr;
    h.type = PLUSH_T_CTRL_REPLY;
    h.id = rid;
    if (p->conn) plush_conn_write_hdr_frame(p->conn, &h, f);
    plush_frame_unref(f);
    return;
  }
  if (plush_map_get(&c->tasks, (uint64_t)id)) {
    char m[96];
    snprintf(m, sizeof m, "task %lld is still pending", (long long)id);
    ctl_refuse(c, p, rid, m);
  } else if (ctl_store_evicted(c, (uint64_t)id)) {
    char m[160];
    snprintf(m, sizeof m, "the result of task %lld was evicted from the "
             "store (its size bound, or plush results prune)", (long long)id);
    ctl_refuse(c, p, rid, m);
  } else {
    char m[96];
    snprintf(m, sizeof m, "no result for task %lld", (long long)id);
    ctl_refuse(c, p, rid, m);
  }
}

/*
** Sends a header-only frame of type to the engines of msg.targets (all
** when absent) and pushes {[field] = {ids}}.
*/
static void toengines(plush_ctl *c, int type, const char *field) {
  lua_State *L = c->L;
  lua_Integer n = 0, i, len;
  int t = lua_gettop(L);
  lua_getfield(L, t, "targets");
  lua_newtable(L);
  if (lua_istable(L, t + 1)) {
    len = (lua_Integer)lua_rawlen(L, t + 1);
    for (i = 1; i <= len; i++) {
      peer *e;
      lua_rawgeti(L, t + 1, i);
      e = lua_isinteger(L, -1)
              ? plush_map_get(&c->engines, (uint64_t)lua_tointeger(L, -1))
              : NULL;
      lua_pop(L, 1);
      if (e == NULL) continue;
      ctl_send(c, e, type, 0);
      lua_pushinteger(L, e->id);
      lua_rawseti(L, -2, ++n);
    }
  } else {
    size_t j = 0;
    uint64_t k;
    void *v;
    while (plush_map_next(&c->engines, &j, &k, &v)) {
      ctl_send(c, v, type, 0);
      lua_pushinteger(L, (lua_Integer)k);
      lua_rawseti(L, -2, ++n);
    }
  }
  lua_createtable(L, 0, 1);
  lua_insert(L, -2);
  lua_setfield(L, -2, field);
  lua_remove(L, t + 1);
}

static void op_interrupt(plush_ctl *c) {
  toengines(c, PLUSH_T_INTERRUPT, "interrupted");
}

static void op_add(plush_ctl *c, peer *p, uint64_t rid) {
  lua_Integer n;
  int r;
  lua_getfield(c->L, -1, "n");
  n = lua_tointeger(c->L, -1);
  lua_pop(c->L, 1);
  if (n < 1 || n > 4096) {
    ctl_refuse(c, p, rid, "add: n must be a count of engines from 1 to 4096");
    return;
  }
  if (c->o.on_add == NULL) {
    ctl_refuse(c, p, rid, "this controller does not launch engines");
    return;
  }
  if ((r = c->o.on_add(c, c->o.ud, (int)n)) < 0) {
    char m[160];
    snprintf(m, sizeof m, "cannot launch engines: %s", plush_strerror(r));
    ctl_refuse(c, p, rid, m);
    return;
  }
  lua_createtable(c->L, 0, 1);
  lua_pushinteger(c->L, n);
  lua_setfield(c->L, -2, "launched");
  ctl_answer(c, p, rid, 0);
}

/* shutdown {targets}: those engines; shutdown {}: the whole cluster. */
static void op_shutdown(plush_ctl *c, peer *p, uint64_t rid) {
  lua_State *L = c->L;
  int some = lua_getfield(L, -1, "targets") == LUA_TTABLE;
  lua_pop(L, 1);
  if (some) {
    toengines(c, PLUSH_T_SHUTDOWN, "stopped");
    ctl_answer(c, p, rid, 0);
    return;
  }
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "ok");
  ctl_answer(c, p, rid, 0);
  plush_info("shutdown requested by client %u", p->id);
  if (c->o.on_shutdown) c->o.on_shutdown(c, c->o.ud);
}

/* prune {keep = n}: all but the newest n results (0: all) go. */
static void op_prune(plush_ctl *c) {
  lua_Integer keep;
  lua_getfield(c->L, -1, "keep");
  keep = lua_tointeger(c->L, -1);
  lua_pop(c->L, 1);
  keep = ctl_store_prune(c, keep > 0 ? (size_t)keep : 0);
  lua_createtable(c->L, 0, 1);
  ctl_setint(c->L, "removed", keep);
}

static void op_restart(plush_ctl *c) {
  toengines(c, PLUSH_T_RESTART, "restarted");
}

/* ---- dispatch ---------------------------------------------------- */

/*
** The control ops, as Lua's luaL_Reg tables: `fill` pushes the answer
** (sent with status 0), `run` answers by itself (or refuses).
*/
static const struct ctlop {
  const char *name;
  void (*fill)(plush_ctl *c);
  void (*run)(plush_ctl *c, peer *p, uint64_t rid);
} ctlops[] = {
    {"ids", op_ids, NULL},           {"engines", op_engines, NULL},
    {"queue_status", op_queue, NULL}, {"history", op_history, NULL},
    {"records", ctl_store_records, NULL}, {"status", op_status, NULL},
    {"interrupt", op_interrupt, NULL}, {"restart", op_restart, NULL},
    {"result", NULL, op_result},     {"add", NULL, op_add},
    {"shutdown", NULL, op_shutdown}, {"prune", op_prune, NULL},
    {"feed", ctl_feed_op, NULL}, /* the dashboard (ctl_feed.c) */
    /* the tuple space (ctl_tuples.c), the ops engines may use too */
    {"ts_out", NULL, ctl_ts_out},    {"ts_take", NULL, ctl_ts_take},
    {"ts_read", NULL, ctl_ts_read},  {"ts_cancel", NULL, ctl_ts_cancel},
    {"ts_count", NULL, ctl_ts_count}, {"ts_sync", NULL, ctl_ts_sync},
    /* collaboration (ctl_follow.c) */
    {"clients", NULL, ctl_op_clients}, {"follow", NULL, ctl_op_follow},
    {NULL, NULL, NULL}};

typedef struct ctlcall {
  plush_ctl *c;
  peer *p;
  uint64_t rid;
  const struct ctlop *op;
} ctlcall;

/* Runs one op under lua_pcall: [1] the ctlcall, [2] the request table. */
static int runop(lua_State *L) {
  ctlcall *k = lua_touserdata(L, 1);
  if (k->op->fill) {
    k->op->fill(k->c);
    ctl_answer(k->c, k->p, k->rid, 0);
  } else {
    k->op->run(k->c, k->p, k->rid);
  }
  return 0;
}

/*
** A CTRL request from an authenticated client: its payload is checked
** for shape (a table with a string op this controller knows) before any
** field is read, and the op runs protected, so no request can raise
** through the controller's loop; a bad one is refused to its sender.
*/
void ctl_ctrl(plush_ctl *c, peer *p, plush_frame *f) {
  lua_State *L = c->L;
  ctlcall k = {c, p, f->hdr.id, NULL};
  int top = lua_gettop(L);
  char err[200];
  const char *op = NULL;
  int r = plush_decode(L, plush_frame_payload(f), f->hdr.len, NULL, err,
                       sizeof err);
  plush_frame_unref(f);
  if (r < 0) {
    ctl_badreq(c, p, PLUSH_T_CTRL_REPLY, k.rid, PLUSH_ANY, "%s", err);
    return;
  }
  if (lua_type(L, -1) == LUA_TTABLE &&
      lua_getfield(L, -1, "op") == LUA_TSTRING)
    op = lua_tostring(L, -1);
  for (k.op = ctlops; op && k.op->name && strcmp(k.op->name, op); k.op++) {}
  if (op == NULL) {
    ctl_badreq(c, p, PLUSH_T_CTRL_REPLY, k.rid, PLUSH_ANY, "%s",
               lua_type(L, top + 1) == LUA_TTABLE
                   ? "control request without a string op"
                   : "control request is not a table");
  } else if (k.op->name == NULL) {
    ctl_badreq(c, p, PLUSH_T_CTRL_REPLY, k.rid, PLUSH_ANY,
               "unknown control op '%.60s'", op);
  } else if (p->kind == P_ENGINE && strncmp(op, "ts_", 3) != 0) {
    ctl_badreq(c, p, PLUSH_T_CTRL_REPLY, k.rid, PLUSH_ANY,
               "engines may not use control op '%.60s'", op);
  } else {
    lua_pushcfunction(L, runop);
    lua_pushlightuserdata(L, &k);
    lua_pushvalue(L, top + 1);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
      ctl_badreq(c, p, PLUSH_T_CTRL_REPLY, k.rid, PLUSH_ANY,
                 "control op '%s' failed: %s", op,
                 lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
    }
  }
  lua_settop(L, top);
}
