/*
** test_threads.c — plush.connect{threads = n}: the controller and n
** engines as threads of this test process (shell/lua_threads.c), driven
** through the real client library (lua/plush) on a lua_State of the test.
**
** Each test is a Lua chunk run with plush.core preloaded from this binary,
** so that the sanitizers see the whole cluster: every thread joined and
** every allocation freed when the chunk's client is closed or collected
** and the state is closed (ASan's leak check runs at exit). The chunks
** synchronise on replies and events, never on sleeps.
*/
#include <criterion/criterion.h>

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

#include "lua_core.h"

/* Runs chunk on a fresh state with plush importable; fails the test with
** the Lua error. The state is closed after (clients still open included). */
static void run(const char *chunk) {
  const char *src = getenv("PLUSH_SOURCE_DIR");
  lua_State *L = luaL_newstate();
  char path[4096];
  cr_assert_not_null(src, "PLUSH_SOURCE_DIR is set by ctest");
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_plush_core);
  lua_setfield(L, -2, "plush.core");
  lua_pop(L, 1);
  snprintf(path, sizeof path, "%s/lua/?.lua;%s/lua/?/init.lua", src, src);
  lua_getglobal(L, "package");
  lua_pushstring(L, path);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  if (luaL_loadbuffer(L, chunk, strlen(chunk), "=test") != LUA_OK ||
      lua_pcall(L, 0, 0, 0) != LUA_OK) {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", lua_tostring(L, -1));
    lua_close(L);
    cr_assert_fail("%s", msg);
  }
  lua_close(L);
}

#define PRELUDE                                                               \
  "local plush = require 'plush'\n"                                          \
  "local errors = require 'plush.errors'\n"                                  \
  "local function eq(want, got, what)\n"                                     \
  "  if want ~= got then\n"                                                  \
  "    error(('%s: want %s, got %s'):format(what, tostring(want),\n"         \
  "      tostring(got)), 2)\n"                                               \
  "  end\n"                                                                  \
  "end\n"

TestSuite(threads, .timeout = 120);

Test(threads, execute_and_exact_values) {
  run(PRELUDE
      "local rc <close> = plush.connect{threads = 2}\n"
      "local ids = rc:ids()\n"
      "eq(2, #ids, '#ids'); eq(0, ids[1], 'id 0'); eq(1, ids[2], 'id 1')\n"
      "local r = rc:view():execute('return engine.id * 10')\n"
      "eq(0, r[1], 'engine 0'); eq(10, r[2], 'engine 1')\n"
      "local t = {nan = 0/0, nz = -0.0, big = (1 << 53) + 1,\n"
      "  s = 'a\\0b\\255', f = function(x) return x + 1 end}\n"
      "t.self = t\n"
      "local v = rc[1]\n"
      "v:push{t = t}\n"
      /* on the engine: every value as it was sent */
      "local bits, fz, ty, same, call = v:execute([[\n"
      "  return string.pack('<d', t.nan), 1 / t.nz, math.type(t.big),\n"
      "    t.self == t, t.f(41) ]])\n"
      "eq(string.pack('<d', t.nan), bits, 'NaN bits')\n"
      "eq(-math.huge, fz, '-0.0'); eq('integer', ty, '2^53+1 type')\n"
      "eq(true, same, 'cycle on the engine'); eq(42, call, 'function')\n"
      /* and back */
      "local g = v:pull('t')\n"
      "eq(string.pack('<d', t.nan), string.pack('<d', g.nan), 'NaN back')\n"
      "eq(-math.huge, 1 / g.nz, '-0.0 back')\n"
      "eq((1 << 53) + 1, g.big, '2^53+1 back')\n"
      "eq('integer', math.type(g.big), 'integer back')\n"
      "eq('a\\0b\\255', g.s, 'bytes back')\n"
      "eq(g, g.self, 'cycle back'); eq(8, g.f(7), 'function back')\n");
}

