/*
** ctl_tuples.c — the tuple space (Linda), kept by the controller: named
** spaces of tuples, the requests waiting for one, and their persistence
** in the result store's database. See share/doc/models.md.
**
** Clients and engines reach it with control requests (the ts_* entries
** of ctl_ops.c's ctlops): {op = "ts_out", space, tuple},
** {op = "ts_take" | "ts_read", space, pattern, wait, timeout, durable},
** {op = "ts_cancel", rid}, {op = "ts_count", space, pattern?}. A take or
** read is answered with the tuple's encoding exactly as it was put out
** (a table), nil when a try_ found none, the string "timeout" or
** "cancelled". A tuple is kept decoded in c->L (matching compares Lua
** values) and encoded (what the answers carry, and what is stored), in
** its space's list (oldest first) and in one of its index buckets (by
** arity and first field): a take or read whose pattern starts with a
** value walks that bucket only.
**
** Never losing a tuple: one that is put out goes to the waiters that
** match it (reads all get it; the oldest take consumes it), else into
** its space and its row in the database, in the open transaction; the
** out's answer leaves once the transaction commits (ctl_store.c's group
** commit, at most CTL_COMMIT_WAIT ms later: an engine's outs are
** pipelined, and a tuple put out and taken before it never reaches the
** database). A take is answered at once and its row deleted by that
** commit, as results go before theirs; a durable take (durable = true),
** or a client's out, is answered after the commit, which then comes at
** the end of the loop turn, as for durable results. A waiter whose
** engine or client is gone is dropped before anything reaches it; a
** blocked take that its engine abandons (interrupted) is cancelled, and
** a tuple that was already on its way is put back by that engine
** (engines/engine_tuples.c).
*/
#include <lauxlib.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ctl_tuples.h"
#include "log.h"
#include "plush.h"

#define NAME_MAX_LEN 200

struct ctl_ts *ctl_ts_new(plush_ctl *c) {
  struct ctl_ts *ts = calloc(1, sizeof *ts);
  if (ts) {
    ts->c = c;
    ts->unsaved.uprev = ts->unsaved.unext = &ts->unsaved;
    plush_map_init(&ts->byrid);
  }
  return ts;
}

static struct ctl_ts *state(plush_ctl *c) {
  if (c->ts == NULL) c->ts = ctl_ts_new(c);
  if (c->ts == NULL) luaL_error(c->L, "tuple space: out of memory");
  return c->ts;
}

/* ---- answers ----------------------------------------------------- */

peer *ctl_ts_whom(plush_ctl *c, int kind, uint32_t who) {
  peer *p = plush_map_get(kind == P_CLIENT ? &c->clients : &c->engines, who);
  return p && p->conn && p->kind == kind ? p : NULL;
}

/*
** Answers request rid of (kind, who) with the payload data: at once, or
** (hold) after the loop turn's transaction when one is open.
*/
static void answer(plush_ctl *c, int kind, uint32_t who, uint64_t rid,
                   const char *data, size_t len, int hold) {
  struct ctl_ts *ts = c->ts;
  plush_hdr h = {(uint32_t)len, PLUSH_T_CTRL_REPLY, 0, 0, 0, rid, 0};
  plush_frame *f;
  peer *p;
  if ((f = plush_frame_new(&h)) == NULL) return;
  if (len) memcpy(plush_frame_payload(f), data, len);
  if (hold && ts && c->db && ctl_store_begin(c) == 0) {
    if (ts->npend == ts->cap) {
      size_t n = ts->cap ? 2 * ts->cap : 16;
      held *v = realloc(ts->pend, n * sizeof *v);
      if (v != NULL) ts->pend = v, ts->cap = n;
    }
    if (ts->npend < ts->cap) {
      ts->pend[ts->npend++] = (held){kind, who, f, 0, rid};
      ts->nheld++;
      return;
    }
    ctl_store_commit(c); /* no room to hold it: commit first */
  }
  if ((p = ctl_ts_whom(c, kind, who)) != NULL) plush_conn_write_frame(p->conn, f);
  plush_frame_unref(f);
}

