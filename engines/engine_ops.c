/*
** engine_ops.c — what an engine does with a request: the ops of
** share/doc/design.md (exec, apply, push, pull, map, names), every user
** call under a traceback handler; the REPLY payload is encoded by
** engine_reply.c. Runs on the Lua thread, as the body of the task's
** coroutine (engine_co.c). Over 600 lines: the ops share the calling
** machinery here (the message handler, the error tables, the yieldable
** call of exec and apply), which splitting would expose.
*/
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "array.h"
#include "codec.h"
#include "engine_int.h"
#include "lua_mem.h"
#include "plush.h"

typedef eng_task task;

/* A request the engine cannot make sense of: BADREQ, not the user's bug. */
static int badreq(lua_State *L, task *t, const char *fmt, ...) {
  va_list ap;
  t->status = PLUSH_S_BADREQ;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  return lua_error(L);
}

/* ---- calling user code ------------------------------------------- */

/* Drops the engine's own frames ("[C]: in ?") from a traceback's end. */
static void trim(lua_State *L) {
  static const char tail[] = "\n\t[C]: in ?";
  size_t tl = sizeof tail - 1, len, n;
  const char *s = lua_tolstring(L, -1, &len);
  for (n = len; n >= tl && memcmp(s + n - tl, tail, tl) == 0; n -= tl) {}
  if (n != len) {
    lua_pushlstring(L, s, n);
    lua_remove(L, -2);
  }
}

/* How many levels the stack has (the running function's is level 0);
** lua_getstack walks from the top, so levels are probed by halving. */
static int depth(lua_State *L) {
  lua_Debug ar;
  int lo = 0, hi = 1;
  if (!lua_getstack(L, 0, &ar)) return 0;
  while (lua_getstack(L, hi, &ar)) lo = hi, hi *= 2;
  while (hi - lo > 1) {
    int mid = lo + (hi - lo) / 2;
    if (lua_getstack(L, mid, &ar)) lo = mid; else hi = mid;
  }
  return lo + 1;
}

/*
** Drops the last `levels` lines of a traceback: the frames below the
** user's call, an embedding host's (its main chunk, plush.engine's
** serve). luaL_traceback shows the last 11 levels in full.
*/
static void cut(lua_State *L, int levels) {
  size_t len, n;
  const char *s = lua_tolstring(L, -1, &len);
  if (levels > 11) levels = 11;
  for (n = len; levels > 0 && n > 1; n--)
    if (s[n - 2] == '\n' && s[n - 1] == '\t' && --levels == 0) break;
  if (levels == 0 && n >= 2) {
    lua_pushlstring(L, s, n - 2);
    lua_remove(L, -2);
  }
}

/*
** The message handler. It runs where an error is raised, the only place
** a traceback can be taken, and for every error raised while it is the
** current handler: the one that ends the user's call, but also errors
** that user code sees again without a pcall of its own -- a load
** reader's (load returns it), or the error a __close metamethod is given
** while the stack unwinds. So it leaves the error value as it is, as in
** a stock Lua state, and keeps the traceback beside it in the registry,
** with the value it belongs to; call() pairs them once the call is over.
** The last error raised under the handler is the one the call ends with
** (an error in a __close replaces the one before); memory errors and
** errors in the handler come without a handler run.
*/
static const char tbkey = 't', errkey = 'e';

/*
** The level the traceback starts at: 1 (where the error was raised, as
** lua.c shows it), or past plush's own frames when the error came from
** the engine's API (engine.recv, tuples:out, ...: C functions called by
** the "=engine" chunk's Lua wrappers): a usage mistake shows the user's
** code, not "[C]: in field '?'" and "engine:4:".
*/
static int firstlevel(lua_State *L) {
  lua_Debug ar;
  int level = 1, api = 0;
  while (lua_getstack(L, level, &ar) && lua_getinfo(L, "S", &ar)) {
    if (strcmp(ar.source, "=engine") == 0)
      api = 1;
    else if (strcmp(ar.what, "C") != 0)
      break;
    level++;
  }
  return api ? level : 1;
}