Test(threads, balanced_map_and_errors) {
  run(PRELUDE
      "local rc <close> = plush.connect{threads = 2}\n"
      "local items = {}\n"
      "for i = 1, 500 do items[i] = i end\n"
      "local out = rc:balanced():map(function(x) return x * x end, items)\n"
      "eq(500, #out, '#map')\n"
      "for i = 1, 500 do eq(i * i, out[i], 'map item ' .. i) end\n"
      "local ok, e = pcall(function()\n"
      "  return rc[0]:execute('local function inner() error(\"boom\") end\\n"
      "inner()')\n"
      "end)\n"
      "eq(false, ok, 'raised')\n"
      "assert(errors.is(e, 'RemoteError'), tostring(e))\n"
      "eq('execute:1: boom', e.message, 'message')\n"
      "eq(0, e.engine, 'engine')\n"
      "assert(e.traceback:find('stack traceback', 1, true), e.traceback)\n"
      "assert(e.traceback:find(\"inner\", 1, true), e.traceback)\n"
      /* os.exit would end this process: refused, the engine lives on */
      "ok, e = pcall(function() return rc[1]:execute('os.exit(3)') end)\n"
      "eq(false, ok, 'os.exit raised')\n"
      "assert(tostring(e):find('os.exit: this engine is a thread', 1, true),\n"
      "  tostring(e))\n"
      "eq(2, rc[1]:execute('return 1 + 1'), 'after os.exit')\n"
      /* an engine's Lua thread (and what it starts) has the caller's
      ** signal mask, not the cluster thread's, which blocks signals */
      "local f = io.open('/proc/thread-self/status')\n"
      "local mine = f:read('a'):match('SigBlk:%s*(%x+)'); f:close()\n"
      "eq(mine, rc[0]:execute([[local f = io.open('/proc/thread-self/status')\n"
      "  return f:read('a'):match('SigBlk:%s*(%x+)')]]), 'signal mask')\n");
}

Test(threads, interrupt_restart_and_ctrl_c) {
  run(PRELUDE
      "local core = require 'plush.core'\n"
      "local rc <close> = plush.connect{threads = 2}\n"
      "rc[0]:execute(\"kept = 'yes'\")\n"
      "local d = rc[0]:async():execute('while true do end')\n"
      "assert(not d:wait(0.2), 'the busy loop is running')\n"
      "local hit = rc:interrupt(0)\n"
      "eq(0, hit[1], 'interrupted id')\n"
      "local ok, e = pcall(d.get, d, 30)\n"
      "eq(false, ok, 'interrupted')\n"
      "assert(tostring(e):find('interrupted', 1, true), tostring(e))\n"
      "eq('yes', rc[0]:execute('return kept'), 'namespace kept')\n"
      /* Ctrl-C: SIGINT to this process while the client waits (sent by
      ** popen's child: system() would ignore SIGINT in the process) */
      "core.catch_sigint(true)\n"
      "ok, e = pcall(function()\n"
      "  return rc[1]:execute(('io.popen(\"kill -INT %d\"):close() '\n"
      "    .. 'while true do end')\n"
      "    :format(core.getpid()))\n"
      "end)\n"
      "core.catch_sigint(false)\n"
      "eq(false, ok, 'Ctrl-C raised')\n"
      "assert(errors.is(e, 'Interrupted'), tostring(e))\n"
      "eq(3, rc[1]:execute('return 3'), 'engine 1 after Ctrl-C')\n"
      /* restart: fresh namespaces, same ids */
      "local ids = rc:restart()\n"
      "eq(2, #ids, 'restarted')\n"
      "eq(nil, rc[0]:execute('return kept'), 'fresh namespace')\n"
      "local ok2, e2 = pcall(function() return rc[0]:execute('os.exit()') end)\n"
      "assert(not ok2 and tostring(e2):find('cannot exit', 1, true),\n"
      "  'os.exit still refused after a restart: ' .. tostring(e2))\n");
}

Test(threads, close_reopen_collect_add_shutdown) {
  run(PRELUDE
      "for round = 1, 3 do\n"
      "  local rc = plush.connect{threads = 2}\n"
      "  eq(round, rc[0]:execute('return ' .. round), 'round')\n"
      "  rc:close()\n"
      "  eq(true, rc.closed, 'closed')\n"
      "end\n"
      /* dropped without close: the collector stops and joins it */
      "do local rc = plush.connect{threads = 1}; rc[0]:execute('x = 1') end\n"
      "collectgarbage(); collectgarbage()\n"
      "local rc = plush.connect{threads = 1}\n"
      "local new = rc:add(2, 30)\n"
      "eq(2, #new, 'added'); eq(3, #rc:ids(), 'three engines')\n"
      "eq(new[2] * 2, rc[new[2]]:execute('return engine.id * 2'), 'new one')\n"
      "rc:shutdown()\n"
      "local ok, e = pcall(function() return rc[0]:execute('return 1') end)\n"
      "eq(false, ok, 'after shutdown')\n"
      "assert(errors.is(e, 'EngineError'), tostring(e))\n"
      "rc:close()\n"
      /* left open: lua_close stops it (the leak check sees the rest) */
      "OPEN = plush.connect{threads = 2}\n"
      "eq(1, OPEN[1]:execute('return engine.id'), 'left open')\n");
}