/*
** Acknowledges an out once stored. An engine's pipelined outs (rid with
** CTL_TS_PIPED) held for the same commit share one answer, the count: a
** turn that stores a batch of outs writes one frame per engine, not one
** per tuple. The merge looks at the last few held answers only.
*/
static void ack(plush_ctl *c, peer *p, uint64_t rid) {
  struct ctl_ts *ts = c->ts;
  if ((rid & CTL_TS_PIPED) && ts && c->db && ctl_store_begin(c) == 0) {
    size_t i = ts->npend, low = i > 8 ? i - 8 : 0;
    while (i-- > low)
      if (ts->pend[i].f == NULL && ts->pend[i].kind == p->kind &&
          ts->pend[i].who == p->id) {
        ts->pend[i].acks++;
        ts->pend[i].rid = rid;
        return;
      }
    if (ts->npend == ts->cap) {
      size_t n = ts->cap ? 2 * ts->cap : 16;
      held *v = realloc(ts->pend, n * sizeof *v);
      if (v != NULL) ts->pend = v, ts->cap = n;
    }
    if (ts->npend < ts->cap) {
      ts->pend[ts->npend++] = (held){p->kind, p->id, NULL, 1, rid};
      return;
    }
  }
  answer(c, p->kind, p->id, rid, true_enc, 1, 1);
}

static void reply(plush_ctl *c, int kind, uint32_t who, uint64_t rid,
                  const char *data, size_t len) {
  answer(c, kind, who, rid, data, len, 0);
}

/* ---- spaces, tuples, waiters ------------------------------------- */

space *ctl_ts_space(const char *name) {
  space *sp = calloc(1, sizeof *sp);
  if (sp == NULL || (sp->name = strdup(name)) == NULL) {
    free(sp);
    return NULL;
  }
  sp->tuples.prev = sp->tuples.next = &sp->tuples;
  sp->waiters.prev = sp->waiters.next = &sp->waiters;
  return sp;
}

static space *findspace(struct ctl_ts *ts, const char *name, int make) {
  space *sp;
  for (sp = ts->spaces; sp; sp = sp->next)
    if (strcmp(sp->name, name) == 0) return sp;
  if (!make) return NULL;
  if ((sp = ctl_ts_space(name)) == NULL)
    luaL_error(ts->c->L, "tuple space: out of memory");
  sp->next = ts->spaces;
  ts->spaces = sp;
  return sp;
}

/* ---- tuples in a space ------------------------------------------ */

void ctl_ts_append(lua_State *L, space *sp, tup *t, int idx) {
  bucket *b;
  lua_rawgeti(L, idx, 1);
  t->bkt = ctl_ts_key(L, t->n, lua_gettop(L));
  lua_pop(L, 1);
  b = &sp->bk[t->bkt];
  t->bnext = NULL;
  t->bprev = b->tail;
  if (b->tail) b->tail->bnext = t;
  else b->head = t;
  b->tail = t;
  t->prev = sp->tuples.prev;
  t->next = &sp->tuples;
  sp->tuples.prev->next = t;
  sp->tuples.prev = t;
  sp->count++;
}

static void tupdrop(plush_ctl *c, space *sp, tup *t) {
  struct ctl_ts *ts = c->ts;
  t->prev->next = t->next;
  t->next->prev = t->prev;
  if (t->bprev) t->bprev->bnext = t->bnext;
  else sp->bk[t->bkt].head = t->bnext;
  if (t->bnext) t->bnext->bprev = t->bprev;
  else sp->bk[t->bkt].tail = t->bprev;
  sp->count--;
  if (t->unext) { /* never written: nothing to delete */
    t->uprev->unext = t->unext;
    t->unext->uprev = t->uprev;
  } else if (t->saved && ts->del) {
    if (ts->ndels == ts->delcap) {
      size_t n = ts->delcap ? 2 * ts->delcap : 64;
      sqlite3_int64 *v = realloc(ts->dels, n * sizeof *v);
      if (v) ts->dels = v, ts->delcap = n;
    }
    if (ts->ndels < ts->delcap) ts->dels[ts->ndels++] = t->seq;
    ctl_store_begin(c);
  }
  luaL_unref(c->L, LUA_REGISTRYINDEX, t->ref);
  free(t->data);
  free(t);
}

static void timerfree(uv_handle_t *h) { free(h); }

uint64_t ctl_ts_wkey(int kind, uint32_t who, uint64_t rid) {
  return rid ^ ((uint64_t)who * 0x9e3779b97f4a7c15ULL) ^ (uint64_t)(unsigned)kind;
}

