/*
** engine_reply.c — a task's REPLY payload, encoded into e->enc:
**   OK     {r = {n = k, ...}, started, completed}
**   ERROR  {kind = "RemoteError", message, traceback, chunk, line, engine,
**           started, completed, value?}
** (eng_encok and eng_encerr, from engine_ops.c's eng_serve), and first
** the OK reply of a task whose results are all scalars
** (nil, booleans, numbers, strings below the buffer's segment size),
** written straight into the reply buffer:
**   {r = {[i] = v_i (non-nil ones), n = k}, started = t0, completed = t1}
** as the codec (core/codec_enc.c) would write that table, without the two
** tables engine_ops.c's pack and eng_encok build for it and the codec's walk
** of them: most small tasks return nothing or a number, and those tables
** were a third of an engine's instructions per task and garbage for the
** collector. Anything else takes the general path (eng_encok, below).
*/
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "codec.h"
#include "codec_put.h"
#include "engine_int.h"
#include "plush.h"

#define MAXFAST 64 /* results the fast path takes; more go the general way */

/* A MessagePack map or string head: n in the fixed form up to `fix`. */
static size_t head(uint8_t *p, size_t n, uint8_t fixop, size_t fix, uint8_t op8) {
  if (n <= fix) return *p = (uint8_t)(fixop | n), 1;
  if (op8 && n <= 0xff) return p[0] = op8, p[1] = (uint8_t)n, 2;
  if (n <= 0xffff) return p[0] = (uint8_t)(op8 ? op8 + 1 : 0xde), store(p + 1, n, 2), 3;
  return p[0] = (uint8_t)(op8 ? op8 + 2 : 0xdf), store(p + 1, n, 4), 5;
}

static size_t dbl(uint8_t *p, double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  p[0] = 0xcb;
  store(p + 1, u, 8);
  return 9;
}

/*
** The n values from index first are the task's results: their OK reply,
** e->enc reset and filled, t->status OK. Returns 1, or 0 (e->enc left
** empty) when a value is not one the fast path takes, or out of memory:
** the general path then runs as before.
*/
int eng_reply_fast(lua_State *L, eng_task *t, int first, int n) {
  plush_buf *b = &t->e->enc;
  size_t room = 48, k = 0, len;
  uint8_t *p;
  if (n < 0 || n > MAXFAST) return 0;
  eng_enc_reset(t->e); /* sets b->segmin */
  for (int i = 0; i < n; i++) {
    switch (lua_type(L, first + i)) {
    case LUA_TNIL: continue;
    case LUA_TBOOLEAN: case LUA_TNUMBER: room += 9 + 9; break;
    case LUA_TSTRING:
      lua_tolstring(L, first + i, &len);
      if (len > (size_t)1 << 30 || (b->segmin && len >= b->segmin)) return 0;
      room += 9 + 5 + len;
      break;
    default: return 0;
    }
    k++;
  }
  if (plush_buf_reserve(b, room)) return 0;
  p = (uint8_t *)b->data + b->len;
  memcpy(p, "\x83\xa1r", 3), p += 3;
  p += head(p, k + 1, 0x80, 15, 0);
  for (int i = 0; i < n; i++) {
    int idx = first + i, ty = lua_type(L, idx);
    if (ty == LUA_TNIL) continue;
    p += intat(p, i + 1);
    if (ty == LUA_TBOOLEAN) {
      *p++ = lua_toboolean(L, idx) ? 0xc3 : 0xc2;
    } else if (ty == LUA_TNUMBER) {
      if (lua_isinteger(L, idx)) p += intat(p, lua_tointeger(L, idx));
      else p += dbl(p, (double)lua_tonumber(L, idx));
    } else { /* a string */
      const char *s = lua_tolstring(L, idx, &len);
      p += head(p, len, 0xa0, 31, 0xd9);
      memcpy(p, s, len), p += len;
    }
  }
  memcpy(p, "\xa1n", 2), p += 2;
  p += intat(p, n);
  memcpy(p, "\xa7started", 8), p += 8;
  p += dbl(p, t->started);
  memcpy(p, "\xa9" "completed", 10), p += 10;
  p += dbl(p, t->completed);
  b->len = (size_t)(p - (uint8_t *)b->data);
  t->status = PLUSH_S_OK;
  return 1;
}

/* ---- the general path -------------------------------------------- */

