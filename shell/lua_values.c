/*
** lua_values.c — plush.core's values: frames that arrive become event
** tables (plush_lua_pushevent, for conn:poll in lua_core.c), requests
** become frames (plush_lua_encodeframe, for conn:submit), and the wire
** codec on strings (core.encode, core.decode, core.slice), and the
** joining of a map's chunks (core.table, core.append).
*/
#include "lua_values.h"

#include <string.h>

#include "array.h"
#include "codec.h"
#include "lua_mem.h"
#include "mem.h"
#include "plush.h"

/*
** Pushes the frame's decoded payload; when it does not decode, pushes an
** error table in its place and returns 0, so that a reply is never lost.
*/
static int pushpayload(lua_State *L, plush_frame *f, const char *what) {
  char err[200];
  plush_lua_mem_room(L, f->hdr.len);
  if (plush_decode_frame(L, f, err, sizeof err) == 0) /* read once */
    return 1;
  lua_createtable(L, 0, 3);
  plush_lua_setstr(L, "kind", "RemoteError");
  lua_pushfstring(L, "undecodable %s: %s", what, err);
  lua_setfield(L, -2, "message");
  if (f->hdr.engine != PLUSH_ANY) plush_lua_setint(L, "engine", f->hdr.engine);
  return 0;
}

static const char *statusname(unsigned s) {
  static const char *const names[] = {"ok", "error", "engine", "timeout",
                                      "badreq"};
  return s < sizeof names / sizeof names[0] ? names[s] : "error";
}

int plush_lua_pushevent(lua_State *L, plush_frame *f) {
  const plush_hdr *h = &f->hdr;
  int ok;
  switch (h->type) {
  case PLUSH_T_REPLY:
  case PLUSH_T_CTRL_REPLY:
    lua_createtable(L, 0, 6); /* kind id engine attempts value status */
    plush_lua_setstr(L, "kind", h->type == PLUSH_T_REPLY ? "reply" : "ctrl");
    plush_lua_setint(L, "id", (lua_Integer)h->id);
    if (h->type == PLUSH_T_REPLY && h->engine != PLUSH_ANY)
      plush_lua_setint(L, "engine", h->engine);
    if (h->type == PLUSH_T_REPLY && h->aux > 0)
      plush_lua_setint(L, "attempts", h->aux); /* starts of the task */
    ok = pushpayload(L, f, "reply");
    lua_setfield(L, -2, "value");
    plush_lua_setstr(L, "status", ok ? statusname(h->status) : "error");
    return 1;
  case PLUSH_T_OUTPUT:
    lua_createtable(L, 0, 5);
    plush_lua_setstr(L, "kind", "output");
    plush_lua_setint(L, "id", (lua_Integer)h->id);
    if (h->engine != PLUSH_ANY) plush_lua_setint(L, "engine", h->engine);
    plush_lua_setint(L, "stream", h->aux);
    lua_pushlstring(L, plush_frame_payload(f), h->len);
    lua_setfield(L, -2, "text");
    return 1;
  case PLUSH_T_EVENT:
    lua_createtable(L, 0, 2);
    plush_lua_setstr(L, "kind", "event");
    if (!pushpayload(L, f, "event")) plush_lua_setstr(L, "event", "error");
    lua_setfield(L, -2, "value");
    return 1;
  default:
    return 0;
  }
}

