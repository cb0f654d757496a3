/*
** ctl_follow.c — collaboration: the clients connected (control op
** "clients") and clients following another client's work (op "follow").
** Each request a followed client submits, and each output and reply that
** comes for it, is copied to its followers as an EVENT {event = "follow",
** client, what = "request" | "output" | "reply", id, engine, status,
** data} -- data: the frame's payload as it travels (a request without its
** scheduling options), left out past FOLLOW_DATA bytes (then size says
** how many). A follower that does not keep up loses events rather than
** making the controller buffer them: the next one it gets says how many
** it lost (dropped). See share/doc/models.md, "Collaboration".
*/
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ctl.h"
#include "log.h"
#include "plush.h"

/* Payloads longer than this are announced by their size only. */
#define FOLLOW_DATA (64 * 1024)

static int byid(const void *a, const void *b) {
  uint32_t x = (*(peer *const *)a)->id, y = (*(peer *const *)b)->id;
  return x < y ? -1 : x > y;
}

/* ---- clients ----------------------------------------------------- */

/*
** clients: every connected client, by id: {id, address, since (epoch
** seconds), running (its tasks running on an engine now), queued (the
** others not finished), follows (the client it follows, or "all"), me
** (the asker)}.
*/
void ctl_op_clients(plush_ctl *c, peer *p, uint64_t rid) {
  lua_State *L = c->L;
  size_t n = c->clients.count, i = 0, k = 0, j;
  uint64_t key;
  void *v;
  plush_map pending, running; /* client id -> count (as a pointer) */
  peer **list = malloc((n ? n : 1) * sizeof *list);
  if (list == NULL) {
    ctl_refuse(c, p, rid, "clients: out of memory");
    return;
  }
  plush_map_init(&pending);
  plush_map_init(&running);
  while (plush_map_next(&c->tasks, &i, &key, &v)) {
    uint32_t cl = (uint32_t)(key >> 32);
    uintptr_t was = (uintptr_t)plush_map_get(&pending, cl);
    plush_map_put(&pending, cl, (void *)(was + 1));
  }
  i = 0;
  while (plush_map_next(&c->engines, &i, &key, &v)) {
    peer *e = v;
    task *t = e->running ? plush_map_get(&c->tasks, e->running) : NULL;
    if (t != NULL && t->engine == e) {
      uint32_t cl = (uint32_t)(t->id >> 32);
      uintptr_t was = (uintptr_t)plush_map_get(&running, cl);
      plush_map_put(&running, cl, (void *)(was + 1));
    }
  }
  i = 0;
  while (k < n && plush_map_next(&c->clients, &i, &key, &v)) list[k++] = v;
  qsort(list, k, sizeof *list, byid);
  lua_createtable(L, (int)k, 0);
  for (j = 0; j < k; j++) {
    peer *q = list[j];
    lua_Integer all = (lua_Integer)(uintptr_t)plush_map_get(&pending, q->id);
    lua_Integer run = (lua_Integer)(uintptr_t)plush_map_get(&running, q->id);
    lua_createtable(L, 0, 7);
    ctl_setint(L, "id", q->id);
    ctl_setstr(L, "address", q->conn ? plush_conn_peer(q->conn) : "");
    lua_pushnumber(L, q->since);
    lua_setfield(L, -2, "since");
    ctl_setint(L, "running", run);
    ctl_setint(L, "queued", all - run);
    if (q->following) {
      if (q->follows == PLUSH_ANY)
        ctl_setstr(L, "follows", "all");
      else
        ctl_setint(L, "follows", q->follows);
    }
    if (q == p) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "me");
    }
    lua_rawseti(L, -2, (lua_Integer)j + 1);
  }
  plush_map_free(&pending);
  plush_map_free(&running);
  free(list);
  ctl_answer(c, p, rid, 0);
}

/* ---- following --------------------------------------------------- */

/* follow {client = id}: that client; follow {}: every other one;
** follow {stop = true}: no more. Answers {following = id | "all" | false}. */
void ctl_op_follow(plush_ctl *c, peer *p, uint64_t rid) {
  lua_State *L = c->L;
  uint32_t target = PLUSH_ANY;
  int stop, t;
  char msg[120];
  lua_getfield(L, -1, "stop");
  stop = lua_toboolean(L, -1);
  lua_pop(L, 1);
  t = lua_getfield(L, -1, "client");
  if (!stop && t != LUA_TNIL) {
    lua_Integer id = lua_tointeger(L, -1);
    if (!lua_isinteger(L, -1) || id < 0 || id > (lua_Integer)UINT32_MAX - 1) {
      ctl_refuse(c, p, rid, "follow: client must be a client id");
      return;
    }
    if ((uint32_t)id == p->id) {
      ctl_refuse(c, p, rid, "follow: a client cannot follow itself");
      return;
    }
    if (plush_map_get(&c->clients, (uint64_t)id) == NULL) {
      snprintf(msg, sizeof msg, "follow: no client %lld is connected",
               (long long)id);
      ctl_refuse(c, p, rid, msg);
      return;
    }
    target = (uint32_t)id;
  }
  lua_pop(L, 1);
  if (stop) {
    if (p->following) c->nfollow--;
    p->following = 0;
  } else {
    if (!p->following) c->nfollow++;
    p->following = 1;
    p->follows = target;
    p->follow_dropped = 0;
  }
  lua_createtable(L, 0, 1);
  if (stop)
    lua_pushboolean(L, 0);
  else if (target == PLUSH_ANY)
    lua_pushliteral(L, "all");
  else
    lua_pushinteger(L, target);
  lua_setfield(L, -2, "following");
  ctl_answer(c, p, rid, 0);
}

