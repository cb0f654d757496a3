/*
** engine_debug.c — what the shell's %debug and ??name read on an engine:
** the stack of the last failed call, taken where the error was raised,
** and the chunks the engine ran (their text).
**
** The capture runs in the message handler (engine_ops.c), the only place
** the failing frames still exist. It copies nothing but references: for
** each level (innermost first, at most DBG_LEVELS) its debug information,
** the function, and the names and values of its locals, upvalues and
** varargs (at most DBG_VARS of each). It replaces the previous capture,
** which is thereby freed: one capture per engine, until the next error.
** It runs under a protected call of its own and never raises or touches
** a metamethod, so the error value and what pcall/error return stay as
** stock Lua has them; when it fails (no memory, a stack overflow) there is
** simply no capture.
**
** The registry holds both, under string keys that Lua code sent with
** `apply` (lua/plush/debugger.lua) reads through debug.getregistry():
**   ["plush.debug"]  = {err = the error value, n = levels, more = true when
**                       levels were left out, [i] = {what, name, namewhat,
**                       source, short_src, currentline, linedefined,
**                       lastlinedefined, func, lnames, lvals, unames, uvals,
**                       va = {n = k, ...}}}; lvals/uvals have `n`
**   ["plush.chunks"] = {n = count, bytes = their code's bytes,
**                       [i] = {name = "=execute", code = text}}
**                       oldest first, at most DBG_CHUNKS, DBG_CHUNK_BYTES;
**                       a chunk run again right after itself is kept once
*/
#include <string.h>

#include <lauxlib.h>

#include "engine_int.h"

#define DBG_LEVELS 32
#define DBG_VARS 64
#define DBG_CHUNKS 256
#define DBG_CHUNK_MAX ((size_t)1 << 20)    /* a bigger chunk is not kept */
#define DBG_CHUNK_BYTES ((size_t)4 << 20)  /* all kept chunks together */

static const char capkey[] = "plush.debug", chunkkey[] = "plush.chunks";
static const char lastkey = 'l'; /* registry: {code, name} of the chunk
                                    kept last, for eng_dbg_keep's check */

/* ---- the stack of a failed call ---------------------------------- */

/* t[k] = {n = count, ...} of the values, names[k] the names (on top). */
static void vars(lua_State *L, int frame, const char *nk, const char *vk,
                 lua_Debug *ar, int fn, int upvalues) {
  int n = 0;
  lua_createtable(L, 4, 0); /* names */
  lua_createtable(L, 4, 1); /* values */
  for (int i = 1; n < DBG_VARS; i++) {
    const char *name = upvalues ? lua_getupvalue(L, fn, i) : lua_getlocal(L, ar, i);
    if (name == NULL) break;
    if (*name == '(') { /* temporaries: (for state), (C temporary) */
      lua_pop(L, 1);
      continue;
    }
    n++;
    lua_rawseti(L, -2, n);
    lua_pushstring(L, *name ? name : "?");
    lua_rawseti(L, -3, n);
  }
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
  lua_setfield(L, frame, vk);
  lua_setfield(L, frame, nk);
}

static void setstr(lua_State *L, int t, const char *k, const char *v) {
  if (v == NULL) return;
  lua_pushstring(L, v);
  lua_setfield(L, t, k);
}

static void setint(lua_State *L, int t, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, t, k);
}

/* One level's frame table, pushed. */
static void frame(lua_State *L, lua_Debug *ar) {
  int f, fn, n = 0;
  lua_getinfo(L, "nSlf", ar); /* pushes the function */
  fn = lua_gettop(L);
  lua_createtable(L, 0, 16);
  f = lua_gettop(L);
  setstr(L, f, "what", ar->what);
  setstr(L, f, "name", ar->name);
  setstr(L, f, "namewhat", ar->namewhat);
  setstr(L, f, "source", ar->source);
  setstr(L, f, "short_src", ar->short_src);
  setint(L, f, "currentline", ar->currentline);
  setint(L, f, "linedefined", ar->linedefined);
  setint(L, f, "lastlinedefined", ar->lastlinedefined);
  lua_pushvalue(L, fn);
  lua_setfield(L, f, "func");
  vars(L, f, "lnames", "lvals", ar, fn, 0);
  vars(L, f, "unames", "uvals", ar, fn, 1);
  lua_createtable(L, 0, 1);
  while (n < DBG_VARS && lua_getlocal(L, ar, -(n + 1)) != NULL)
    lua_rawseti(L, -2, ++n);
  setint(L, lua_gettop(L), "n", n);
  lua_setfield(L, f, "va");
  lua_remove(L, fn);
}

