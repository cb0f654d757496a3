/*
** ctl_feed.c — the task feed the dashboard reads (`plush dashboard`,
** share/doc/dashboard.md): control op `feed`.
**
** Every finished task (its reply stored by ctl_store) is one fixed-size
** event in a ring: id, engine, status, reply bytes, and the controller's
** submitted / started / completed times. Nothing is kept until a client
** first asks (a cluster without a dashboard pays one NULL test per task);
** then the ring (CTL_FEED_CAP events) lives until the controller stops. A
** reader asks with `since` (the last seq it saw) and gets what came after,
** at most CTL_FEED_MAX (4,096) a call, columnar (one array per field, so a big
** answer is a few arrays, not thousands of tables); events the ring
** overwrote before they were read are counted in `lost`. The answer also
** carries each client's tasks in flight, and what each engine runs (with
** a label for a balanced task: the first line of an `exec`'s code,
** else the request's op),
** all read from the controller's own tables: no store query.
*/
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "plush.h"

#define CTL_FEED_CAP 65536
#define CTL_FEED_MAX 4096 /* events a call: keeps each call short */

typedef struct feed_ev {
  uint64_t id;
  double submitted, started, completed;
  uint32_t engine;
  uint32_t bytes;
  int status;
} feed_ev;

struct ctl_feed {
  feed_ev ring[CTL_FEED_CAP];
  uint64_t seq; /* events recorded so far; event k is ring[k % CAP] */
};

/* ---- recording --------------------------------------------------- */

void ctl_feed_task(plush_ctl *c, plush_frame *f, task *t) {
  feed_ev *e;
  if (c->feed == NULL) return;
  e = &c->feed->ring[c->feed->seq++ % CTL_FEED_CAP];
  e->id = f->hdr.id;
  e->engine = f->hdr.engine;
  e->status = f->hdr.status;
  e->bytes = f->hdr.len;
  e->submitted = t ? t->submitted : 0;
  e->started = t ? t->started : 0;
  e->completed = ctl_clock();
}

void ctl_feed_free(plush_ctl *c) {
  free(c->feed);
  c->feed = NULL;
}

/* ---- a request's label: a MessagePack peek, no decoding ----------- */

typedef struct peek {
  const unsigned char *p, *end;
} peek;

static int need(peek *k, size_t n) { return (size_t)(k->end - k->p) >= n; }

static uint64_t be(const unsigned char *p, int n) {
  uint64_t v = 0;
  while (n--) v = v << 8 | *p++;
  return v;
}

/* A string at k: its bytes and length (1), else 0 and k unmoved. */
static int str(peek *k, const char **s, size_t *n) {
  unsigned char b;
  size_t len, hl;
  if (!need(k, 1)) return 0;
  b = k->p[0];
  if ((b & 0xe0) == 0xa0) len = b & 0x1f, hl = 1;
  else if (b == 0xd9 && need(k, 2)) len = k->p[1], hl = 2;
  else if (b == 0xda && need(k, 3)) len = be(k->p + 1, 2), hl = 3;
  else if (b == 0xdb && need(k, 5)) len = be(k->p + 1, 4), hl = 5;
  else return 0;
  if (!need(k, hl + len)) return 0;
  *s = (const char *)k->p + hl;
  *n = len;
  k->p += hl + len;
  return 1;
}