/*
** Encodes the value at idx straight into the allocation of a frame: the
** buffer starts with room for the plush_frame struct and its packed
** header, so a 100 MB request is encoded once and never copied after
** (its size field says how much plush_frame_unref gives back: the buffer's
** capacity). The same frame then goes to every target, referenced by each
** write. nargs >= 0: the value at idx is a function, the request is its
** apply to the nargs values from a0 on (plush_encode_apply).
*/
plush_frame *plush_lua_encodeframe(lua_State *L, int idx, const char *root,
                                   uint8_t type, int optsidx, int a0, int nargs) {
  plush_buf b = PLUSH_BUF_INIT;
  plush_frame *f;
  char err[256];
  size_t len, cap;
  if (plush_buf_reserve(&b, PLUSH_FRAME_PREFIX) < 0) luaL_error(L, "out of memory");
  b.len = PLUSH_FRAME_PREFIX;
  b.segmin = PLUSH_MEM_BIG; /* big strings are sent from where they are */
  if ((optsidx && plush_encode(L, optsidx, &b, "options", err,
                               sizeof err) < 0) ||
      (nargs == PLUSH_LUA_EXEC
           ? plush_encode_exec(L, idx, a0, lua_toboolean(L, a0 + 1), &b, root, err, sizeof err)
       : nargs < 0 ? plush_encode(L, idx, &b, root, err, sizeof err)
                   : plush_encode_apply(L, idx, a0, nargs, &b, root, err, sizeof err)) < 0) {
    plush_buf_free(&b);
    luaL_error(L, "%s", err);
  }
  if (plush_buf_total(&b) - PLUSH_FRAME_PREFIX > PLUSH_DEFAULT_MAX_FRAME) {
    len = plush_buf_total(&b) - PLUSH_FRAME_PREFIX;
    plush_buf_free(&b);
    luaL_error(L, "%s too large: %zu bytes (limit %zu)", root, len,
               (size_t)PLUSH_DEFAULT_MAX_FRAME);
  }
  cap = b.cap;
  f = (plush_frame *)plush_buf_steal(&b, &len);
  /* give back doubling slack; a small frame (most requests) keeps its few
  ** hundred bytes: it is freed when written, and a realloc per request
  ** cost more than the slack */
  if (cap > 4096 && cap - len > len / 8) {
    plush_frame *g = plush_mem_realloc(f, cap, len);
    if (g != NULL) f = g, cap = len;
  }
  atomic_init(&f->refs, 1);
  f->size = cap;
  if (plush_frame_take_segs(f, &b, PLUSH_FRAME_PREFIX) < 0) {
    plush_buf_free(&b); /* the segments' pins */
    plush_mem_free(f, cap);
    luaL_error(L, "out of memory");
  }
  memset(&f->hdr, 0, sizeof f->hdr);
  f->hdr.type = type;
  f->hdr.len = (uint32_t)(len - PLUSH_FRAME_PREFIX + plush_frame_segbytes(f));
  plush_frame_repack(f);
  return f;
}

/* ---- an OK reply as plain values ------------------------------- */

const char *const plush_lua_replykeys[4] = {"r", "started", "completed", "tostring"};

int plush_lua_addreply(lua_State *L, plush_frame *f, lua_Integer *n) {
  const plush_hdr *h = &f->hdr;
  int list = lua_gettop(L), i, t, ok;
  if (h->type != PLUSH_T_REPLY || h->status != PLUSH_S_OK || h->len > 4096 ||
      !plush_decode_fields(L, plush_frame_payload(f), h->len, plush_lua_replykeys, 4))
    return 0;
  t = lua_type(L, list + 1);
  ok = t == LUA_TNIL || t == LUA_TTABLE; /* r: the packed values */
  for (i = 2; ok && i <= 4; i++) /* false marks an absent field: not taken */
    ok = lua_type(L, list + i) != LUA_TBOOLEAN || lua_toboolean(L, list + i);
  if (!ok) {
    lua_settop(L, list);
    return 0;
  }
  lua_pushinteger(L, (lua_Integer)h->id);
  lua_rawseti(L, list, ++*n);
  if (h->engine != PLUSH_ANY) lua_pushinteger(L, h->engine);
  else lua_pushboolean(L, 0);
  lua_rawseti(L, list, ++*n);
  if (h->aux > 0) lua_pushinteger(L, h->aux); /* starts of the task */
  else lua_pushboolean(L, 0);
  lua_rawseti(L, list, ++*n);
  for (i = 1; i <= 4; i++) {
    if (lua_isnil(L, list + i)) lua_pushboolean(L, 0);
    else lua_pushvalue(L, list + i);
    lua_rawseti(L, list, ++*n);
  }
  lua_settop(L, list);
  return 1;
}

/* ---- map chunks decoded in place -------------------------------- */

/*
** conn:sink(id, t, off, m): the OK reply of task id, when its r is a
** packed table of m numbers or nils, is decoded straight into t[off+1 ..
** off+m] (plush_decode_into) and its event's value.r is t itself; any
** other reply decodes as usual. Kept in the conn's uservalue until the
** task's reply (of any status) comes.
*/
int plush_lua_sink(lua_State *L) {
  lua_Integer id = luaL_checkinteger(L, 2), off = luaL_checkinteger(L, 4),
              m = luaL_checkinteger(L, 5);
  luaL_checktype(L, 1, LUA_TUSERDATA);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_argcheck(L, off >= 0, 4, "a count >= 0");
  luaL_argcheck(L, m >= 0 && m <= LUA_MAXINTEGER - off, 5, "a count >= 0");
  if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    if (!lua_setiuservalue(L, 1, 1)) return luaL_argerror(L, 1, "conn expected");
  }
  lua_createtable(L, 3, 0);
  lua_pushvalue(L, 3);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, off);
  lua_rawseti(L, -2, 2);
  lua_pushinteger(L, m);
  lua_rawseti(L, -2, 3);
  lua_rawseti(L, -2, id);
  return 0;
}

