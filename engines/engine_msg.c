/*
** engine_msg.c — messages between engines without MPI:
** engine.send(to, value [, tag]) and engine.recv([from [, tag [,
** timeout]]]) -> value, from, tag. See share/doc/models.md.
**
** A message is one MSG frame: the tag's encoding then the value's (aux
** says where the value starts), routed by the controller (core/ctl_msg.c)
** into the destination engine's mailbox: the I/O thread appends it under
** mu and wakes the Lua thread, whose recv takes the oldest message that
** matches from and tag; those that do not match stay, in order. Tags are
** compared by their encoding (so 1 and 1.0 are the same tag: integral
** floats travel as integers).
**
** recv waits on the engine's outc condition, which the I/O thread
** broadcasts for every message, and also for an INTERRUPT, a RESTART, a
** lost link and the engine's stop (engine_host.c): so the wait notices
** the interrupt hook and lets it raise (eng_msg_wait), as MPI's waits
** do (mpi_wait.c).
**
** Engines that send or recv learn which engines are up (a PEERS frame
** once per link, then each change): a send to an engine that is not up,
** or a recv from one that died, raises an EngineError at once.
*/
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "codec.h"
#include "engine_int.h"
#include "log.h"
#include "plush.h"

static int errmeta; /* registry: the metatable of the errors raised here */

/* ---- errors ------------------------------------------------------ */

static int errtostring(lua_State *L) {
  lua_getfield(L, 1, "kind");
  lua_pushliteral(L, ": ");
  lua_getfield(L, 1, "message");
  lua_concat(L, 3);
  return 1;
}

/*
** Pushes the position of the user's call: engine.send & co are Lua
** functions of the "=engine" chunk calling C, so the first frame that is
** neither C nor that chunk.
*/
static void where(lua_State *L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0 ||
        strcmp(ar.source, "=engine") == 0)
      continue;
    lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
    return;
  }
  lua_pushliteral(L, "");
}

int eng_msg_error(lua_State *L, const char *fmt, ...) {
  va_list ap;
  where(L);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

int eng_msg_raise(lua_State *L, const char *kind, lua_Integer id,
                  const char *fmt, ...) {
  va_list ap;
  lua_createtable(L, 0, 3);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  where(L);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  lua_setfield(L, -2, "message");
  if (id >= 0) {
    lua_pushinteger(L, id);
    lua_setfield(L, -2, "engine");
  }
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &errmeta) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, errtostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &errmeta);
  }
  lua_setmetatable(L, -2);
  return lua_error(L);
}

lua_Integer eng_msg_id(lua_State *L, int i, const char *fn) {
  int isint;
  lua_Integer id = lua_tointegerx(L, i, &isint);
  if (!isint || id < 0 || id >= (lua_Integer)PLUSH_ANY)
    eng_msg_error(L, "%s: an engine id expected, got %s", fn,
                  lua_isinteger(L, i) || !isint ? luaL_typename(L, i) : "?");
  return id;
}

lua_Number eng_msg_timeout(lua_State *L, int i, const char *fn) {
  int isnum;
  lua_Number t = lua_tonumberx(L, i, &isnum);
  if (!isnum || !(t >= 0 && t < 1e9))
    eng_msg_error(L, "%s: a timeout is a number of seconds from 0, not %s",
                  fn, isnum ? "that" : luaL_typename(L, i));
  return t;
}

/* ---- waiting ----------------------------------------------------- */

static int nop(lua_State *L) {
  (void)L;
  return 0;
}

/*
** The interrupt hook (engine_lua.c) fires only at Lua events, never in a
** C function blocked on a condition. So the wait looks for it: when one
** is set, an empty function called under pcall gives it its event; it
** raises when the interrupt is for the running task, else clears itself
** and the wait goes on.
*/
#define SPIN 300e-6 /* seconds of yielding before sleeping (100 µs: the
                       round trip twice as often at ~90 µs, performance.md) */