/* The EVENT for frame f (NULL: the client left) of client owner. */
static plush_frame *event(plush_ctl *c, uint32_t owner, const char *what,
                          plush_frame *f, size_t off, int dropped) {
  lua_State *L = c->L;
  plush_buf b = PLUSH_BUF_INIT;
  plush_hdr h = {0, PLUSH_T_EVENT, 0, 0, 0, 0, 0};
  plush_frame *ev = NULL;
  char err[200];
  lua_createtable(L, 0, 8);
  ctl_setstr(L, "event", "follow");
  ctl_setint(L, "client", owner);
  ctl_setstr(L, "what", what);
  if (dropped > 0) ctl_setint(L, "dropped", dropped);
  if (f != NULL) {
    size_t len = f->hdr.len - off;
    ctl_setint(L, "id", (lua_Integer)f->hdr.id);
    if (f->hdr.engine != PLUSH_ANY) ctl_setint(L, "engine", f->hdr.engine);
    ctl_setint(L, "status", f->hdr.status);
    if (f->hdr.type == PLUSH_T_OUTPUT) ctl_setint(L, "stream", f->hdr.aux);
    if (len <= FOLLOW_DATA) {
      lua_pushlstring(L, (const char *)plush_frame_payload(f) + off, len);
      lua_setfield(L, -2, "data");
    } else {
      ctl_setint(L, "size", (lua_Integer)len);
    }
  }
  if (plush_encode(L, -1, &b, "follow", err, sizeof err) == 0) {
    h.len = (uint32_t)b.len;
    if ((ev = plush_frame_new(&h)) != NULL && b.len)
      memcpy(plush_frame_payload(ev), b.data, b.len);
  } else {
    plush_error("cannot encode a follow event: %s", err);
  }
  plush_buf_free(&b);
  lua_pop(L, 1);
  return ev;
}

/* Where a request's own payload starts: after its scheduling options. */
static size_t reqstart(plush_ctl *c, plush_frame *f) {
  size_t used = 0;
  char err[120];
  int top = lua_gettop(c->L);
  if (!(f->hdr.flags & PLUSH_F_OPTS)) return 0;
  if (plush_decode(c->L, plush_frame_payload(f), f->hdr.len, &used, err,
                   sizeof err) < 0)
    used = 0;
  lua_settop(c->L, top);
  return used;
}

static void tell(plush_ctl *c, uint32_t owner, const char *what,
                 plush_frame *f) {
  plush_frame *ev = NULL;
  size_t i = 0, off = 0;
  uint64_t k;
  void *v;
  int first = 1;
  while (plush_map_next(&c->clients, &i, &k, &v)) {
    peer *q = v;
    plush_frame *one;
    if (!q->following || q->id == owner || q->conn == NULL) continue;
    if (q->follows != PLUSH_ANY && q->follows != owner) continue;
    if (ctl_park_behind(c, q)) {
      q->follow_dropped++;
      continue;
    }
    if (first) {
      first = 0;
      if (f != NULL && f->hdr.type == PLUSH_T_REQ) off = reqstart(c, f);
    }
    if (q->follow_dropped > 0) { /* this one says how many it lost */
      if ((one = event(c, owner, what, f, off, q->follow_dropped)) == NULL)
        continue;
      q->follow_dropped = 0;
    } else {
      if (ev == NULL && (ev = event(c, owner, what, f, off, 0)) == NULL)
        return;
      one = plush_frame_ref(ev);
    }
    plush_conn_write_frame(q->conn, one);
    plush_frame_unref(one);
  }
  if (ev != NULL) plush_frame_unref(ev);
}

void ctl_follow(plush_ctl *c, uint32_t owner, plush_frame *f) {
  const char *what;
  if (c->nfollow <= 0) return;
  switch (f->hdr.type) {
  case PLUSH_T_REQ: what = "request"; break;
  case PLUSH_T_OUTPUT: what = "output"; break;
  case PLUSH_T_REPLY: what = "reply"; break;
  default: return;
  }
  tell(c, owner, what, f);
}

void ctl_follow_gone(plush_ctl *c, peer *p) {
  if (p->following) {
    p->following = 0;
    c->nfollow--;
  }
  if (c->nfollow > 0) tell(c, p->id, "left", NULL);
}