static int handler(lua_State *L) {
  plush_engine *e = eng_self(L);
  int lifted = e->mem.lifted, inuser = e->inuser;
  e->mem.lifted = 1; /* the traceback is the engine's */
  e->inuser = 0;
  lua_settop(L, 1);
  eng_dbg_capture(L, 1, 1, e->base); /* %debug's frames (engine_debug.c) */
  luaL_traceback(L, L, NULL, firstlevel(L));
  cut(L, e->base);
  trim(L);
  if (strcmp(lua_tostring(L, -1), "stack traceback:") == 0) { /* no frame */
    lua_pop(L, 1);
    lua_pushliteral(L, "");
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &tbkey);
  lua_pushvalue(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &errkey);
  e->errkept = 1;
  e->mem.lifted = lifted;
  e->inuser = inuser;
  return 1;
}

/*
** {message, traceback, value?} from an error value and its traceback
** (arguments 1 and 2). Error objects with __tostring give the message;
** any other non-string error value is kept whole in `value` (sent when
** the codec can).
*/
static int errobj(lua_State *L) {
  const char *msg;
  if (lua_type(L, 1) == LUA_TSTRING)
    msg = lua_tostring(L, 1);
  else if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
    msg = lua_tostring(L, -1);
  else if (lua_type(L, 1) == LUA_TNUMBER)
    msg = luaL_tolstring(L, 1, NULL);
  else
    msg = lua_pushfstring(L, "(error object is a %s value)",
                          luaL_typename(L, 1));
  lua_createtable(L, 0, 3);
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  if (lua_type(L, 1) != LUA_TSTRING && !lua_isnil(L, 1)) {
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "value");
  }
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "traceback");
  return 1;
}

/* An error table for a message that comes with no traceback. */
void eng_errtable(lua_State *L, const char *msg) {
  lua_createtable(L, 0, 2);
  lua_pushstring(L, msg ? msg : "unknown error");
  lua_setfield(L, -2, "message");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "traceback");
}

/*
** The error value on top becomes its error table, with the traceback the
** handler kept for it (none if it kept none for this value: a NaN is
** not raw-equal to itself, so numbers compare by bits).
*/
static void toerror(lua_State *L) {
  int v = lua_gettop(L), same;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &errkey);
  same = lua_rawequal(L, v, -1);
  if (!same && lua_type(L, v) == LUA_TNUMBER && lua_type(L, -1) == LUA_TNUMBER &&
      !lua_isinteger(L, v) && !lua_isinteger(L, -1)) {
    lua_Number a = lua_tonumber(L, v), b = lua_tonumber(L, -1);
    same = memcmp(&a, &b, sizeof a) == 0;
  }
  lua_pop(L, 1);
  if (!same || lua_rawgetp(L, LUA_REGISTRYINDEX, &tbkey) != LUA_TSTRING) {
    lua_settop(L, v);
    lua_pushliteral(L, "");
  }
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &errkey);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &tbkey);
  eng_self(L)->errkept = 0;
  lua_pushcfunction(L, errobj); /* v: value, v + 1: traceback */
  lua_pushvalue(L, v);
  lua_pushvalue(L, v + 1);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) { /* __tostring failed, or memory */
    const char *m = lua_tostring(L, -1);
    eng_errtable(L, lua_pushfstring(L, "(error object is a %s value; its __tostring failed: %s)",
                                luaL_typename(L, v), m ? m : "?"));
    lua_pushvalue(L, v);
    lua_setfield(L, -2, "value");
    lua_pushvalue(L, v + 1);
    lua_setfield(L, -2, "traceback");
  }
  lua_replace(L, v);
  lua_settop(L, v);
}

/* After the user's call ended with st: an error becomes its error table
** (on top); what the handler kept for errors the call caught is dropped. */
static void settle(lua_State *L, int st) {
  if (st == LUA_ERRRUN) {
    toerror(L);
  } else if (st != LUA_OK) {
    eng_errtable(L, lua_tostring(L, -1));
    lua_remove(L, -2);
  }
  if (st != LUA_ERRRUN && eng_self(L)->errkept) { /* what the handler
                                                     kept for caught errors */
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &errkey);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &tbkey);
    eng_self(L)->errkept = 0;
  }
}