/*
** chunk and line from the message's "name:LINE: " prefix (first line
** only). A chunk name may hold colons ("C:\x.lua"), so the first colon
** followed by digits and a colon ends it.
*/
static void where(lua_State *L, int et, const char *msg) {
  const char *end = strchr(msg, '\n');
  for (const char *p = strchr(msg, ':'); p && (!end || p < end);
       p = strchr(p + 1, ':')) {
    const char *q = p + 1;
    lua_Integer line = 0;
    while (isdigit((unsigned char)*q) && line < 1000000000)
      line = line * 10 + (*q++ - '0');
    if (q == p + 1 || *q != ':' || p == msg) continue;
    lua_pushlstring(L, msg, (size_t)(p - msg));
    lua_setfield(L, et, "chunk");
    lua_pushinteger(L, line);
    lua_setfield(L, et, "line");
    return;
  }
}

static void stamp(lua_State *L, eng_task *t) {
  lua_pushnumber(L, t->started);
  lua_setfield(L, -2, "started");
  lua_pushnumber(L, t->completed);
  lua_setfield(L, -2, "completed");
}

/*
** The error table on top becomes the ERROR payload. An error value that
** cannot travel is dropped (its message still says what it was).
*/
void eng_encerr(lua_State *L, eng_task *t) {
  plush_buf *b = &t->e->enc;
  char err[256];
  int et = lua_gettop(L);
  lua_pushliteral(L, "RemoteError");
  lua_setfield(L, et, "kind");
  lua_pushinteger(L, (lua_Integer)atomic_load(&t->e->id));
  lua_setfield(L, et, "engine");
  stamp(L, t);
  if (lua_getfield(L, et, "message") == LUA_TSTRING)
    where(L, et, lua_tostring(L, -1));
  lua_pop(L, 1);
  t->status = PLUSH_S_ERROR;
  eng_enc_reset(t->e);
  if (plush_encode(L, et, b, "error", err, sizeof err) == 0) return;
  lua_pushnil(L);
  lua_setfield(L, et, "value");
  eng_enc_reset(t->e);
  if (plush_encode(L, et, b, "error", err, sizeof err) < 0)
    luaL_error(L, "%s", err);
}

/*
** An expression line's values (the shell added the `return`, auto =
** true) are for a person to look at, as lua.c prints them: one that
** cannot travel (io.write returns a file) is replaced in r by its
** tostring, and its index listed in the reply's `tostring`. Returns
** whether any was; the reply table is on top, r at index r.
*/
static int tostrings(lua_State *L, int r) {
  plush_buf scratch = PLUSH_BUF_INIT;
  char err[256];
  lua_Integer n, k = 0;
  lua_getfield(L, r, "n");
  n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_newtable(L);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, r, i);
    scratch.len = 0;
    if (plush_encode(L, -1, &scratch, "result", err, sizeof err) < 0) {
      luaL_tolstring(L, -1, NULL);
      lua_rawseti(L, r, i);
      lua_pushinteger(L, i);
      lua_rawseti(L, -3, ++k);
    }
    lua_pop(L, 1);
  }
  plush_buf_free(&scratch);
  if (k > 0) lua_setfield(L, -2, "tostring");
  else lua_pop(L, 1);
  return k > 0;
}

/*
** The r on top becomes the OK payload. A result that cannot travel turns
** into an ERROR whose message is the codec's, naming the culprit from
** "result" ("cannot serialise result[1]: thread"), unless it is an
** expression line's (tostrings).
*/
void eng_encok(lua_State *L, eng_task *t) {
  plush_buf *b = &t->e->enc;
  char err[256], err2[256];
  int r = lua_gettop(L);
  lua_createtable(L, 0, 3);
  lua_pushvalue(L, r);
  lua_setfield(L, -2, "r");
  stamp(L, t);
  eng_enc_reset(t->e);
  if (plush_encode(L, -1, b, "reply", err, sizeof err) == 0) {
    t->status = PLUSH_S_OK;
    return;
  }
  eng_enc_reset(t->e);
  if (t->autoret && t->e->fired != t->req->hdr.id && lua_istable(L, r) &&
      tostrings(L, r)) {
    if (plush_encode(L, -1, b, "reply", err, sizeof err) == 0) {
      t->status = PLUSH_S_OK;
      return;
    }
    eng_enc_reset(t->e);
  }
  if (t->e->fired == t->req->hdr.id) /* the hook hit the codec */
    snprintf(err, sizeof err, "interrupted");
  else if (plush_encode(L, r, b, "result", err2, sizeof err2) < 0)
    memcpy(err, err2, sizeof err);
  eng_enc_reset(t->e);
  eng_errtable(L, err);
  eng_encerr(L, t);
}
