/*
** engine_tuples.c — the tuple space from an engine: the global `tuples`
** (the cluster's default space) and engine.tuplespace([name] [, opts]), whose
** methods send control requests to the controller (core/ctl_tuples.c)
** and wait for the answer. See share/doc/models.md.
**
** One request at a time (the Lua thread waits for each): its id in
** mbox.rid, its answer put in mbox.reply by the I/O thread. A blocked
** take or read is interruptible (eng_msg_wait); the engine then cancels
** it at the controller, and should the tuple have been on its way
** already, the I/O thread puts it back in its space when it comes: a
** tuple is never lost to an interrupt.
*/
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "codec.h"
#include "engine_int.h"
#include "log.h"
#include "plush.h"

/* ---- requests to the controller ---------------------------------- */

/* Encodes the request table on top (popped) into mbox.tbuf; raises when
** a value in it cannot travel. */
static void encode(lua_State *L, plush_engine *e) {
  char err[200];
  e->mbox.tbuf.len = 0;
  if (plush_encode(L, -1, &e->mbox.tbuf, "request", err, sizeof err) < 0)
    eng_msg_error(L, "tuple space: %s", err);
  lua_pop(L, 1);
}

/* Sends the encoded request as CTRL rid: 0, or 1 when the link is down. */
static int sendreq(lua_State *L, plush_engine *e, uint64_t rid) {
  eng_mbox *m = &e->mbox;
  plush_hdr h = {(uint32_t)m->tbuf.len, PLUSH_T_CTRL, 0, 0,
                 atomic_load(&e->id), rid, 0};
  int r = eng_sendframe(e, &h, m->tbuf.data, m->tbuf.len);
  if (r < 0) return eng_msg_error(L, "tuple space: not enough memory");
  return r;
}

/* Sends the request table on top (popped) as CTRL rid; 0 or 1 (link down). */
static int post(lua_State *L, plush_engine *e, uint64_t rid) {
  encode(L, e);
  return sendreq(L, e, rid);
}

/* Pushes {op = op, space = name, [field] = value at idx}. */
static void newreq(lua_State *L, const char *op, const char *name,
                   const char *field, int idx) {
  idx = lua_absindex(L, idx);
  lua_createtable(L, 0, 5);
  lua_pushstring(L, op);
  lua_setfield(L, -2, "op");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "space");
  if (field) {
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, field);
  }
}

/*
** The request was abandoned (interrupted; the error on top stays there):
** a take is cancelled at the controller, or its tuple put back if it came.
*/
static void abandon(lua_State *L, plush_engine *e, uint64_t rid,
                    const char *space, int take) {
  eng_mbox *m = &e->mbox;
  plush_frame *f;
  char *name = take ? strdup(space) : NULL;
  uv_mutex_lock(&e->mu);
  f = m->reply;
  m->reply = NULL;
  m->rid = 0;
  if (f == NULL && name) {
    eng_tsleft *v = realloc(m->left, (m->nleft + 1) * sizeof *v);
    if (v) {
      m->left = v;
      v[m->nleft++] = (eng_tsleft){rid, e->gen, name};
      name = NULL;
    }
  }
  uv_mutex_unlock(&e->mu);
  free(name);
  lua_checkstack(L, 8);
  if (f && take && f->hdr.status == PLUSH_S_OK) {
    char err[200];
    if (plush_decode(L, plush_frame_payload(f), f->hdr.len, NULL, err,
                     sizeof err) == 0) {
      if (lua_istable(L, -1)) {
        newreq(L, "ts_out", space, "tuple", -1);
        post(L, e, 0);
      }
      lua_pop(L, 1);
    }
  } else if (f == NULL) {
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "ts_cancel");
    lua_setfield(L, -2, "op");
    lua_pushinteger(L, (lua_Integer)rid);
    lua_setfield(L, -2, "rid");
    post(L, e, 0);
  }
  plush_frame_unref(f);
}

