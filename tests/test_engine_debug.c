/*
** test_engine_debug.c — engine_debug.c's capture of a failed call's
** frames and its store of chunks, on a plain Lua state: a message
** handler as the engine's (engine_ops.c) calls eng_dbg_capture. Checked:
** the frames, locals, upvalues and varargs kept; the bounds; the previous
** capture freed by the next error; the error value and what pcall
** returns unchanged. Under build-asan, lua_close frees everything.
*/
#include <criterion/criterion.h>

#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "engine_int.h"

static lua_State *L;

static int handler(lua_State *L_) {
  lua_settop(L_, 1);
  eng_dbg_capture(L_, 1, 1, 0);
  return 1;
}

/* Runs code under the handler; returns the pcall status. */
static int run(const char *code) {
  int st;
  lua_pushcfunction(L, handler);
  cr_assert_eq(luaL_loadstring(L, code), LUA_OK, "%s", lua_tostring(L, -1));
  st = lua_pcall(L, 0, 0, 1);
  if (st != LUA_OK) lua_setglobal(L, "errvalue");
  lua_settop(L, 0);
  return st;
}

/* A Lua expression over `cap` (the capture) that must be true. */
static void ok(const char *expr) {
  char src[1024];
  snprintf(src, sizeof src,
           "local cap = debug.getregistry()['plush.debug'] return %s", expr);
  cr_assert_eq(luaL_dostring(L, src), LUA_OK, "%s: %s", expr,
               lua_tostring(L, -1));
  cr_assert(lua_toboolean(L, -1), "not true: %s", expr);
  lua_settop(L, 0);
}

static void setup(void) {
  L = luaL_newstate();
  luaL_openlibs(L);
}

static void teardown(void) { lua_close(L); }

TestSuite(engine_debug, .init = setup, .fini = teardown);

Test(engine_debug, frames_locals_upvalues_varargs) {
  cr_assert_eq(run("local up = 'U'\n"
                   "local function inner(x, ...) local y = x * 2; error('boom') end\n"
                   "local function mid(a) local m = a + 1; inner(m, 'v1', nil, 'v3') end\n"
                   "function outer() local secret = 42; mid(secret) return up end\n"
                   "outer()"),
               LUA_ERRRUN);
  ok("cap.err == errvalue and errvalue:match('boom$')");
  ok("cap[1].what == 'C' and cap[1].name == 'error'");
  ok("cap[2].name == 'inner' and cap[2].currentline == 2");
  ok("cap[2].lnames[1] == 'x' and cap[2].lvals[1] == 43 and cap[2].lvals[2] == 86");
  ok("cap[2].va.n == 3 and cap[2].va[1] == 'v1' and cap[2].va[2] == nil and cap[2].va[3] == 'v3'");
  ok("cap[3].name == 'mid' and cap[3].lvals[1] == 42 and cap[3].lnames[2] == 'm'");
  ok("cap[3].unames[1] == 'inner' and type(cap[3].uvals[1]) == 'function'");
  ok("cap[4].name == 'outer' and cap[4].lnames[1] == 'secret' and cap[4].lvals[1] == 42");
  ok("cap[4].unames[2] == 'up' and cap[4].uvals[2] == 'U'");
  ok("cap[5].what == 'main' and cap.n == 5 and cap[6] == nil and not cap.more");
  ok("type(cap[2].func) == 'function' and cap[2].short_src:find('string') ~= nil");
}

Test(engine_debug, bounded_and_replaced) {
  cr_assert_eq(run("local function deep(n) local a, b = n, {n} if n == 0 then error('bottom') end "
                   "return deep(n - 1) + 1 end deep(1000)"),
               LUA_ERRRUN);
  ok("cap.n == 32 and cap.more == true and cap[33] == nil");
  ok("cap[2].lvals[1] == 0 and cap[3].lvals[1] == 1");
  cr_assert_eq(run("local t = {} local code = {'return function(...) '}\n"
                   "for i = 1, 100 do code[#code + 1] = 'local v' .. i .. ' = ' .. i .. ' ' end\n"
                   "code[#code + 1] = 'error(\"many\") end'\n"
                   "load(table.concat(code))()(table.unpack(t, 1, 150))"),
               LUA_ERRRUN);
  ok("cap[2].lvals.n == 64 and cap[2].lvals[64] == 64 and cap[2].va.n == 64");
  /* the previous capture (the deep one) is gone: its tables collectable */
  ok("cap.err:match('many$') ~= nil");
  /* a value only the capture holds lives until the next error */
  cr_assert_eq(run("W = setmetatable({}, {__mode = 'v'})\n"
                   "local function f() local big = {} W[1] = big error('held') end f()"),
               LUA_ERRRUN);
  ok("cap[2].lvals[1] == W[1]");
  ok("(function() collectgarbage() collectgarbage() return W[1] ~= nil end)()");
  cr_assert_eq(run("error('next')"), LUA_ERRRUN);
  ok("(function() collectgarbage() collectgarbage() return W[1] == nil end)()");
  ok("cap.err:match('next$') and cap[1].name == 'error'");
}