/*
** Under lua_pcall from eng_dbg_capture: argument 1 the error value,
** argument 2 how many levels above this function the error was raised.
** The C frames below the last Lua one are the engine calling the user
** (eng_serve, the map loop): left out.
*/
static int capture(lua_State *L) {
  lua_Debug ar;
  lua_Debug below;
  int level = (int)lua_tointeger(L, 2), n = 0, keep = 0;
  int bottom = (int)lua_tointeger(L, 3); /* the last levels are not the call's */
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, capkey); /* the old one goes first */
  lua_createtable(L, DBG_LEVELS, 3);
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "err");
  for (; lua_getstack(L, level, &ar) && lua_getstack(L, level + bottom, &below); level++) {
    if (n == DBG_LEVELS) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "more");
      keep = n;
      break;
    }
    luaL_checkstack(L, 8, "debug capture");
    frame(L, &ar);
    lua_getfield(L, -1, "what");
    if (strcmp(lua_tostring(L, -1), "C") != 0) keep = n + 1;
    lua_pop(L, 1);
    lua_rawseti(L, -2, ++n);
  }
  for (; n > keep; n--) { /* the engine's own C frames at the bottom */
    lua_pushnil(L);
    lua_rawseti(L, -2, n);
  }
  setint(L, lua_gettop(L), "n", keep);
  lua_setfield(L, LUA_REGISTRYINDEX, capkey);
  return 0;
}

void eng_dbg_capture(lua_State *L, int value, int level, int bottom) {
  value = lua_absindex(L, value);
  if (!lua_checkstack(L, 5)) return;
  lua_pushcfunction(L, capture);
  lua_pushvalue(L, value);
  lua_pushinteger(L, level + 1); /* capture's own frame is one more */
  lua_pushinteger(L, bottom);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) lua_pop(L, 1);
}

/* ---- the chunks run ---------------------------------------------- */

/*
** Arguments: the code, its chunk name (a C string, light userdata). Per
** run it costs the same whatever the table holds: the bytes of the kept
** chunks are counted in the table's `bytes` (recounted if missing), only
** the chunks that must go are looked at, and a run of the chunk kept
** last (a `%px` repeated) keeps nothing new.
*/
static int keep(lua_State *L) {
  size_t len, total = 0;
  lua_Integer n, drop = 0;
  int t;
  const char *code = lua_tolstring(L, 1, &len);
  const char *name = lua_touserdata(L, 2);
  if (lua_getfield(L, LUA_REGISTRYINDEX, chunkkey) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 16, 2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, chunkkey);
  }
  t = lua_gettop(L);
  n = (lua_getfield(L, t, "n"), lua_tointeger(L, -1));
  if (lua_getfield(L, t, "bytes") == LUA_TNUMBER)
    total = (size_t)lua_tointeger(L, -1);
  else
    for (lua_Integer i = 1; i <= n; i++, lua_pop(L, 2))
      total += (lua_rawgeti(L, t, i), lua_getfield(L, -1, "code"), lua_rawlen(L, -1));
  lua_pop(L, 2);
  if (n > 0 && lua_rawgeti(L, t, n) == LUA_TTABLE) { /* the same again? */
    size_t l;
    const char *c = (lua_getfield(L, -1, "code"), lua_tolstring(L, -1, &l));
    const char *nm = (lua_getfield(L, -2, "name"), lua_tostring(L, -1));
    if (c && nm && l == len && memcmp(c, code, len) == 0 && strcmp(nm, name) == 0)
      return 0;
  }
  /* the oldest go while there are too many, or too many bytes */
  while (drop < n && (n - drop >= DBG_CHUNKS || total + len > DBG_CHUNK_BYTES)) {
    lua_rawgeti(L, t, ++drop);
    lua_getfield(L, -1, "code");
    total -= lua_rawlen(L, -1);
    lua_pop(L, 2);
  }
  if (drop > 0) {
    for (lua_Integer j = drop + 1; j <= n; j++) {
      lua_rawgeti(L, t, j);
      lua_rawseti(L, t, j - drop);
    }
    for (lua_Integer j = n - drop + 1; j <= n; j++) {
      lua_pushnil(L);
      lua_rawseti(L, t, j);
    }
    n -= drop;
  }
  lua_pushnil(L); /* the check's memo is stale until the end */
  lua_rawsetp(L, LUA_REGISTRYINDEX, &lastkey);
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "code");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "name");
  lua_rawseti(L, t, ++n);
  setint(L, t, "n", n);
  setint(L, t, "bytes", (lua_Integer)(total + len));
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_pushstring(L, name);
  lua_rawseti(L, -2, 2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &lastkey);
  return 0;
}

void eng_dbg_keep(lua_State *L, int code, const char *chunkname) {
  size_t len;
  int top, same = 0;
  code = lua_absindex(L, code);
  if (!lua_tolstring(L, code, &len) || len > DBG_CHUNK_MAX) return;
  if (!lua_checkstack(L, 4)) return;
  /* the chunk kept last again (a repeated %px): nothing to keep, known
  ** without keep's pcall and lookups */
  top = lua_gettop(L);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &lastkey) == LUA_TTABLE)
    same = lua_rawgeti(L, top + 1, 1) == LUA_TSTRING && lua_rawequal(L, -1, code) &&
           lua_rawgeti(L, top + 1, 2) == LUA_TSTRING &&
           strcmp(lua_tostring(L, -1), chunkname) == 0;
  lua_settop(L, top);
  if (same) return;
  lua_pushcfunction(L, keep);
  lua_pushvalue(L, code);
  lua_pushlightuserdata(L, (void *)chunkname);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);
}