int plush_lua_pushevent_sunk(lua_State *L, int sinks, plush_frame *f) {
  const plush_hdr *h = &f->hdr;
  lua_Integer off, m;
  int e;
  if (h->type != PLUSH_T_REPLY) return plush_lua_pushevent(L, f);
  if (lua_rawgeti(L, sinks, (lua_Integer)h->id) != LUA_TTABLE) {
    lua_pop(L, 1);
    return plush_lua_pushevent(L, f);
  }
  e = lua_gettop(L);
  lua_pushnil(L);
  lua_rawseti(L, sinks, (lua_Integer)h->id);
  lua_rawgeti(L, e, 2);
  lua_rawgeti(L, e, 3);
  off = lua_tointeger(L, -2), m = lua_tointeger(L, -1);
  lua_settop(L, e);
  lua_rawgeti(L, e, 1); /* t, at e + 1 */
  if (h->status != PLUSH_S_OK || !lua_istable(L, -1) ||
      !plush_decode_into(L, plush_frame_payload(f), h->len, e + 1, off, m)) {
    lua_settop(L, e - 1);
    return plush_lua_pushevent(L, f);
  }
  lua_createtable(L, 0, 6); /* kind id engine attempts value status */
  plush_lua_setstr(L, "kind", "reply");
  plush_lua_setint(L, "id", (lua_Integer)h->id);
  if (h->engine != PLUSH_ANY) plush_lua_setint(L, "engine", h->engine);
  if (h->aux > 0) plush_lua_setint(L, "attempts", h->aux);
  lua_rotate(L, -2, 1);
  lua_setfield(L, -2, "value");
  plush_lua_setstr(L, "status", "ok");
  lua_replace(L, e);
  lua_settop(L, e);
  return 1;
}

static int l_encode(lua_State *L) {
  const char *root = luaL_optstring(L, 2, "value");
  plush_buf b = PLUSH_BUF_INIT;
  char err[256];
  luaL_checkany(L, 1);
  if (plush_encode(L, 1, &b, root, err, sizeof err) < 0) {
    plush_buf_free(&b);
    return luaL_error(L, "%s", err);
  }
  lua_pushlstring(L, b.data ? b.data : "", b.len);
  plush_buf_free(&b);
  return 1;
}

static int l_decode(lua_State *L) {
  size_t len, used = 0;
  const char *s = luaL_checklstring(L, 1, &len);
  char err[256];
  if (plush_decode(L, s, len, &used, err, sizeof err) < 0)
    return luaL_error(L, "%s", err);
  if (used != len)
    return luaL_error(L, "cannot decode: %d trailing bytes", (int)(len - used));
  return 1;
}

/* core.slice(t, i, j): t[i..j] for the codec to send as an array, with
** no copy into a table of its own (plush_push_slice). */
static int l_slice(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  plush_push_slice(L, 1, luaL_checkinteger(L, 2), luaL_checkinteger(L, 3), 0);
  return 1;
}

/* core.table(narr): a table with room for narr items in its array part
** (the joined results of a map, filled by core.append). */
static int l_table(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= (1 << 28), 1, "a size from 0 to 2^28");
  lua_createtable(L, (int)n, 0);
  return 1;
}

/* core.append(t, n, s, m): t[n+1..n+m] = s[1..m], raw (plush_seq_append);
** returns n + m. */
static int l_append(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 2), m = luaL_checkinteger(L, 4);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_argcheck(L, n >= 0, 2, "a count >= 0");
  luaL_argcheck(L, m >= 0 && m <= LUA_MAXINTEGER - n, 4, "a count >= 0");
  plush_seq_append(L, 1, n, 3, m);
  lua_pushinteger(L, n + m);
  return 1;
}

/* core.decode_into(s, t, off, m) -> the reply, or nil: plush_decode_into
** on a string (what conn:sink does to a reply; for tests). */
static int l_decode_into(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_Integer off = luaL_checkinteger(L, 3), m = luaL_checkinteger(L, 4);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_argcheck(L, off >= 0, 3, "a count >= 0");
  luaL_argcheck(L, m >= 0 && m <= LUA_MAXINTEGER - off, 4, "a count >= 0");
  if (!plush_decode_into(L, s, len, 2, off, m)) lua_pushnil(L);
  return 1;
}

const luaL_Reg plush_codec_funcs[] = {
    {"encode", l_encode}, {"decode", l_decode}, {"slice", l_slice},
    {"table", l_table}, {"append", l_append},
    {"decode_into", l_decode_into},
    {"array_open", plush_array_open}, /* plush.array: lua/plush/array.lua */
    {NULL, NULL}};