/* w out of ts->byrid. The head replaced by the next of its key: deleted
** then put, which never grows the map (it held one more), so never fails. */
static void unindex(struct ctl_ts *ts, waiter *w) {
  uint64_t k = ctl_ts_wkey(w->kind, w->who, w->rid);
  waiter *h = plush_map_get(&ts->byrid, k);
  if (h == w) {
    plush_map_del(&ts->byrid, k);
    if (w->hnext) plush_map_put(&ts->byrid, k, w->hnext);
    return;
  }
  while (h && h->hnext != w) h = h->hnext;
  if (h) h->hnext = w->hnext;
}

void ctl_ts_waitdrop(plush_ctl *c, waiter *w) {
  unindex(w->ts, w);
  w->prev->next = w->next;
  w->next->prev = w->prev;
  luaL_unref(c->L, LUA_REGISTRYINDEX, w->ref);
  if (w->timer) uv_close((uv_handle_t *)w->timer, timerfree);
  free(w);
}

static void ontimeout(uv_timer_t *tm) {
  waiter *w = tm->data;
  plush_ctl *c = w->ts->c;
  reply(c, w->kind, w->who, w->rid, timeout_enc, sizeof timeout_enc - 1);
  ctl_ts_waitdrop(c, w);
}

void ctl_ts_gone(plush_ctl *c, peer *p) {
  space *sp;
  if (c->ts == NULL) return;
  for (sp = c->ts->spaces; sp; sp = sp->next) {
    waiter *w = sp->waiters.next, *nx;
    for (; w != &sp->waiters; w = nx) {
      nx = w->next;
      if (w->kind == p->kind && w->who == p->id) ctl_ts_waitdrop(c, w);
    }
  }
}

/* ---- matching ---------------------------------------------------- */

int ctl_ts_arity(lua_State *L, int idx) {
  lua_Integer n;
  if (lua_getfield(L, idx, "n") == LUA_TNUMBER && lua_isinteger(L, -1))
    n = lua_tointeger(L, -1);
  else
    n = (lua_Integer)lua_rawlen(L, idx);
  lua_pop(L, 1);
  return n < 0 ? 0 : n > 1 << 20 ? 1 << 20 : (int)n;
}

/* ---- requests ---------------------------------------------------- */

/* The request's space name (held by the request table at req), or NULL
** after refusing it. */
static const char *spacename(plush_ctl *c, peer *p, uint64_t rid, int req) {
  lua_State *L = c->L;
  int t = lua_getfield(L, req, "space");
  size_t len = 0;
  const char *s = t == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  lua_pop(L, 1);
  if (t == LUA_TNIL) return "default";
  if (s && len >= 1 && len <= NAME_MAX_LEN && strlen(s) == len) return s;
  ctl_refuse(c, p, rid, "tuple space: its name must be a string of 1 to 200 "
                        "bytes");
  return NULL;
}

/* The request's table field (tuple or pattern) pushed, or refused (0). */
static int tablefield(plush_ctl *c, peer *p, uint64_t rid, int req,
                      const char *field, const char *what) {
  lua_State *L = c->L;
  int t = lua_getfield(L, req, field);
  char m[160];
  if (t == LUA_TTABLE) return 1;
  snprintf(m, sizeof m, "%s: the %s must be a table, not a %s", what, field,
           lua_typename(L, t));
  lua_pop(L, 1);
  ctl_refuse(c, p, rid, m);
  return 0;
}

/* Checks the pattern on top; refuses it (0) when a field asks for a type
** that does not exist or is a function (which equals nothing). */
static int checkpattern(plush_ctl *c, peer *p, uint64_t rid, int n,
                        const char *what) {
  lua_State *L = c->L;
  int pi = lua_gettop(L);
  char m[200];
  for (int i = 1; i <= n; i++) {
    int k, t;
    lua_rawgeti(L, pi, i);
    k = ctl_ts_fieldkind(L, -1);
    t = lua_type(L, -1);
    lua_pop(L, 1);
    if (k == -1) {
      snprintf(m, sizeof m, "%s: pattern[%d] asks for a type that does not "
               "exist (nil, boolean, number, string, table, function, "
               "integer, float)", what, i);
    } else if (k == 0 && t == LUA_TFUNCTION) {
      snprintf(m, sizeof m, "%s: pattern[%d] is a function, which equals "
               "nothing: use plush.ANY or plush.type \"function\"", what, i);
    } else {
      continue;
    }
    ctl_refuse(c, p, rid, m);
    return 0;
  }
  return 1;
}