/*
** Calls the function below its nargs arguments under the handler.
** LUA_OK: its results replace it. Otherwise an error table replaces it
** (also for errors the handler never saw: memory, error in the handler).
**
** The memory limit holds here, while user code runs (and while a request
** is decoded: its values are the namespace's); everything else the
** engine does in the state — compiling the chunk, packing results,
** error tables, encoding the reply — is its own work and runs lifted, so
** that a namespace filled to the limit still gets its answer.
*/
static int call(lua_State *L, int nargs, int nres) {
  plush_engine *e = eng_self(L);
  int fn = lua_gettop(L) - nargs;
  int st, base = e->base;
  lua_pushcfunction(L, handler);
  lua_insert(L, fn);
  e->base = depth(L);
  e->mem.lifted = 0;
  e->inuser = 1;
  st = lua_pcall(L, nargs, nres, fn);
  e->mem.lifted = 1;
  e->inuser = 0;
  e->base = base;
  lua_remove(L, fn);
  settle(L, st);
  return st;
}

/*
** exec and apply may wait on subtasks (engine.client()): their call is
** yieldable, so the task's coroutine (engine_co.c) can park and be
** resumed while other tasks run. After a yield C frames are gone: the
** rest of the request -- call()'s ending, pack, the reply's encoding --
** is this continuation, which the first run takes as well. ctx: the
** handler's index (the function's results, when OK, start there once it
** is removed).
*/
static void pack(lua_State *L, int base);

static int tailk(lua_State *L, int st, lua_KContext ctx) {
  task *t = lua_touserdata(L, 1);
  plush_engine *e = t->e;
  int fn = (int)ctx;
  if (st == LUA_YIELD) st = LUA_OK;
  e->mem.lifted = 1;
  e->inuser = 0;
  lua_remove(L, fn);
  settle(L, st);
  t->completed = eng_now();
  if (st == LUA_OK && eng_reply_fast(L, t, fn, lua_gettop(L) - fn + 1))
    return 0;
  if (st == LUA_OK) pack(L, fn - 1);
  if (st == LUA_OK)
    eng_encok(L, t);
  else
    eng_encerr(L, t);
  return 0;
}

/* Calls the function below its nargs arguments, yieldably; the request
** ends in tailk. Returns what eng_serve returns. */
static int callk(lua_State *L, task *t, int nargs) {
  plush_engine *e = t->e;
  int fn = lua_gettop(L) - nargs;
  lua_pushcfunction(L, handler);
  lua_insert(L, fn);
  /* the levels below the user's function: the task coroutine's entry, or
  ** an embedding host's frames (an attached state runs tasks on its own
  ** stack); the same for every task of this engine, so no restore */
  e->base = depth(L);
  e->mem.lifted = 0;
  e->inuser = 1;
  return tailk(L, lua_pcallk(L, nargs, LUA_MULTRET, fn, fn, tailk), fn);
}

#define ENDED 100 /* an op's status: the request ended in tailk */

/* The values above base become {n = k, ...}, left at base + 1. */
static void pack(lua_State *L, int base) {
  int n = lua_gettop(L) - base;
  lua_createtable(L, n, 1);
  for (int i = 1; i <= n; i++) {
    lua_pushvalue(L, base + i);
    lua_rawseti(L, -2, i);
  }
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
  if (n > 0) {
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
  }
}

/* ---- names in the namespace -------------------------------------- */

/*
** Pushes the value at a dotted path from the globals ("t.x.y"); nil when
** a step is missing or not a table. Indexing honours metatables: it is
** user-visible lookup, under the caller's pcall.
*/
static void getpath(lua_State *L, const char *path) {
  lua_pushglobaltable(L);
  for (;;) {
    const char *dot = strchr(path, '.');
    if (!lua_istable(L, -1)) {
      lua_pop(L, 1);
      lua_pushnil(L);
      return;
    }
    if (dot == NULL) {
      lua_getfield(L, -1, path);
      lua_remove(L, -2);
      return;
    }
    lua_pushlstring(L, path, (size_t)(dot - path));
    lua_gettable(L, -2);
    lua_remove(L, -2);
    path = dot + 1;
  }
}