/* Skips one value (ext framing is standard: its length covers it);
** containers to depth 4 and 10,000 items at most. 0 when it cannot. */
static int skip(peek *k, int depth) {
  const char *s;
  size_t n, items = 0, hl = 1, i;
  unsigned char b;
  if (str(k, &s, &n)) return 1;
  if (!need(k, 1)) return 0;
  b = k->p[0];
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) n = 1;
  else if (b == 0xcc || b == 0xd0) n = 2;
  else if (b == 0xcd || b == 0xd1 || b == 0xd4) n = 3;
  else if (b == 0xd5) n = 4;
  else if (b == 0xca || b == 0xce || b == 0xd2) n = 5;
  else if (b == 0xd6) n = 6;
  else if (b == 0xcb || b == 0xcf || b == 0xd3) n = 9;
  else if (b == 0xd7) n = 10;
  else if (b == 0xd8) n = 18;
  else if (b == 0xc4 && need(k, 2)) n = 2 + (size_t)k->p[1];
  else if (b == 0xc5 && need(k, 3)) n = 3 + (size_t)be(k->p + 1, 2);
  else if (b == 0xc6 && need(k, 5)) n = 5 + (size_t)be(k->p + 1, 4);
  else if (b == 0xc7 && need(k, 3)) n = 3 + (size_t)k->p[1];
  else if (b == 0xc8 && need(k, 4)) n = 4 + (size_t)be(k->p + 1, 2);
  else if (b == 0xc9 && need(k, 6)) n = 6 + (size_t)be(k->p + 1, 4);
  else if ((b & 0xf0) == 0x90) items = b & 0x0f, n = 0;
  else if ((b & 0xf0) == 0x80) items = 2 * (size_t)(b & 0x0f), n = 0;
  else if (b == 0xdc && need(k, 3)) items = be(k->p + 1, 2), hl = 3, n = 0;
  else if (b == 0xde && need(k, 3)) items = 2 * be(k->p + 1, 2), hl = 3, n = 0;
  else return 0;
  if (n > 0) {
    if (!need(k, n)) return 0;
    k->p += n;
    return 1;
  }
  if (depth >= 4 || items > 10000) return 0;
  k->p += hl;
  for (i = 0; i < items; i++)
    if (!skip(k, depth + 1)) return 0;
  return 1;
}

/*
** Pushes a label for the request payload data[0..len): the first line of
** an exec's code (at most 80 bytes), else the op, else "task". The
** top-level map's fields are walked, not decoded (nothing is built, no
** function loaded); a value too deep or too big to skip ends the walk.
*/
static void pushlabel(lua_State *L, const unsigned char *data, size_t len) {
  peek k = {data, data + len};
  const char *op = NULL, *code = NULL, *key, *v;
  size_t opn = 0, coden = 0, n, kn, vn, i;
  if (len == 0) goto out;
  if ((data[0] & 0xf0) == 0x80) n = data[0] & 0x0f, k.p += 1;
  else if (data[0] == 0xde && need(&k, 3)) n = be(data + 1, 2), k.p += 3;
  else goto out;
  for (i = 0; i < n; i++) {
    if (!str(&k, &key, &kn)) break;
    if (str(&k, &v, &vn)) {
      if (kn == 2 && memcmp(key, "op", 2) == 0) op = v, opn = vn;
      if (kn == 4 && memcmp(key, "code", 4) == 0) code = v, coden = vn;
    } else if (!skip(&k, 0)) {
      break;
    }
  }
  if (code && opn == 4 && memcmp(op, "exec", 4) == 0) {
    for (n = 0; n < coden && n < 80 && code[n] != '\n'; n++) {}
    lua_pushlstring(L, code, n);
    return;
  }
  if (op) {
    lua_pushlstring(L, op, opn < 40 ? opn : 40);
    return;
  }
out:
  lua_pushliteral(L, "task");
}

/* ---- the op ------------------------------------------------------ */