Test(engine_debug, error_values_and_pcall_unchanged) {
  cr_assert_eq(run("local t = setmetatable({}, {__index = function() error('meta') end})\n"
                   "local ok, e = pcall(error, t) assert(not ok and e == t)\n"
                   "ok, e = pcall(error, 'x', 0) assert(e == 'x')\n"
                   "ok, e = pcall(error) assert(e == nil)\n"
                   "error(t)"),
               LUA_ERRRUN);
  ok("getmetatable(errvalue) ~= nil and cap.err == errvalue");
  /* a caught error inside does not replace the capture */
  cr_assert_eq(run("error('first')"), LUA_ERRRUN);
  cr_assert_eq(run("pcall(error, 'caught') return 1"), LUA_OK);
  ok("cap.err:match('first$') ~= nil");
  /* a stack overflow: the error is Lua's own, whatever the capture did */
  cr_assert_eq(run("local function f() return 1 + f() end f()"), LUA_ERRRUN);
  lua_getglobal(L, "errvalue");
  cr_assert(strstr(lua_tostring(L, -1), "stack overflow") != NULL, "%s",
            lua_tostring(L, -1));
  lua_settop(L, 0);
}

Test(engine_debug, chunks_kept_bounded) {
  char code[64];
  for (int i = 1; i <= 300; i++) {
    snprintf(code, sizeof code, "x = %d", i);
    lua_pushstring(L, code);
    eng_dbg_keep(L, -1, "=execute");
    lua_pop(L, 1);
  }
  cr_assert_eq(luaL_dostring(L, "local c = debug.getregistry()['plush.chunks']\n"
                                "return c.n == 256 and c[1].code == 'x = 45' and "
                                "c[256].code == 'x = 300' and c[256].name == '=execute' "
                                "and c[257] == nil"),
               LUA_OK);
  cr_assert(lua_toboolean(L, -1));
  lua_settop(L, 0);
  /* by bytes: a 1 MiB chunk is too big to keep; 900 KiB ones, 4 fit */
  for (int i = 0; i < 6; i++) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int k = 0; k < 900 * 1024; k++) luaL_addchar(&b, i == 5 ? 'z' : (char)('a' + i));
    luaL_pushresult(&b);
    eng_dbg_keep(L, -1, "=execute");
    lua_pop(L, 1);
  }
  cr_assert_eq(luaL_dostring(L, "local c = debug.getregistry()['plush.chunks']\n"
                                "local total = 0 for i = 1, c.n do total = total + #c[i].code end\n"
                                "return total <= 4 * 1024 * 1024 and c[c.n].code:sub(1, 1) == 'z' "
                                "and c.n < 256"),
               LUA_OK);
  cr_assert(lua_toboolean(L, -1));
}

/* A chunk run again right after itself is kept once; `bytes` counts the
** kept chunks' code through drops. */
Test(engine_debug, chunks_repeated_kept_once) {
  static const char *const runs[][2] = {
      {"x = 1", "=execute"}, {"x = 1", "=execute"}, {"x = 1", "=other"},
      {"x = 1", "=other"},   {"y = 22", "=execute"}, {"x = 1", "=execute"}};
  for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
    lua_pushstring(L, runs[i][0]);
    eng_dbg_keep(L, -1, runs[i][1]);
    lua_pop(L, 1);
  }
  cr_assert_eq(luaL_dostring(L, "local c = debug.getregistry()['plush.chunks']\n"
                                "return c.n == 4 and c.bytes == 21 and c[1].name == '=execute' "
                                "and c[2].name == '=other' and c[3].code == 'y = 22' "
                                "and c[4].code == 'x = 1' and c[5] == nil"),
               LUA_OK);
  cr_assert(lua_toboolean(L, -1));
  lua_settop(L, 0);
  /* a long chunk (its own string each time, not interned) run twice */
  for (int i = 0; i < 2; i++) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int k = 0; k < 20; k++) luaL_addstring(&b, "x = x + 1 ");
    luaL_pushresult(&b);
    eng_dbg_keep(L, -1, "=execute");
    lua_pop(L, 1);
  }
  cr_assert_eq(luaL_dostring(L, "local c = debug.getregistry()['plush.chunks']\n"
                                "return c.n == 5 and #c[5].code == 200 and c.bytes == 221"),
               LUA_OK);
  cr_assert(lua_toboolean(L, -1));
  lua_settop(L, 0);
  for (int i = 1; i <= 300; i++) {
    char code[32];
    snprintf(code, sizeof code, "z = %d", i);
    lua_pushstring(L, code);
    eng_dbg_keep(L, -1, "=execute");
    lua_pop(L, 1);
  }
  cr_assert_eq(luaL_dostring(L, "local c = debug.getregistry()['plush.chunks']\n"
                                "local total = 0 for i = 1, c.n do total = total + #c[i].code end\n"
                                "return c.n == 256 and c.bytes == total and c[1].code == 'z = 45'"),
               LUA_OK);
  cr_assert(lua_toboolean(L, -1));
}