/* Assigns the value at v to a dotted path; every step must be a table. */
static void setpath(lua_State *L, const char *path, int v) {
  const char *full = path, *dot;
  v = lua_absindex(L, v);
  lua_pushglobaltable(L);
  while ((dot = strchr(path, '.')) != NULL) {
    lua_pushlstring(L, path, (size_t)(dot - path));
    lua_gettable(L, -2);
    if (!lua_istable(L, -1)) {
      lua_pushlstring(L, full, (size_t)(dot - full));
      luaL_error(L, "cannot push '%s': '%s' is not a table", full,
                 lua_tostring(L, -1));
    }
    lua_remove(L, -2);
    path = dot + 1;
  }
  lua_pushvalue(L, v);
  lua_setfield(L, -2, path);
  lua_pop(L, 1);
}

static int dopush(lua_State *L) {
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      return luaL_error(L, "push: names must be strings, got a %s",
                        luaL_typename(L, -2));
    setpath(L, lua_tostring(L, -2), -1);
    lua_pop(L, 1);
  }
  return 0;
}

static int dopull(lua_State *L) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  lua_createtable(L, (int)n, 1);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 1, i) != LUA_TSTRING)
      return luaL_error(L, "pull: names[%I] is not a string", i);
    getpath(L, lua_tostring(L, -1));
    lua_rawseti(L, 2, i);
    lua_pop(L, 1);
  }
  lua_pushinteger(L, n);
  lua_setfield(L, 2, "n");
  return 1;
}

static int isident(const char *s) {
  if (!isalpha((unsigned char)*s) && *s != '_') return 0;
  while (*++s)
    if (!isalnum((unsigned char)*s) && *s != '_') return 0;
  return 1;
}