void ctl_ts_out(plush_ctl *c, peer *p, uint64_t rid) {
  lua_State *L = c->L;
  int req = lua_gettop(L), ti, n, taken = 0;
  const char *name = spacename(c, p, rid, req);
  struct ctl_ts *ts = state(c);
  plush_buf b = PLUSH_BUF_INIT;
  char err[200];
  space *sp;
  waiter *w, *nx;
  tup *t;
  if (name == NULL || !tablefield(c, p, rid, req, "tuple", "out")) return;
  ti = lua_gettop(L);
  n = ctl_ts_arity(L, ti);
  if (plush_encode(L, ti, &b, "tuple", err, sizeof err) < 0) {
    ctl_refuse(c, p, rid, err);
    return;
  }
  sp = findspace(ts, name, 1);
  /* the waiters first, oldest first: every read matching, one take */
  for (w = sp->waiters.next; w != &sp->waiters && !taken; w = nx) {
    int m;
    nx = w->next;
    if (ctl_ts_whom(c, w->kind, w->who) == NULL) {
      ctl_ts_waitdrop(c, w);
      continue;
    }
    if (w->n != n) continue;
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->ref);
    m = ctl_ts_match(L, ti, lua_gettop(L), n);
    lua_pop(L, 1);
    if (!m) continue;
    reply(c, w->kind, w->who, w->rid, b.data, b.len);
    taken = w->take;
    ctl_ts_waitdrop(c, w);
  }
  if (!taken) {
    if ((t = calloc(1, sizeof *t)) == NULL) {
      plush_buf_free(&b);
      luaL_error(L, "tuple space: out of memory");
    }
    t->n = n;
    t->sp = sp;
    t->data = plush_buf_steal(&b, &t->len);
    lua_pushvalue(L, ti);
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->seq = ++ts->seq;
    if (ts->ins && ctl_store_begin(c) == 0) { /* written at the commit */
      t->uprev = ts->unsaved.uprev;
      t->unext = &ts->unsaved;
      ts->unsaved.uprev->unext = t;
      ts->unsaved.uprev = t;
    }
    ctl_ts_append(L, sp, t, ti);
  }
  plush_buf_free(&b);
  ack(c, p, rid); /* once stored */
}

/* take and read: the oldest matching tuple, else wait (or not). */
static void get(plush_ctl *c, peer *p, uint64_t rid, int take) {
  lua_State *L = c->L;
  const char *what = take ? "take" : "read";
  int req = lua_gettop(L), pi, n, wait, durable, bk;
  const char *name = spacename(c, p, rid, req);
  struct ctl_ts *ts = state(c);
  lua_Number timeout = -1;
  space *sp;
  tup *t;
  waiter *w;
  if (name == NULL || !tablefield(c, p, rid, req, "pattern", what)) return;
  pi = lua_gettop(L);
  n = ctl_ts_arity(L, pi);
  if (!checkpattern(c, p, rid, n, what)) return;
  lua_getfield(L, req, "wait");
  wait = lua_toboolean(L, -1);
  lua_getfield(L, req, "durable");
  durable = lua_toboolean(L, -1);
  lua_getfield(L, req, "timeout");
  if (lua_type(L, -1) == LUA_TNUMBER) timeout = lua_tonumber(L, -1);
  else if (!lua_isnil(L, -1)) timeout = -2;
  lua_pop(L, 3);
  if (timeout == -2 || (timeout != -1 && !(timeout >= 0 && timeout < 1e9))) {
    char m[120];
    snprintf(m, sizeof m, "%s: the timeout must be a number of seconds from "
             "0 to 1e9", what);
    ctl_refuse(c, p, rid, m);
    return;
  }
  sp = findspace(ts, name, wait);
  bk = sp ? ctl_ts_patternkey(L, pi, n) : -1;
  t = sp == NULL ? NULL : bk >= 0 ? sp->bk[bk].head : sp->tuples.next;
  /* its bucket (oldest first) when the first field is a value, else all */
  for (; t && t != &sp->tuples; t = bk >= 0 ? t->bnext : t->next) {
    int m;
    if (t->n != n) continue;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    m = ctl_ts_match(L, lua_gettop(L), pi, n);
    lua_pop(L, 1);
    if (!m) continue;
    /* a take of a stored tuple: answered now, its row deleted by the
    ** turn's commit that follows; a durable one once that commit is done
    ** (a crash in between must not give it to a second taker) */
    answer(c, p->kind, p->id, rid, t->data, t->len,
           take && durable && t->saved);
    if (take) tupdrop(c, sp, t);
    return;
  }
  if (!wait) {
    reply(c, p->kind, p->id, rid, nil_enc, 1);
    return;
  }
  if (timeout == 0) {
    reply(c, p->kind, p->id, rid, timeout_enc, sizeof timeout_enc - 1);
    return;
  }
  if ((w = calloc(1, sizeof *w)) == NULL)
    luaL_error(L, "tuple space: out of memory");
  *w = (waiter){ts, sp, rid, p->kind, p->id, take, LUA_NOREF, n, NULL,
                sp->waiters.prev, &sp->waiters, NULL};
  {
    uint64_t k = ctl_ts_wkey(p->kind, p->id, rid);
    w->hnext = plush_map_get(&ts->byrid, k);
    if (plush_map_put(&ts->byrid, k, w) != 0) {
      free(w);
      luaL_error(L, "tuple space: out of memory");
    }
  }
  if (timeout > 0 && (w->timer = malloc(sizeof *w->timer)) != NULL) {
    uv_timer_init(c->loop, w->timer);
    w->timer->data = w;
    uv_timer_start(w->timer, ontimeout, (uint64_t)(timeout * 1000 + 0.5), 0);
  }
  lua_pushvalue(L, pi);
  w->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  sp->waiters.prev->next = w;
  sp->waiters.prev = w;
}