Test(threads, bad_input) {
  run(PRELUDE
      "local function fails(opts, want)\n"
      "  local ok, e = pcall(plush.connect, opts)\n"
      "  eq(false, ok, want)\n"
      "  assert(tostring(e):find(want, 1, true), tostring(e))\n"
      "end\n"
      "fails({threads = 0}, \"bad argument #1 to 'connect' (threads: an "
      "integer from 1 to 1024 expected)\")\n"
      "fails({threads = 'x'}, 'threads: an integer from 1 to 1024')\n"
      "fails({threads = 1.5}, 'threads: an integer from 1 to 1024')\n"
      "fails({threads = 2, profile = 'p'}, 'threads = n starts its own "
      "cluster')\n"
      "fails({threads = 2, memory_limit = -1}, 'memory_limit: an integer >= "
      "0 expected')\n"
      /* a namespace limit applies to each engine thread */
      "local rc <close> = plush.connect{threads = 1, memory_limit = 8 << 20}\n"
      "local ok, e = pcall(function()\n"
      "  return rc[0]:execute('local t = {} for i = 1, 1e8 do t[i] = i end')\n"
      "end)\n"
      "eq(false, ok, 'over the limit')\n"
      "assert(tostring(e):find('not enough memory', 1, true), tostring(e))\n"
      "eq(5, rc[0]:execute('return 5'), 'alive after')\n");
}

Test(threads, engine_messages_and_tuple_space) {
  run(PRELUDE
      "local rc <close> = plush.connect{threads = 2}\n"
      "local r = rc:view():apply(function()\n"
      "  local other = 1 - engine.id\n"
      "  engine.send(other, {engine.id, -0.0})\n"
      "  local v, from = engine.recv(other)\n"
      "  return {from * 10 + v[1], 1 / v[2]}\n"
      "end)\n"
      "eq(11, r[1][1], 'engine 0 heard engine 1')\n"
      "eq(0, r[2][1], 'engine 1 heard engine 0')\n"
      "eq(-math.huge, r[1][2], '-0.0 between engines')\n"
      "local ts = plush.tuplespace(rc)\n"
      "ts:out{'job', (1 << 53) + 1}\n"
      "eq((1 << 53) + 1, rc[1]:execute(\"return tuples:take{'job', "
      "tuples.ANY}[2]\"), 'taken on an engine')\n"
      "rc[0]:execute(\"tuples:out{'done', 7}\")\n"
      "eq(7, ts:take({'done', plush.ANY}):get()[2], 'taken by the client')\n");
}

/* engine.client() on engine threads (models.md, "Hierarchies"): a new
** socketpair link per namespace; tasks waiting on subtasks park. */
Test(threads, tasks_that_submit_tasks) {
  run(PRELUDE
      "local core = require 'plush.core'\n"
      "local rc <close> = plush.connect{threads = 2}\n"
      "local function fib(k)\n"
      "  if k < 2 then return k end\n"
      "  local lb = engine.client():balanced():async()\n"
      "  local a, b = lb:apply(fib, k - 1), lb:apply(fib, k - 2)\n"
      "  return a:get() + b:get()\n"
      "end\n"
      "eq(true, rc[0]:apply(function()\n"
      "  return package.preload['plush.core'] ~= nil end), 'plush.core preloaded')\n"
      "eq(610, rc:balanced():async():apply(fib, 15):get(300), 'fib(15)')\n"
      "local function parent(i)\n"
      "  local lb = engine.client():balanced():async()\n"
      "  local a, b = lb:apply(function(x) return 2 * x end, i),\n"
      "               lb:apply(function(x) return 3 * x end, i)\n"
      "  local s = a:get() + b:get()\n"
      "  print('parent ' .. i)\n"
      "  return s\n"
      "end\n"
      "local ds, lb = {}, rc:balanced{block = false, output = false}\n"
      "for i = 1, 1000 do ds[i] = lb:apply(parent, i) end\n"
      "for i = 1, 1000 do\n"
      "  eq(5 * i, ds[i]:get(300), 'parent ' .. i)\n"
      "  eq('parent ' .. i .. '\\n', ds[i].stdout, 'output of parent ' .. i)\n"
      "end\n"
      /* Ctrl-C while a parent is parked: the waiting client gets it (the
      ** engine's own client, in this process too, leaves it alone) */
      "core.catch_sigint(true)\n"
      "local ok, e = pcall(function()\n"
      "  return rc[0]:apply(function(pid)\n"
      "    return engine.client()[1]:async():apply(function(p)\n"
      "      io.popen('kill -INT ' .. p):close()\n"
      "      while true do end\n"
      "    end, pid):get()\n"
      "  end, core.getpid())\n"
      "end)\n"
      "core.catch_sigint(false)\n"
      "eq(false, ok, 'Ctrl-C raised')\n"
      "assert(errors.is(e, 'Interrupted'), tostring(e))\n"
      "rc:interrupt{1}\n"
      "eq(3, rc[1]:execute('return 3'), 'engine 1 after Ctrl-C')\n"
      "eq(0, rc[0]:execute('return engine.id'), 'engine 0 after Ctrl-C')\n");
}
