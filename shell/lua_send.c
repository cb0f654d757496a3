/*
** lua_send.c — a client's requests (conn:submit, conn:apply, conn:exec,
** conn:ctrl): encoded once, written (batched, corked to many engines, or
** relayed when big), and waited for when the socket would not take them.
** The client conn is lua_client.h's; its loop, callbacks and teardown are
** lua_core.c's.
*/
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "lua_client.h"
#include "lua_values.h"
#include "sigint.h"

/* requests smaller than this may wait for others (lua_batch.h) */
#define BATCH_SMALL ((size_t)4 << 10)

/* 1 when c can send; else pushes nil, "ECLOSED: not connected: why"... */
static int connected(lua_State *L, client *c) {
  if (c->conn != NULL && plush_conn_is_ready(c->conn)) return 1;
  plush_client_operr(L, "ECLOSED", "not connected: %s",
                     c->msg[0] ? c->msg : "closed");
  return 0;
}

/* Whether c holds writes: all of them, or what the socket refused. */
static int unsent(client *c, int all) {
  return c->conn != NULL &&
         (all ? plush_conn_queued(c->conn) : plush_conn_backlog(c->conn)) > 0;
}

/*
** Waits (running the loop) while the conn holds writes: all of them, or
** only what the socket refused (its backlog). Ctrl-C ends the wait: a
** caught one (the WAIT layer on: a callback submitting from a pump) is
** left for that layer; else the WAIT layer is on for the wait alone and
** a Ctrl-C is handed on after it as it would have come without the wait
** (to the shell's hook interrupting the local code, or to the program).
** What waits then goes at the next poll.
*/
static void waitwrites(client *c, int all) {
  int mine = 0;
  if (!unsent(c, all)) return; /* the usual case: no layer turned on */
  if (!c->nosigint && !plush_sigint_active(PLUSH_SIGINT_WAIT) &&
      plush_sigint_on(PLUSH_SIGINT_WAIT, 1) == 0) {
    mine = 1;
    plush_client_watchint(c);
  }
  while (!plush_sigint_got && unsent(c, all)) uv_run(c->loop, UV_RUN_ONCE);
  if (mine) {
    (void)plush_sigint_on(PLUSH_SIGINT_WAIT, 0);
    if (plush_sigint_take()) raise(SIGINT);
  }
}

/*
** A big request goes out before submit returns: the controller passes it
** on to its engine as it arrives (ctl_relay.c), so it must not stall
** half-sent while the caller computes without polling.
*/
static void flush(client *c) { waitwrites(c, 1); }

/*
** A request the socket would not take waits in libuv's queue, and only
** this thread's loop sends that on: not the flusher (lua_batch.h), so a
** program that went on computing without polling would hold it back
** (the engines idle, "in flight" tasks never leave), and a loop of
** submissions would grow it without bound. So submit waits here until
** the socket has taken it: the caller goes at the controller's pace
** (back-pressure), and what may wait after is a cork, the flusher's.
*/
static void drain(client *c) { waitwrites(c, 0); }

static uint64_t nextid(client *c) {
  if (++c->seq == 0) ++c->seq;
  return (uint64_t)c->cid << 32 | c->seq;
}

static int sendfailed(lua_State *L, client *c, plush_frame *f, int r) {
  plush_frame_unref(f);
  if (r == PLUSH_ECLOSED)
    return plush_client_operr(L, "ECLOSED", "not connected: %s",
                 c->msg[0] ? c->msg : "closing");
  return plush_client_operr(L, plush_err_name(r), "cannot send to %s: %s", c->where,
               plush_strerror(r));
}

static uint32_t checktarget(lua_State *L, int arg, lua_Integer v) {
  if (v < 0 || v >= (lua_Integer)PLUSH_ANY)
    luaL_argerror(L, arg, "engine id out of range");
  return (uint32_t)v;
}

/*
** A Lua function whose upvalues are all _ENV: its request bytes cannot
** change between two applies (the codec writes _ENV as the receiver's
** globals, whatever it holds; any other upvalue is a value of the moment,
** and a stripped function's upvalues have no names to tell).
*/
static int constant(lua_State *L, int idx) {
  const char *nm;
  if (lua_iscfunction(L, idx)) return 0;
  for (int i = 1; (nm = lua_getupvalue(L, idx, i)) != NULL; i++) {
    lua_pop(L, 1);
    if (strcmp(nm, "_ENV") != 0) return 0;
  }
  return 1;
}

/*
** conn:apply(target, F, timeout) of the F applied last, again (a farm's
** `for i = 1, n do lb:apply(task) end`), is the same request: its frame
** is kept (c->applyf, F in the conn's uservalue 2, so F cannot be
** collected and another function take its address) and written again,
** not encoded again. Frames are never changed once made: the same one
** goes to every target of a request.
*/
static plush_frame *applyframe(lua_State *L, client *c) {
  plush_frame *f;
  int same = lua_getiuservalue(L, 1, 2) == LUA_TFUNCTION && lua_rawequal(L, -1, 3);
  lua_pop(L, 1);
  if (same && c->applyf != NULL) return plush_frame_ref(c->applyf);
  f = plush_lua_encodeframe(L, 3, "request", PLUSH_T_REQ, 0, 6, 0);
  if (f->hdr.len < BATCH_SMALL && f->nsegs == 0 && constant(L, 3)) {
    plush_frame_unref(c->applyf);
    c->applyf = plush_frame_ref(f);
    lua_pushvalue(L, 3);
    lua_setiuservalue(L, 1, 2);
  }
  return f;
}