void ctl_ts_take(plush_ctl *c, peer *p, uint64_t rid) { get(c, p, rid, 1); }
void ctl_ts_read(plush_ctl *c, peer *p, uint64_t rid) { get(c, p, rid, 0); }

/*
** ts_cancel {rid}: p gives up its blocked request rid (an interrupted
** take). Still waiting: answered "cancelled" and dropped. Already
** answered: nothing (the engine puts back what it no longer wants). The
** cancel itself is not answered.
*/
void ctl_ts_cancel(plush_ctl *c, peer *p, uint64_t rid) {
  lua_State *L = c->L;
  lua_Integer which;
  waiter *w;
  (void)rid;
  lua_getfield(L, -1, "rid");
  which = lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (c->ts == NULL) return;
  /* by its key: a client cancelling 10^5 waiting takes (a Ctrl-C) costs
  ** 10^5 lookups, not 10^10 steps through the spaces' waiters */
  w = plush_map_get(&c->ts->byrid, ctl_ts_wkey(p->kind, p->id, (uint64_t)which));
  for (; w; w = w->hnext)
    if (w->kind == p->kind && w->who == p->id && w->rid == (uint64_t)which) {
      reply(c, w->kind, w->who, w->rid, cancelled_enc, sizeof cancelled_enc - 1);
      ctl_ts_waitdrop(c, w);
      return;
    }
}

/*
** ts_sync {}: engine p's task ends and waits for the acks of the outs it
** pipelined (engines/engine_tuples.c, eng_ts_flush): the commit they wait
** for comes at the end of this turn, not up to CTL_COMMIT_WAIT later. Not
** answered.
*/
void ctl_ts_sync(plush_ctl *c, peer *p, uint64_t rid) {
  (void)p;
  (void)rid;
  state(c)->urgent = 1;
}

/* ts_count {space, pattern?}: how many tuples (matching) it holds. */
void ctl_ts_count(plush_ctl *c, peer *p, uint64_t rid) {
  lua_State *L = c->L;
  int req = lua_gettop(L), pi = 0, n = 0;
  const char *name = spacename(c, p, rid, req);
  lua_Integer count = 0;
  space *sp;
  if (name == NULL) return;
  if (lua_getfield(L, req, "pattern") == LUA_TTABLE) {
    pi = lua_gettop(L);
    n = ctl_ts_arity(L, pi);
    if (!checkpattern(c, p, rid, n, "count")) return;
  }
  sp = findspace(state(c), name, 0);
  for (tup *t = sp ? sp->tuples.next : NULL; sp && t != &sp->tuples;
       t = t->next) {
    int m = 1;
    if (pi) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
      m = t->n == n && ctl_ts_match(L, lua_gettop(L), pi, n);
      lua_pop(L, 1);
    }
    count += m;
  }
  lua_pushinteger(L, count);
  ctl_answer(c, p, rid, 0);
}