/*
** Sends the request on top (popped) and waits for its answer, pushed:
** the value, or raises the controller's refusal.
*/
static int call(lua_State *L, const char *space, int take) {
  plush_engine *e = eng_self(L);
  eng_mbox *m = &e->mbox;
  uint64_t rid, gen;
  plush_frame *f;
  char err[200];
  int r;
  uv_mutex_lock(&e->mu);
  rid = ++m->next_rid;
  gen = e->gen;
  for (size_t i = 0; i < m->nleft;) /* those of a link that is gone */
    if (m->left[i].gen != gen) {
      free(m->left[i].space);
      m->left[i] = m->left[--m->nleft];
    } else {
      i++;
    }
  m->rid = rid;
  plush_frame_unref(m->reply);
  m->reply = NULL;
  uv_mutex_unlock(&e->mu);
  if (post(L, e, rid) == 1)
    return eng_msg_raise(L, "EngineError", -1,
                         "the link to the controller was lost");
  uv_mutex_lock(&e->mu);
  while (m->reply == NULL) {
    if (e->gen != gen) {
      m->rid = 0;
      uv_mutex_unlock(&e->mu);
      return eng_msg_raise(L, "EngineError", -1, "the link to the "
                           "controller was lost while waiting for the tuple "
                           "space");
    }
    if (eng_msg_wait(L, e, 0) == 2) {
      abandon(L, e, rid, space, take);
      return lua_error(L);
    }
  }
  f = m->reply;
  m->reply = NULL;
  m->rid = 0;
  uv_mutex_unlock(&e->mu);
  r = plush_decode(L, plush_frame_payload(f), f->hdr.len, NULL, err,
                   sizeof err);
  if (r == 0 && f->hdr.status != PLUSH_S_OK) {
    const char *msg = "the controller refused the request";
    if (lua_istable(L, -1) && lua_getfield(L, -1, "message") == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    plush_frame_unref(f);
    return eng_msg_raise(L, "BadRequest", -1, "%s", msg);
  }
  plush_frame_unref(f);
  if (r < 0) return eng_msg_error(L, "tuple space: %s", err);
  return 1;
}

/* ---- the tuples table -------------------------------------------- */

/* The space name of self (argument 1). */
static const char *selfname(lua_State *L, const char *fn) {
  const char *s;
  if (lua_type(L, 1) != LUA_TTABLE ||
      lua_getfield(L, 1, "name") != LUA_TSTRING)
    eng_msg_error(L, "tuples:%s: call it as a method (tuples:%s(...))", fn,
                  fn);
  s = lua_tostring(L, -1);
  lua_pop(L, 1); /* self holds it */
  return s;
}

/* Argument 2 (the user's first): a tuple or a pattern. */
static void checktable(lua_State *L, const char *fn, const char *what) {
  if (lua_type(L, 2) != LUA_TTABLE)
    eng_msg_error(L, "tuples:%s: the %s must be a table, not a %s", fn, what,
                  luaL_typename(L, 2));
}

/*
** out does not wait for the controller's answer: outs are pipelined (a
** window of ENG_TS_WINDOW in flight), the controller handles a link's
** requests in order (a take after an out sees it), and the task's reply
** waits until they are all stored (eng_ts_flush). What the controller
** would refuse (not a table, a bad name) is checked here first.
*/
static int l_out(lua_State *L) {
  plush_engine *e = eng_self(L);
  eng_mbox *m = &e->mbox;
  const char *name = selfname(L, "out");
  uint64_t rid;
  checktable(L, "out", "tuple");
  newreq(L, "ts_out", name, "tuple", 2);
  encode(L, e); /* a tuple that cannot travel raises before it counts */
  uv_mutex_lock(&e->mu);
  if (m->outs_gen != e->gen) m->outs = 0, m->outs_gen = e->gen;
  while (m->outs >= ENG_TS_WINDOW && m->outs_gen == e->gen)
    if (eng_msg_wait(L, e, 0) == 2) return lua_error(L);
  if (m->outs_gen != e->gen) m->outs = 0, m->outs_gen = e->gen;
  m->outs++;
  rid = ENG_TS_OUT | ++m->next_rid;
  uv_mutex_unlock(&e->mu);
  if (sendreq(L, e, rid) != 0) { /* the link is down: it never went */
    uv_mutex_lock(&e->mu);
    if (m->outs > 0) m->outs--;
    uv_mutex_unlock(&e->mu);
    return eng_msg_raise(L, "EngineError", -1,
                         "the link to the controller was lost");
  }
  lua_pushboolean(L, 1);
  return 1;
}

/*
** The task is over: its reply waits until every out it pipelined is
** stored. The controller commits pipelined outs in its group commit, up
** to CTL_COMMIT_WAIT after they came; {op = "ts_sync"} (not answered)
** says that this engine now waits for them, so that they commit at once.
*/
void eng_ts_flush(plush_engine *e) {
  static const char sync[] = "\x81\xa2op\xa7ts_sync";
  eng_mbox *m = &e->mbox;
  int pending;
  uv_mutex_lock(&e->mu);
  pending = m->outs > 0 && m->outs_gen == e->gen && !e->stopping;
  uv_mutex_unlock(&e->mu);
  if (pending) {
    plush_hdr h = {sizeof sync - 1, PLUSH_T_CTRL, 0, 0, atomic_load(&e->id),
                   0, 0};
    (void)eng_sendframe(e, &h, sync, sizeof sync - 1); /* a lost link: below */
  }
  uv_mutex_lock(&e->mu);
  while (m->outs > 0 && m->outs_gen == e->gen && !e->stopping)
    uv_cond_wait(&e->outc, &e->mu);
  m->outs = 0;
  uv_mutex_unlock(&e->mu);
}

/* take, read, try_take, try_read: tuple, or nil (try_), or nil, "timeout". */
static int get(lua_State *L, const char *fn, int take, int wait) {
  const char *name = selfname(L, fn);
  lua_Number t = -1;
  checktable(L, fn, "pattern");
  if (wait && !lua_isnoneornil(L, 3)) t = eng_msg_timeout(L, 3, fn);
  newreq(L, take ? "ts_take" : "ts_read", name, "pattern", 2);
  if (t >= 0) {
    lua_pushnumber(L, t);
    lua_setfield(L, -2, "timeout");
  }
  lua_pushboolean(L, wait);
  lua_setfield(L, -2, "wait");
  /* a durable space's take is answered once its removal is committed */
  if (take) {
    if (lua_getfield(L, 1, "durable") == LUA_TBOOLEAN && lua_toboolean(L, -1))
      lua_setfield(L, -2, "durable");
    else
      lua_pop(L, 1);
  }
  call(L, name, take);
  if (lua_type(L, -1) == LUA_TSTRING) { /* "timeout" */
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  return 1;
}

static int l_take(lua_State *L) { return get(L, "take", 1, 1); }
static int l_read(lua_State *L) { return get(L, "read", 0, 1); }
static int l_try_take(lua_State *L) { return get(L, "try_take", 1, 0); }
static int l_try_read(lua_State *L) { return get(L, "try_read", 0, 0); }

static int l_count(lua_State *L) {
  const char *name = selfname(L, "count");
  if (!lua_isnoneornil(L, 2)) checktable(L, "count", "pattern");
  newreq(L, "ts_count", name, lua_isnoneornil(L, 2) ? NULL : "pattern", 2);
  return call(L, name, 0);
}

void eng_ts_open(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"plush.ts.out", l_out},           {"plush.ts.take", l_take},
      {"plush.ts.read", l_read},         {"plush.ts.try_take", l_try_take},
      {"plush.ts.try_read", l_try_read}, {"plush.ts.count", l_count},
      {NULL, NULL}};
  for (const luaL_Reg *r = fns; r->name; r++) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, LUA_REGISTRYINDEX, r->name);
  }
}