int eng_msg_wait(lua_State *L, plush_engine *e, double deadline) {
  eng_mbox *m = &e->mbox;
  unsigned long seen = __atomic_load_n(&m->events, __ATOMIC_RELAXED);
  if (seen != m->spun && !atomic_load(&e->halting) && lua_gethook(L) == NULL) {
    /* A peer that answers within microseconds (a ping-pong) is met
    ** awake: yielding, the I/O thread gets the core, and no wake-up
    ** latency is paid. Once per state of the mailbox: then back to the
    ** caller, which looks again at everything a broadcast may have said
    ** meanwhile (a lost link, a stop), and sleeps on the condition. */
    double until = eng_now() + SPIN;
    m->spun = seen;
    uv_mutex_unlock(&e->mu);
    do sched_yield();
    while (__atomic_load_n(&m->events, __ATOMIC_RELAXED) == seen &&
           lua_gethook(L) == NULL && !atomic_load(&e->halting) &&
           eng_now() < until &&
           (deadline == 0 || eng_now() < deadline));
    uv_mutex_lock(&e->mu);
    return 0;
  }
  if (atomic_load(&e->halting)) {
    uv_mutex_unlock(&e->mu);
    lua_pushliteral(L, "interrupted");
    return 2;
  }
  if (lua_gethook(L) != NULL) {
    uv_mutex_unlock(&e->mu);
    lua_pushcfunction(L, nop);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) return 2;
    uv_mutex_lock(&e->mu);
    return 0;
  }
  if (deadline > 0) {
    double left = deadline - eng_now();
    if (left <= 0) return 1;
    uv_cond_timedwait(&e->outc, &e->mu, (uint64_t)(left * 1e9) + 1);
  } else {
    uv_cond_wait(&e->outc, &e->mu);
  }
  return 0;
}

/* ---- the I/O thread's side --------------------------------------- */

void eng_msg_in(plush_engine *e, plush_frame *f) {
  eng_mbox *m = &e->mbox;
  eng_mnode *n = NULL;
  int full, kept = 0;
  if (f->hdr.status != PLUSH_S_OK) { /* one of ours came back */
    uv_mutex_lock(&e->mu);
    if (f->hdr.id != 0 && f->hdr.id == atomic_load(&e->running)) {
      m->bounce_task = f->hdr.id;
      m->bounce_to = f->hdr.engine;
      m->bounce_status = f->hdr.status;
      m->bounced++;
      __atomic_add_fetch(&m->events, 1, __ATOMIC_RELAXED);
      kept = 1;
      uv_cond_broadcast(&e->outc);
    }
    uv_mutex_unlock(&e->mu);
    if (!kept)
      plush_warn("a message of task %llu to engine %u was not delivered "
                 "(the task has ended)", (unsigned long long)f->hdr.id,
                 f->hdr.engine);
    plush_frame_unref(f);
    return;
  }
  if (e->exiting || f->hdr.aux > f->hdr.len) {
    plush_frame_unref(f);
    return;
  }
  uv_mutex_lock(&e->mu);
  full = m->n > 0 && (m->n >= ENG_MBOX_MAX ||
                      m->bytes + f->hdr.len > ENG_MBOX_BYTES);
  if (!full && (n = malloc(sizeof *n)) == NULL) full = 1;
  if (!full) {
    n->f = f;
    n->next = NULL;
    if (m->tail) m->tail->next = n;
    else m->head = n;
    m->tail = n;
    m->n++;
    m->bytes += f->hdr.len;
    __atomic_add_fetch(&m->events, 1, __ATOMIC_RELAXED);
    uv_cond_broadcast(&e->outc);
  }
  uv_mutex_unlock(&e->mu);
  if (full) { /* back to its sender, whose next send or recv raises */
    plush_hdr h = {0, PLUSH_T_MSG, 0, PLUSH_S_ERROR, f->hdr.engine, f->hdr.id,
                   0};
    if (e->conn) plush_conn_write(e->conn, &h, NULL, 0);
    plush_frame_unref(f);
  }
}