/*
** conn:submit(target, msg [, timeout [, opts]]). Targets are all checked
** and msg encoded before the first byte is written: a bad argument or a
** value that cannot travel sends nothing. opts are the controller's
** scheduling options (targets and retries for balanced tasks, after for
** any), sent ahead of the request; opts.durable also sets PLUSH_F_DURABLE
** (the reply waits for the store's commit).
** conn:apply(target, f, timeout, opts, ...): the same for the request
** {op = "apply", f = f, args = table.pack(...)}, written without them.
** conn:exec(target, code, timeout, opts [, name [, auto]]): the same for
** {op = "exec", code = code, name = name, auto = true or nil}; conn:apply
** with a string for f is that (one entry for the views: client.lua).
*/
static int submit(lua_State *L, int apply) {
  client *c = plush_client_of(L);
  int exec = apply == 2 || (apply && lua_type(L, 3) == LUA_TSTRING);
  int nargs = exec ? PLUSH_LUA_EXEC
              : apply ? (lua_gettop(L) > 5 ? lua_gettop(L) - 5 : 0) : -1;
  int tt = lua_type(L, 2), many = tt == LUA_TTABLE;
  lua_Integer n = 1, i;
  int opts = 0, durable = 0, batched = 0;
  uint32_t one = PLUSH_ANY, aux;
  double t = luaL_optnumber(L, 4, 0), ms;
  plush_frame *f;
  plush_hdr h;
  int r;
  if (many) {
    n = (lua_Integer)lua_rawlen(L, 2);
    for (i = 1; i <= n; i++) {
      int ok;
      lua_rawgeti(L, 2, i);
      checktarget(L, 2, lua_tointegerx(L, -1, &ok));
      if (!ok) luaL_argerror(L, 2, "array of engine ids expected");
      lua_pop(L, 1);
    }
  } else if (tt == LUA_TNUMBER) {
    one = checktarget(L, 2, luaL_checkinteger(L, 2));
  } else if (tt != LUA_TNIL && tt != LUA_TNONE) {
    luaL_typeerror(L, 2, "engine id, array of engine ids or nil");
  }
  if (exec) {
    luaL_checktype(L, 3, LUA_TSTRING);
    if (!lua_isnoneornil(L, 6)) luaL_checktype(L, 6, LUA_TSTRING);
    lua_settop(L, 7); /* name and auto: nil when absent */
  } else if (apply) {
    luaL_checktype(L, 3, LUA_TFUNCTION);
  } else {
    luaL_checkany(L, 3);
  }
  luaL_argcheck(L, t >= 0, 4, "non-negative number of seconds expected");
  if (!lua_isnoneornil(L, 5)) {
    luaL_checktype(L, 5, LUA_TTABLE);
    opts = 5;
    durable = lua_getfield(L, 5, "durable") != LUA_TNIL && lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  ms = ceil(t * 1000);
  aux = ms >= UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
  if (!connected(L, c)) return 3;
  if (many) lua_createtable(L, (int)n, 0);
  f = apply == 1 && !exec && nargs == 0 && !opts
          ? applyframe(L, c)
          : plush_lua_encodeframe(L, 3, "request", PLUSH_T_REQ, opts, 6, nargs);
  memset(&h, 0, sizeof h);
  h.type = PLUSH_T_REQ;
  h.aux = aux;
  /* the frames of many targets leave in one writev (conn_cork.c); a small
  ** one to one target waits for a few more (lua_batch.h) */
  if (many) plush_conn_cork(c->conn);
  else if (f->hdr.len < BATCH_SMALL) batched = plush_batch_begin(&c->batch);
  else if ((r = plush_batch_flush(&c->batch)) < 0) return sendfailed(L, c, f, r);
  for (i = 1; i <= n; i++) {
    if (many) {
      lua_rawgeti(L, 2, i);
      one = (uint32_t)lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
    h.engine = one;
    h.flags = one == PLUSH_ANY ? PLUSH_F_BALANCED : 0;
    if (opts) h.flags |= PLUSH_F_OPTS;
    if (durable) h.flags |= PLUSH_F_DURABLE;
    h.id = nextid(c);
    c->inflight++;
    if (batched) r = plush_batch_end(&c->batch, plush_conn_write_hdr_frame(c->conn, &h, f));
    else r = plush_conn_write_hdr_frame(c->conn, &h, f);
    if (r < 0) {
      if (many && c->conn) plush_conn_uncork(c->conn);
      return sendfailed(L, c, f, r);
    }
    if (many) {
      lua_pushinteger(L, (lua_Integer)h.id);
      lua_rawseti(L, -2, i);
    }
  }
  if (many && (r = plush_conn_uncork(c->conn)) < 0) return sendfailed(L, c, f, r);
  if (f->hdr.len >= PLUSH_RELAY_MIN) flush(c);
  else drain(c);
  plush_frame_unref(f);
  if (!many) lua_pushinteger(L, (lua_Integer)h.id);
  return 1;
}

int plush_client_submit(lua_State *L) { return submit(L, 0); }
int plush_client_apply(lua_State *L) { return submit(L, 1); }
int plush_client_exec(lua_State *L) { return submit(L, 2); }

int plush_client_ctrl(lua_State *L) {
  client *c = plush_client_of(L);
  plush_frame *f;
  plush_hdr h;
  int r;
  luaL_checkany(L, 2);
  if (!connected(L, c)) return 3;
  f = plush_lua_encodeframe(L, 2, "request", PLUSH_T_CTRL, 0, 0, -1);
  memset(&h, 0, sizeof h);
  h.type = PLUSH_T_CTRL;
  h.id = nextid(c);
  if ((r = plush_conn_write_hdr_frame(c->conn, &h, f)) < 0 ||
      (r = plush_batch_flush(&c->batch)) < 0) /* it goes now, in order */
    return sendfailed(L, c, f, r);
  plush_frame_unref(f);
  lua_pushinteger(L, (lua_Integer)h.id);
  return 1;
}