/*
** How many pipelined outs an answer acknowledges: the controller merges
** those stored by one commit into one answer whose value is their count
** (an integer: fixint or uint32); true (or a refusal) is one.
*/
static size_t acked(plush_frame *f) {
  const unsigned char *p = (const unsigned char *)plush_frame_payload(f);
  size_t n = 0;
  if (f->hdr.status != PLUSH_S_OK || f->hdr.len == 0) return 1;
  if (f->hdr.len == 1 && p[0] >= 1 && p[0] <= 0x7f) return p[0];
  if (f->hdr.len == 5 && p[0] == 0xce) {
    for (int i = 1; i < 5; i++) n = n << 8 | p[i];
    return n ? n : 1;
  }
  return 1;
}

/*
** I/O thread: the answer to the Lua thread's request, or to one it gave
** up on: a tuple that came for an abandoned take goes back to its space.
*/
void eng_ts_reply(plush_engine *e, plush_frame *f) {
  eng_mbox *m = &e->mbox;
  char *space = NULL, err[200];
  lua_State *L = e->cl;
  uv_mutex_lock(&e->mu);
  if (f->hdr.id & ENG_TS_OUT) { /* outs are stored: how many it acks */
    size_t k = acked(f);
    m->outs = m->outs > k ? m->outs - k : 0;
    __atomic_add_fetch(&m->events, 1, __ATOMIC_RELAXED);
    uv_cond_broadcast(&e->outc);
    uv_mutex_unlock(&e->mu);
    if (f->hdr.status != PLUSH_S_OK)
      plush_warn("the controller refused a tuple put out");
    plush_frame_unref(f);
    return;
  }
  if (f->hdr.id != 0 && f->hdr.id == m->rid && m->reply == NULL) {
    m->reply = f;
    __atomic_add_fetch(&m->events, 1, __ATOMIC_RELAXED);
    uv_cond_broadcast(&e->outc);
    uv_mutex_unlock(&e->mu);
    return;
  }
  for (size_t i = 0; f->hdr.id != 0 && i < m->nleft; i++)
    if (m->left[i].rid == f->hdr.id) {
      space = m->left[i].space;
      m->left[i] = m->left[--m->nleft];
      break;
    }
  uv_mutex_unlock(&e->mu);
  if (space && f->hdr.status == PLUSH_S_OK && e->conn &&
      plush_decode(L, plush_frame_payload(f), f->hdr.len, NULL, err,
                   sizeof err) == 0) {
    if (lua_istable(L, -1)) {
      plush_buf b = PLUSH_BUF_INIT;
      plush_hdr h = {0, PLUSH_T_CTRL, 0, 0, atomic_load(&e->id), 0, 0};
      newreq(L, "ts_out", space, "tuple", -1);
      if (plush_encode(L, -1, &b, "request", err, sizeof err) == 0) {
        size_t n;
        char *d = plush_buf_steal(&b, &n);
        plush_conn_write_owned(e->conn, &h, d, n);
        plush_info("a tuple for an interrupted take went back to space %s",
                   space);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  free(space);
  plush_frame_unref(f);
}