void eng_msg_peers(plush_engine *e, plush_frame *f) {
  eng_mbox *m = &e->mbox;
  uint64_t id = f->hdr.engine;
  lua_State *L = e->cl;
  char err[200];
  if (f->hdr.aux == 0) {
    if (plush_decode(L, plush_frame_payload(f), f->hdr.len, NULL, err,
                     sizeof err) == 0) {
      lua_Integer i, n = 0, next = 0;
      if (lua_istable(L, -1)) {
        n = (lua_Integer)lua_rawlen(L, -1);
        lua_getfield(L, -1, "next");
        next = lua_tointeger(L, -1);
        lua_pop(L, 1);
      }
      if (next > 1 << 24) next = 1 << 24;
      uv_mutex_lock(&e->mu);
      plush_map_free(&m->peers);
      for (i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        if (lua_isinteger(L, -1))
          plush_map_put(&m->peers, (uint64_t)lua_tointeger(L, -1), m);
        lua_pop(L, 1);
      }
      /* the ids given before that are not up any more: died */
      for (i = 0; i < next; i++)
        if (plush_map_get(&m->peers, (uint64_t)i) == NULL)
          plush_map_put(&m->dead, (uint64_t)i, m);
      m->known = 1;
      m->known_gen = e->gen;
      __atomic_add_fetch(&m->events, 1, __ATOMIC_RELAXED);
      uv_cond_broadcast(&e->outc);
      uv_mutex_unlock(&e->mu);
      lua_pop(L, 1);
    } else {
      plush_warn("bad PEERS from the controller: %s", err);
    }
  } else {
    uv_mutex_lock(&e->mu);
    if (f->hdr.aux == 1) {
      plush_map_put(&m->peers, id, m);
      plush_map_del(&m->dead, id);
    } else {
      plush_map_del(&m->peers, id);
      plush_map_put(&m->dead, id, m);
    }
    __atomic_add_fetch(&m->events, 1, __ATOMIC_RELAXED);
    uv_cond_broadcast(&e->outc);
    uv_mutex_unlock(&e->mu);
  }
  plush_frame_unref(f);
}

void eng_msg_free(plush_engine *e) {
  eng_mbox *m = &e->mbox;
  while (m->head) {
    eng_mnode *n = m->head;
    m->head = n->next;
    plush_frame_unref(n->f);
    free(n);
  }
  m->tail = NULL;
  m->n = m->bytes = 0;
  plush_map_free(&m->peers);
  plush_map_free(&m->dead);
  plush_frame_unref(m->reply);
  m->reply = NULL;
  for (size_t i = 0; i < m->nleft; i++) free(m->left[i].space);
  free(m->left);
  m->left = NULL;
  m->nleft = 0;
  plush_buf_free(&m->sbuf);
  plush_buf_free(&m->tbuf);
}

/* ---- the Lua thread's side --------------------------------------- */

static int linkdown(lua_State *L) {
  return eng_msg_raise(L, "EngineError", -1,
                       "the link to the controller was lost");
}

/* mu held: a message of the running task came back: raises it. */
static void bounced(lua_State *L, plush_engine *e) {
  eng_mbox *m = &e->mbox;
  uint32_t to;
  int st;
  if (!m->bounced) return;
  m->bounced = 0;
  if (m->bounce_task != atomic_load(&e->running)) return;
  to = m->bounce_to;
  st = m->bounce_status;
  uv_mutex_unlock(&e->mu);
  if (st == PLUSH_S_ERROR)
    eng_msg_raise(L, "MailboxFull", to, "a message to engine %d was refused: "
                  "its mailbox is full (%d messages or %d MiB)", (int)to,
                  ENG_MBOX_MAX, (int)(ENG_MBOX_BYTES >> 20));
  eng_msg_raise(L, "EngineError", to, "a message to engine %d was not "
                "delivered: engine %d is gone", (int)to, (int)to);
}

/* The live engines are known for the task's link (asked once per link). */
static void knowpeers(lua_State *L, plush_engine *e) {
  eng_mbox *m = &e->mbox;
  plush_hdr h = {0, PLUSH_T_PEERS, 0, 0, atomic_load(&e->id), 0, 0};
  uint64_t gen;
  uv_mutex_lock(&e->mu);
  gen = e->gen;
  if (m->known && m->known_gen == gen) {
    uv_mutex_unlock(&e->mu);
    return;
  }
  uv_mutex_unlock(&e->mu);
  if (eng_sendframe(e, &h, NULL, 0) != 0) linkdown(L);
  uv_mutex_lock(&e->mu);
  while (!(m->known && m->known_gen == gen)) {
    if (e->gen != gen) {
      uv_mutex_unlock(&e->mu);
      linkdown(L);
    }
    if (eng_msg_wait(L, e, 0) == 2) lua_error(L);
  }
  uv_mutex_unlock(&e->mu);
}

