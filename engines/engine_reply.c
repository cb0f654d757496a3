/*
** engine_reply.c — the OK reply of a task whose results are all scalars
** (nil, booleans, numbers, strings below the buffer's segment size),
** written straight into the reply buffer:
**   {r = {[i] = v_i (non-nil ones), n = k}, started = t0, completed = t1}
** as the codec (core/codec_enc.c) would write that table, without the two
** tables engine_ops.c's pack and encok build for it and the codec's walk
** of them: most small tasks return nothing or a number, and those tables
** were a third of an engine's instructions per task and garbage for the
** collector. Anything else takes the general path (encok).
*/
#include <string.h>

#include <lua.h>

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