static lua_Integer intfield(lua_State *L, int idx, const char *k) {
  lua_Integer v;
  lua_getfield(L, idx, k);
  v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* The events after seq `since`: fields as parallel arrays. */
static void pushevents(plush_ctl *c, lua_State *L, uint64_t since) {
  struct ctl_feed *d = c->feed;
  uint64_t first = d->seq > CTL_FEED_CAP ? d->seq - CTL_FEED_CAP : 0, k;
  static const char *cols[] = {"id", "engine", "status", "bytes",
                               "submitted", "started", "completed"};
  int base, col, n;
  if (since > d->seq) since = d->seq; /* a reader from an older controller */
  lua_pushinteger(L, (lua_Integer)(since < first ? first - since : 0));
  lua_setfield(L, -2, "lost");
  if (since < first) since = first;
  /* the oldest first: a reader behind by more than a call's worth gets
  ** the rest on its next calls (none skipped, none counted twice) */
  n = d->seq - since > CTL_FEED_MAX ? CTL_FEED_MAX : (int)(d->seq - since);
  lua_pushinteger(L, (lua_Integer)(since + (uint64_t)n));
  lua_setfield(L, -2, "seq");
  base = lua_gettop(L);
  for (col = 0; col < 7; col++) lua_createtable(L, n, 0);
  for (k = since; k < since + (uint64_t)n; k++) {
    const feed_ev *e = &d->ring[k % CTL_FEED_CAP];
    lua_Integer i = (lua_Integer)(k - since) + 1;
    lua_pushinteger(L, (lua_Integer)e->id);
    lua_rawseti(L, base + 1, i);
    lua_pushinteger(L, e->engine == PLUSH_ANY ? 0 : (lua_Integer)e->engine);
    lua_rawseti(L, base + 2, i);
    lua_pushinteger(L, e->status);
    lua_rawseti(L, base + 3, i);
    lua_pushinteger(L, e->bytes);
    lua_rawseti(L, base + 4, i);
    lua_pushnumber(L, e->submitted);
    lua_rawseti(L, base + 5, i);
    lua_pushnumber(L, e->started);
    lua_rawseti(L, base + 6, i);
    lua_pushnumber(L, e->completed);
    lua_rawseti(L, base + 7, i);
  }
  for (col = 6; col >= 0; col--) lua_setfield(L, base, cols[col]);
}

/* {id, addr, pending}: every client, with its tasks not finished. */
static void pushclients(plush_ctl *c, lua_State *L) {
  size_t i = 0, j;
  uint64_t key;
  void *v;
  lua_Integer n = 0;
  plush_map pending;
  plush_map_init(&pending);
  while (plush_map_next(&c->tasks, &i, &key, &v)) {
    uint32_t cl = (uint32_t)(key >> 32);
    uintptr_t was = (uintptr_t)plush_map_get(&pending, cl);
    plush_map_put(&pending, cl, (void *)(was + 1));
  }
  lua_createtable(L, (int)c->clients.count, 0);
  j = 0;
  while (plush_map_next(&c->clients, &j, &key, &v)) {
    peer *p = v;
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, p->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, p->conn ? plush_conn_peer(p->conn) : "");
    lua_setfield(L, -2, "addr");
    lua_pushinteger(L, (lua_Integer)(uintptr_t)plush_map_get(&pending, p->id));
    lua_setfield(L, -2, "pending");
    lua_rawseti(L, -2, ++n);
  }
  plush_map_free(&pending);
}

/* {[engine id] = {id, started, label}}: what each engine runs now. */
static void pushrunning(plush_ctl *c, lua_State *L) {
  size_t i = 0;
  uint64_t key;
  void *v;
  lua_newtable(L);
  while (plush_map_next(&c->engines, &i, &key, &v)) {
    peer *e = v;
    task *t = e->running ? plush_map_get(&c->tasks, e->running) : NULL;
    if (t == NULL) continue;
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)t->id);
    lua_setfield(L, -2, "id");
    lua_pushnumber(L, t->started > 0 ? t->started : t->submitted);
    lua_setfield(L, -2, "started");
    if (t->req) { /* kept for balanced tasks only */
      pushlabel(L, (const unsigned char *)plush_frame_payload(t->req) + t->off,
                t->req->hdr.len - t->off);
      lua_setfield(L, -2, "label");
    }
    lua_rawseti(L, -2, e->id);
  }
}

/* Control op `feed` {since = seq}: see the top of the file. */
void ctl_feed_op(plush_ctl *c) {
  lua_State *L = c->L;
  lua_Integer since = intfield(L, -1, "since");
  if (c->feed == NULL && (c->feed = calloc(1, sizeof *c->feed)) == NULL)
    luaL_error(L, "out of memory");
  lua_createtable(L, 0, 8);
  pushevents(c, L, since > 0 ? (uint64_t)since : 0);
  pushclients(c, L);
  lua_setfield(L, -2, "clients");
  pushrunning(c, L);
  lua_setfield(L, -2, "running");
  lua_pushnumber(L, ctl_clock());
  lua_setfield(L, -2, "now");
}