/*
** Appends the tag at idx to b: a string, a boolean or a number (an
** integral float as the integer, so that 1 and 1.0 are one tag).
*/
static void tagenc(lua_State *L, int idx, plush_buf *b, const char *fn) {
  char err[200];
  int t = lua_type(L, idx);
  if (t == LUA_TNUMBER && !lua_isinteger(L, idx)) {
    lua_Number x = lua_tonumber(L, idx);
    lua_Integer i;
    if (x != x) eng_msg_error(L, "%s: a tag cannot be NaN", fn);
    if (lua_numbertointeger(x, &i) && (lua_Number)i == x) {
      lua_pushinteger(L, i);
      lua_replace(L, idx);
    }
  } else if (t != LUA_TSTRING && t != LUA_TBOOLEAN && t != LUA_TNUMBER) {
    eng_msg_error(L, "%s: a tag is a string, a number or a boolean, not a %s",
               fn, luaL_typename(L, idx));
  }
  if (plush_encode(L, idx, b, "tag", err, sizeof err) < 0)
    eng_msg_error(L, "%s: %s", fn, err);
}

static int l_send(lua_State *L) {
  plush_engine *e = eng_self(L);
  eng_mbox *m = &e->mbox;
  lua_Integer to = eng_msg_id(L, 1, "engine.send");
  size_t taglen = 0;
  char err[200];
  plush_hdr h;
  int r;
  if (lua_isnone(L, 2))
    eng_msg_error(L, "engine.send: a value to send expected");
  m->sbuf.len = 0;
  if (!lua_isnoneornil(L, 3)) tagenc(L, 3, &m->sbuf, "engine.send");
  taglen = m->sbuf.len;
  if (plush_encode(L, 2, &m->sbuf, "value", err, sizeof err) < 0)
    return eng_msg_error(L, "engine.send: %s", err);
  knowpeers(L, e);
  uv_mutex_lock(&e->mu);
  bounced(L, e);
  if (plush_map_get(&m->peers, (uint64_t)to) == NULL) {
    int died = plush_map_get(&m->dead, (uint64_t)to) != NULL;
    uv_mutex_unlock(&e->mu);
    return eng_msg_raise(L, "EngineError", to, "engine.send: engine %d %s",
                         (int)to, died ? "died" : "is not running");
  }
  uv_mutex_unlock(&e->mu);
  h = (plush_hdr){(uint32_t)m->sbuf.len, PLUSH_T_MSG, 0, 0, (uint32_t)to,
                  atomic_load(&e->running), (uint32_t)taglen};
  if ((r = eng_sendframe(e, &h, m->sbuf.data, m->sbuf.len)) == 1)
    return linkdown(L);
  if (r < 0) return eng_msg_error(L, "engine.send: not enough memory");
  if (m->sbuf.cap > ((size_t)1 << 20)) plush_buf_free(&m->sbuf);
  return 0;
}

/* mu held: takes the oldest message from `from` (< 0: any) with the tag
** encoded in want (NULL: any). */
static plush_frame *pick(eng_mbox *m, lua_Integer from, const plush_buf *want) {
  eng_mnode *n, *prev = NULL;
  for (n = m->head; n; prev = n, n = n->next) {
    plush_frame *f = n->f;
    if (from >= 0 && f->hdr.engine != (uint64_t)from) continue;
    if (want && (f->hdr.aux != want->len ||
                 memcmp(plush_frame_payload(f), want->data, want->len) != 0))
      continue;
    if (prev) prev->next = n->next;
    else m->head = n->next;
    if (m->tail == n) m->tail = prev;
    m->n--;
    m->bytes -= f->hdr.len;
    free(n);
    return f;
  }
  return NULL;
}

/* Pushes value, from, tag of message f, which it frees. */
static int deliver(lua_State *L, plush_frame *f) {
  const char *p = plush_frame_payload(f);
  size_t tl = f->hdr.aux;
  char err[200];
  int r = plush_decode(L, p + tl, f->hdr.len - tl, NULL, err, sizeof err);
  lua_Integer from = f->hdr.engine;
  if (r == 0) {
    lua_pushinteger(L, from);
    if (tl == 0) lua_pushnil(L);
    else if ((r = plush_decode(L, p, tl, NULL, err, sizeof err)) < 0)
      lua_pop(L, 2);
  }
  plush_frame_unref(f);
  if (r < 0) return eng_msg_error(L, "engine.recv: message from engine %d: %s",
                               (int)from, err);
  return 3;
}

