/*
** codec_refs.c — the encoder's memory of one value (codec_int.h): the
** objects and upvalues met so far (a C array for the first CODEC_SEEN,
** then a ref table), and the cache of lua_dump's output per closure.
** Beside codec_enc.c, which calls them once per table or function.
*/
#include <lauxlib.h>
#include <string.h>

#include "codec_int.h"

/*
** The objects met so far (codec_int.h): p's ref value in *v (1), or 0.
*/
int codec_seen(ctx *c, const void *p, lua_Integer *v) {
  int i, n = c->nseen < CODEC_SEEN ? c->nseen : CODEC_SEEN;
  for (i = 0; i < n; i++)
    if (c->seenp[i] == p) return *v = c->seenv[i], 1;
  if (c->nseen <= CODEC_SEEN) return 0; /* no ref table yet */
  lua_pushlightuserdata(c->L, (void *)p);
  if (lua_rawget(c->L, c->refs) != LUA_TNUMBER) return lua_pop(c->L, 1), 0;
  *v = lua_tointeger(c->L, -1);
  lua_pop(c->L, 1);
  return 1;
}

/*
** The collector runs on during an encode: the encoder runs no Lua code
** (raw reads, no metamethods), so every object it meets stays reachable
** from the value being encoded, on the caller's stack, to its end; a
** step an allocation runs frees none, and no new object takes the
** address of one met. (Stopping it was tried: `lua_gc(LUA_GCRESTART)`
** zeroes the collector's debt, a step at the next allocation: an engine
** encoding a reply of 17 tables or a closure made anew each task paid a
** collector step per task, and nested tasks ran at half their rate.)
*/
void codec_remember(ctx *c, const void *p, lua_Integer v) {
  lua_State *L = c->L;
  if (c->nseen < CODEC_SEEN) {
    c->seenp[c->nseen] = p;
    c->seenv[c->nseen++] = v;
    return;
  }
  if (c->nseen == CODEC_SEEN) { /* the 17th: the ref table, made now */
    lua_createtable(L, 0, CODEC_SEEN);
    lua_replace(L, c->refs);
    c->nseen++;
  }
  lua_pushlightuserdata(L, (void *)p);
  lua_pushinteger(L, v);
  lua_rawset(L, c->refs);
}

static int writer(lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  return plush_buf_append(ud, p, n) ? 1 : 0;
}

/*
** lua_dump's output for the Lua function at idx, from the cache when it
** has it (codec_int.h): the registry's weak-keyed table, in the stack
** slot c->dumps + its lookup once per encode. A miss dumps, then keeps
** a copy of up to DUMP_CACHE bytes.
*/
#define DUMP_CACHE (16u << 10)
static const char dumpkey = 'd';

int codec_putdump(ctx *c, int idx) {
  lua_State *L = c->L;
  size_t at = c->b->len, n;
  const char *s;
  if (c->dumps < 0) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &dumpkey) == LUA_TTABLE) {
      lua_replace(L, -c->dumps);
    } else {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_createtable(L, 0, 1);
      lua_pushliteral(L, "k");
      lua_setfield(L, -2, "__mode");
      lua_setmetatable(L, -2);
      lua_pushvalue(L, -1);
      lua_rawsetp(L, LUA_REGISTRYINDEX, &dumpkey);
      lua_replace(L, -c->dumps);
    }
    c->dumps = -c->dumps;
  }
  lua_pushvalue(L, idx);
  if (lua_rawget(L, c->dumps) == LUA_TSTRING) {
    s = lua_tolstring(L, -1, &n);
    if (plush_buf_append(c->b, s, n)) return codec_nomem(c);
    lua_pop(L, 1);
    return 0;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  if (lua_dump(L, writer, c->b, 0)) return codec_nomem(c);
  lua_pop(L, 1);
  if ((n = c->b->len - at) <= DUMP_CACHE) {
    lua_pushvalue(L, idx);
    lua_pushlstring(L, c->b->data + at, n);
    lua_rawset(L, c->dumps);
  }
  return 0;
}

