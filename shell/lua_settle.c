/*
** lua_settle.c — an OK reply that fires its task's Deferred in conn:poll.
**
** A reply's way through Lua (lua/plush/client.lua: dispatch_all,
** _reply_ok, take; deferred.lua: _callback_packed) does, for most tasks,
** nothing but set fields: the Deferred leaves the client's pending table,
** its metadata gets the reply's times and engine, and it fires with the
** packed values (the shared NONE for none). When the Deferred is such a
** one, conn:poll sets those fields itself, the same values in the same
** places, and hands Lua nothing for the reply: the largest part of a
** balanced no-op task's CPU in the client was that way through Lua.
**
** A Deferred is such a one when its metatable is the Deferred class and
** it has none of what makes Lua do more: callbacks (chain), unfinished
** or muted output (_partial, _muted), a whole-table request (_whole), a
** request to many engines (_fanout), nor is it firing or fired (running,
** fired). Only replies before any other event of the same poll are
** settled here: an output event must reach Lua before its task's reply,
** and Lua sees the rest in the order they came.
*/
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "lua_sys.h"
#include "lua_values.h"

static const char *const names[PLUSH_SETTLE_KEYS] = {
    "_partial", "_muted", "_whole",    "_fanout",  "chain",    "running",
    "fired",    "metadata", "engine",  "started",  "completed", "tostring",
    "received", "attempts", "ok",      "res",      "n"};

enum {
  K_PARTIAL, K_MUTED, K_WHOLE, K_FANOUT, K_CHAIN, K_RUNNING, K_FIRED,
  K_METADATA, K_ENGINE, K_STARTED, K_COMPLETED, K_TOSTRING, K_RECEIVED,
  K_ATTEMPTS, K_OK, K_RES, K_N
};

void plush_lua_settle_keys(lua_State *L) {
  for (int k = 0; k < PLUSH_SETTLE_KEYS; k++) lua_pushstring(L, names[k]);
}

/* The key k, from the upvalues of conn:poll (after its metatable's). */
#define KEY(k) lua_upvalueindex(2 + (k))

/* t[key k], pushed; its type. */
static int get(lua_State *L, int t, int k) {
  lua_pushvalue(L, KEY(k));
  return lua_rawget(L, t);
}

/* t[key k] = the value at index v. */
static void set(lua_State *L, int t, int k, int v) {
  lua_pushvalue(L, KEY(k));
  lua_pushvalue(L, v);
  lua_rawset(L, t);
}

/* t[key k] = true. */
static void settrue(lua_State *L, int t, int k) {
  lua_pushvalue(L, KEY(k));
  lua_pushboolean(L, 1);
  lua_rawset(L, t);
}

static double be_double(const uint8_t *p) {
  uint64_t u = 0;
  double d;
  for (int i = 0; i < 8; i++) u = u << 8 | p[i];
  memcpy(&d, &u, 8);
  return d;
}

/*
** The reply of a task that returned nothing, as an engine writes it
** (engines/engine_reply.c's fast path): {r = {n = 0}, started = t0,
** completed = t1}, byte for byte. Pushes NONE, t0, t1 and nil (r,
** started, completed, tostring) and returns 1; else 0, nothing pushed.
** No table made for an r that becomes NONE anyway.
*/
static int nothing(lua_State *L, const uint8_t *p, size_t len, int none) {
  static const char head[] = "\x83\xa1r\x81\xa1n\x00\xa7started\xcb";
  static const char mid[] = "\xa9" "completed\xcb";
  const size_t nh = sizeof head - 1, nm = sizeof mid - 1;
  if (len != nh + 8 + nm + 8 || memcmp(p, head, nh) != 0 ||
      memcmp(p + nh + 8, mid, nm) != 0)
    return 0;
  lua_pushvalue(L, none);
  lua_pushnumber(L, be_double(p + nh));
  lua_pushnumber(L, be_double(p + nh + 8 + nm));
  lua_pushnil(L);
  return 1;
}

int plush_lua_settle(lua_State *L, plush_frame *f, plush_settle *s) {
  const plush_hdr *h = &f->hdr;
  const uint8_t *p = (const uint8_t *)plush_frame_payload(f);
  int top = lua_gettop(L), d = top + 1, md = top + 2, r = top + 3, k;
  if (h->type != PLUSH_T_REPLY || h->status != PLUSH_S_OK || h->len > 4096)
    return 0;
  if (lua_rawgeti(L, s->pending, (lua_Integer)h->id) != LUA_TTABLE ||
      !lua_getmetatable(L, d) || !lua_rawequal(L, -1, s->meta))
    goto no;
  lua_pop(L, 1);
  for (k = K_PARTIAL; k <= K_FIRED; k++) {
    int t = get(L, d, k);
    lua_pop(L, 1);
    if (t != LUA_TNIL) goto no;
  }
  if (get(L, d, K_METADATA) != LUA_TTABLE) goto no;
  /* r, started, completed, tostring at r .. r + 3 */
  if (!nothing(L, p, h->len, s->none)) {
    if (!plush_decode_fields(L, (const char *)p, h->len, plush_lua_replykeys, 4)) goto no;
    if (lua_type(L, r) == LUA_TTABLE) { /* its count n, as _reply_ok makes it */
      lua_Integer n;
      if (get(L, r, K_N) == LUA_TNUMBER && lua_isinteger(L, -1)) {
        n = lua_tointeger(L, -1);
      } else {
        n = (lua_Integer)lua_rawlen(L, r);
        lua_pushvalue(L, KEY(K_N));
        lua_pushinteger(L, n);
        lua_rawset(L, r);
      }
      lua_pop(L, 1);
      if (n == 0) lua_pushvalue(L, s->none), lua_replace(L, r);
    } else if (lua_isnil(L, r)) {
      lua_pushvalue(L, s->none), lua_replace(L, r);
    } else {
      goto no;
    }
  }
  lua_pushnil(L);
  lua_rawseti(L, s->pending, (lua_Integer)h->id);
  lua_pushvalue(L, KEY(K_ENGINE));
  if (h->engine != PLUSH_ANY) lua_pushinteger(L, h->engine);
  else lua_pushnil(L);
  lua_rawset(L, md);
  set(L, md, K_STARTED, r + 1);
  set(L, md, K_COMPLETED, r + 2);
  set(L, md, K_TOSTRING, r + 3);
  if (!s->now) s->now = plush_lua_clock(CLOCK_REALTIME); /* core.time */
  lua_pushvalue(L, KEY(K_RECEIVED));
  lua_pushnumber(L, s->now);
  lua_rawset(L, md);
  lua_pushvalue(L, KEY(K_ATTEMPTS));
  if (h->aux > 0) lua_pushinteger(L, h->aux); /* starts of the task */
  else lua_pushnil(L);
  lua_rawset(L, d);
  settrue(L, d, K_FIRED);
  settrue(L, d, K_OK);
  set(L, d, K_RES, r);
  lua_settop(L, top);
  return 1;
no:
  lua_settop(L, top);
  return 0;
}