static int l_recv(lua_State *L) {
  plush_engine *e = eng_self(L);
  eng_mbox *m = &e->mbox;
  lua_Integer from = -1;
  plush_buf *want = NULL;
  double deadline = 0;
  plush_frame *f;
  if (!lua_isnoneornil(L, 1)) from = eng_msg_id(L, 1, "engine.recv");
  if (!lua_isnoneornil(L, 2)) {
    m->tbuf.len = 0;
    tagenc(L, 2, &m->tbuf, "engine.recv");
    want = &m->tbuf;
  }
  if (!lua_isnoneornil(L, 3)) {
    lua_Number t = eng_msg_timeout(L, 3, "engine.recv");
    deadline = eng_now() + t;
    if (deadline <= 0) deadline = 1e-9;
  }
  if (from >= 0) knowpeers(L, e);
  uv_mutex_lock(&e->mu);
  for (;;) {
    int st;
    bounced(L, e);
    if ((f = pick(m, from, want)) != NULL) break;
    if (from >= 0 && m->known_gen == e->gen &&
        plush_map_get(&m->peers, (uint64_t)from) == NULL) {
      int died = plush_map_get(&m->dead, (uint64_t)from) != NULL;
      uv_mutex_unlock(&e->mu);
      return eng_msg_raise(L, "EngineError", from,
                           "engine.recv: engine %d %s", (int)from,
                           died ? "died" : "is not running");
    }
    if ((st = eng_msg_wait(L, e, deadline)) == 1) {
      uv_mutex_unlock(&e->mu);
      lua_pushnil(L);
      lua_pushliteral(L, "timeout");
      return 2;
    }
    if (st == 2) return lua_error(L);
  }
  uv_mutex_unlock(&e->mu);
  return deliver(L, f);
}

/*
** The Lua side of the models' API. The `engine` table travels (`return
** engine` works), so what it holds must be values the codec carries: the
** C functions sit in the registry and engine.send & co are Lua functions
** that look them up and tail-call them (so errors name the user's line).
*/
static const char api[] =
    "local engine = ...\n"
    "local reg = debug.getregistry\n"
    "local function c(name)\n"
    "  return function(...) return reg()[name](...) end\n"
    "end\n"
    "engine.send, engine.recv = c 'plush.send', c 'plush.recv'\n"
    "local ANY = {['plush.ANY'] = true}\n"
    "local types = {['nil'] = 1, boolean = 1, number = 1, string = 1,\n"
    "  table = 1, ['function'] = 1, integer = 1, float = 1}\n"
    "local function ptype(name)\n"
    "  if not types[name] then\n"
    "    error(('type: no type named %s'):format(tostring(name)), 2)\n"
    "  end\n"
    "  return {['plush.type'] = name}\n"
    "end\n"
    "local function space(name, durable)\n"
    "  return {name = name, durable = durable, ANY = ANY, type = ptype,\n"
    "    out = c 'plush.ts.out', take = c 'plush.ts.take',\n"
    "    read = c 'plush.ts.read', try_take = c 'plush.ts.try_take',\n"
    "    try_read = c 'plush.ts.try_read', count = c 'plush.ts.count'}\n"
    "end\n"
    "function engine.tuplespace(name, opts)\n"
    "  if type(name) == 'table' and opts == nil then name, opts = nil, name end\n"
    "  if name ~= nil and (type(name) ~= 'string' or #name < 1\n"
    "      or #name > 200) then\n"
    "    error('engine.tuplespace: a name is a string of 1 to 200 bytes', 2)\n"
    "  end\n"
    "  if opts ~= nil and type(opts) ~= 'table' then\n"
    "    error('engine.tuplespace: options are a table, not a ' .. type(opts), 2)\n"
    "  end\n"
    "  local durable = false\n"
    "  for k, v in pairs(opts or {}) do\n"
    "    if k ~= 'durable' then\n"
    "      error(('engine.tuplespace: unknown option \\'%s\\' (durable)'):format(\n"
    "        tostring(k)), 2)\n"
    "    elseif type(v) ~= 'boolean' then\n"
    "      error('engine.tuplespace: durable is true or false, not a ' .. type(v), 2)\n"
    "    end\n"
    "    durable = v\n"
    "  end\n"
    "  return space(name or 'default', durable or nil)\n"
    "end\n"
    "tuples = space 'default'\n";

void eng_msg_open(lua_State *L) {
  lua_pushcfunction(L, l_send);
  lua_setfield(L, LUA_REGISTRYINDEX, "plush.send");
  lua_pushcfunction(L, l_recv);
  lua_setfield(L, LUA_REGISTRYINDEX, "plush.recv");
  eng_runapi(L, api, sizeof api - 1);
}