static int bystr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
** Completion: the identifiers under a dotted prefix ("str" -> "string",
** "string.fo" -> "string.format"), from the value's own keys and along
** its __index chain (so methods of objects and strings complete too).
** Full dotted names, sorted, each once.
*/
static int donames(lua_State *L) {
  const char *pre = luaL_checkstring(L, 1);
  const char *dot = strrchr(pre, '.');
  const char *part = dot ? dot + 1 : pre;
  size_t plen = strlen(part), n = 0, i = 0;
  const char **keys;
  lua_newtable(L); /* 2: the set of names found */
  if (dot) {
    lua_pushlstring(L, pre, (size_t)(dot - pre)); /* 3: the path */
    getpath(L, lua_tostring(L, 3));
  } else {
    lua_pushliteral(L, "");
    lua_pushglobaltable(L);
  }
  for (int depth = 0; depth < 8; depth++) { /* 4: the value searched */
    if (lua_istable(L, 4)) {
      lua_pushnil(L);
      while (lua_next(L, 4)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING &&
            strncmp(lua_tostring(L, -1), part, plen) == 0 &&
            isident(lua_tostring(L, -1))) {
          lua_pushvalue(L, -1);
          lua_pushboolean(L, 1);
          lua_rawset(L, 2);
        }
      }
    }
    if (!lua_getmetatable(L, 4)) break;
    lua_getfield(L, -1, "__index");
    lua_replace(L, 4);
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, 2)) lua_pop(L, 1), n++;
  keys = lua_newuserdatauv(L, (n ? n : 1) * sizeof *keys, 0); /* 5 */
  lua_pushnil(L);
  while (lua_next(L, 2)) lua_pop(L, 1), keys[i++] = lua_tostring(L, -1);
  qsort(keys, n, sizeof *keys, bystr);
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    if (dot)
      lua_pushfstring(L, "%s.%s", lua_tostring(L, 3), keys[i]);
    else
      lua_pushstring(L, keys[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* ---- the ops ----------------------------------------------------- */
/* Each leaves r (LUA_OK) or an error table (else) on top of the stack. */

/* exec of the code at ci, named by ci + 1 (a string, else "execute"). */
static int execf(lua_State *L, task *t, int ci) {
  const char *name = "execute", *chunk;
  if (lua_type(L, ci + 1) == LUA_TSTRING) name = lua_tostring(L, ci + 1);
  t->autoret = lua_toboolean(L, ci + 2);
  chunk = strcmp(name, "execute") == 0 ? lua_pushliteral(L, "=execute")
                                       : lua_pushfstring(L, "=%s", name);
  if (eng_chunk_load(L, ci, chunk) != LUA_OK) {
    eng_errtable(L, lua_tostring(L, -1));
    return LUA_ERRSYNTAX;
  }
  if (!t->autoret) eng_dbg_keep(L, ci, chunk); /* ??name's source */
  callk(L, t, 0);
  return ENDED;
}

static int opexec(lua_State *L, task *t, int req) {
  if (lua_getfield(L, req, "code") != LUA_TSTRING)
    return badreq(L, t, "exec needs a string 'code'");
  lua_getfield(L, req, "name");
  lua_getfield(L, req, "auto");
  return execf(L, t, lua_gettop(L) - 2);
}

/* apply of the function at f to the args at f + 1 (a table or nil). */
static int applyf(lua_State *L, task *t, int f) {
  lua_Integer n = 0;
  int args = f + 1;
  if (lua_type(L, args) == LUA_TTABLE) {
    if (lua_getfield(L, args, "n") == LUA_TNUMBER && lua_isinteger(L, -1))
      n = lua_tointeger(L, -1);
    else
      n = (lua_Integer)lua_rawlen(L, args);
    lua_pop(L, 1);
  } else if (!lua_isnil(L, args)) {
    return badreq(L, t, "apply: 'args' must be a table");
  }
  if (n < 0 || n > 1000000)
    return badreq(L, t, "apply: bad argument count %I", n);
  luaL_checkstack(L, (int)n + 8, "too many arguments");
  lua_pushvalue(L, f);
  for (lua_Integer i = 1; i <= n; i++) lua_rawgeti(L, args, i);
  callk(L, t, (int)n);
  return ENDED;
}

static int opapply(lua_State *L, task *t, int req) {
  if (lua_getfield(L, req, "f") != LUA_TFUNCTION)
    return badreq(L, t, "apply needs a function 'f'");
  lua_getfield(L, req, "args");
  return applyf(L, t, lua_gettop(L) - 1);
}

static int oppush(lua_State *L, task *t, int req) {
  if (lua_getfield(L, req, "ns") != LUA_TTABLE)
    return badreq(L, t, "push needs a table 'ns'");
  lua_pushcfunction(L, dopush);
  lua_insert(L, -2);
  if (call(L, 1, 0) != LUA_OK) return LUA_ERRRUN;
  lua_createtable(L, 0, 1);
  lua_pushinteger(L, 0);
  lua_setfield(L, -2, "n");
  return LUA_OK;
}

static int oppull(lua_State *L, task *t, int req) {
  if (lua_getfield(L, req, "names") != LUA_TTABLE)
    return badreq(L, t, "pull needs an array 'names'");
  lua_pushcfunction(L, dopull);
  lua_insert(L, -2);
  return call(L, 1, 1);
}

/* Where a map is: domap's loop counter, read back when an item fails. */
typedef struct mapat {
  lua_Integer i, n;
} mapat;

/*
** The map loop, one protected call for all the items (a pcall per item
** costs more than a cheap f): arguments the mapat, f and items. Each
** result replaces its item in the request's own items table, out of the
** user's reach: no second table of n slots to allocate and fill. Storing
** a result is the engine's work, so it runs lifted (an items table that
** came without room for item i grows on the engine's account).
**
** The results go back as a packed slice of that table: the codec writes
** {n = n, ...} from it by index, without walking the table's keys.
*/
static int domap(lua_State *L) {
  mapat *m = lua_touserdata(L, 1);
  plush_engine *e = eng_self(L);
  for (; m->i <= m->n; m->i++) {
    lua_pushvalue(L, 2);
    lua_rawgeti(L, 3, m->i);
    lua_call(L, 1, 1);
    e->mem.lifted = 1;
    lua_rawseti(L, 3, m->i);
    e->mem.lifted = 0;
  }
  return 0;
}

/*
** map over a plush.array (a chunk the client sent as one): the results
** come back as an array when all are numbers (plush_array_map).
*/
static int maparray(lua_State *L, int f) {
  plush_amap m = {1, (lua_Integer)plush_array_test(L, f + 1)->n};
  lua_pushcfunction(L, plush_array_map);
  lua_pushlightuserdata(L, &m);
  lua_pushvalue(L, f);
  lua_pushvalue(L, f + 1);
  if (call(L, 3, 1) != LUA_OK) {
    lua_pushinteger(L, m.i);
    lua_setfield(L, -2, "item");
    return LUA_ERRRUN;
  }
  return LUA_OK;
}

static int opmap(lua_State *L, task *t, int req) {
  mapat m = {1, 0};
  int f, items;
  if (lua_getfield(L, req, "f") != LUA_TFUNCTION)
    return badreq(L, t, "map needs a function 'f'");
  f = lua_gettop(L);
  if (lua_getfield(L, req, "items") == LUA_TUSERDATA && plush_array_test(L, -1))
    return maparray(L, f);
  if (!lua_istable(L, -1)) return badreq(L, t, "map needs a table 'items'");
  items = f + 1;
  if (lua_getfield(L, req, "n") == LUA_TNUMBER && lua_isinteger(L, -1))
    m.n = lua_tointeger(L, -1);
  else
    m.n = (lua_Integer)lua_rawlen(L, items);
  lua_pop(L, 1);
  if (m.n < 0 || m.n > INT_MAX) return badreq(L, t, "map: bad item count %I", m.n);
  if (m.n > 0) {
    lua_pushcfunction(L, domap);
    lua_pushlightuserdata(L, &m);
    lua_pushvalue(L, f);
    lua_pushvalue(L, items);
    if (call(L, 3, 0) != LUA_OK) { /* the error table names the item */
      lua_pushinteger(L, m.i);
      lua_setfield(L, -2, "item");
      return LUA_ERRRUN;
    }
  }
  plush_push_slice(L, items, 1, m.n, 1);
  return LUA_OK;
}

static int opnames(lua_State *L, task *t, int req) {
  int ty = lua_getfield(L, req, "prefix");
  if (ty != LUA_TSTRING && ty != LUA_TNIL)
    return badreq(L, t, "names: 'prefix' must be a string");
  if (ty == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushliteral(L, "");
  }
  lua_pushcfunction(L, donames);
  lua_insert(L, -2);
  return call(L, 1, 1);
}

/* The request ops, as Lua's luaL_Reg tables: op(L, t, req) runs the
** request at stack index req and returns the status of the user's call. */
static const struct engop {
  const char *name;
  int (*fn)(lua_State *L, task *t, int req);
} ops[] = {{"exec", opexec},   {"apply", opapply}, {"push", oppush},
           {"pull", oppull},   {"map", opmap},     {"names", opnames},
           {NULL, NULL}};

int eng_serve(lua_State *L) {
  task *t = lua_touserdata(L, 1);
  const struct engop *o;
  plush_frame *f = t->req;
  char err[256];
  const char *op, *p = plush_frame_payload(f);
  int st, fast;
  plush_lua_mem_room(L, f->hdr.len);
  t->e->mem.lifted = 0;
  t->e->inuser = 1;
  /* apply {F, A} and exec {code, name, auto}: read without their tables */
  fast = eng_req_apply(L, p, f->hdr.len) ? 1 : eng_req_exec(L, p, f->hdr.len) ? 2 : 0;
  st = fast ? 0 : plush_decode_frame(L, f, err, sizeof err); /* big strings: f's pages */
  t->e->mem.lifted = 1;
  t->e->inuser = 0; /* below: the hook hit the reading (served() says so) */
  if (t->e->fired == f->hdr.id) return luaL_error(L, "interrupted");
  if (fast) {
    st = fast == 1 ? applyf(L, t, 2) : execf(L, t, 2);
    goto ran;
  }
  if (st == PLUSH_ENOMEM) {
    /* The request's values are the namespace's: the memory limit (or the
    ** machine) refused them. The user's problem, not a bad request. */
    t->status = PLUSH_S_ERROR;
    return luaL_error(L, "not enough memory to decode the request");
  }
  if (st < 0) return badreq(L, t, "cannot decode the request: %s", err);
  if (!lua_istable(L, 2)) return badreq(L, t, "the request is not a table");
  if (lua_getfield(L, 2, "op") != LUA_TSTRING)
    return badreq(L, t, "the request has no 'op'");
  op = lua_tostring(L, 3);
  for (o = ops; o->name && strcmp(o->name, op); o++) {}
  if (o->name == NULL) return badreq(L, t, "unknown op '%s'", op);
  st = o->fn(L, t, 2);
ran:
  if (st == ENDED) return 0;
  t->completed = eng_now();
  if (st == LUA_OK)
    eng_encok(L, t);
  else
    eng_encerr(L, t);
  return 0;
}
