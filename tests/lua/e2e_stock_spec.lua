-- End to end: an engine's namespace behaves as a stock Lua 5.4 state
-- (issue 12, item 10). Each case is a chunk run on a real engine with
-- view:execute and here, in this lua5.4, with pcall(load(code, "=execute"))
-- -- a call without a message handler, as a stock state runs code; the
-- results (or the error value) must be the same. Runs against the cluster
-- tests/e2e/lua_specs.sh starts.
local plush, file = require("real_cluster")("e2e stock")
if not plush then return end
local errors = plush.errors

-- Runs code here: true and its results packed, or false and the error.
local function here(code)
  local f = assert(load(code, "=execute"))
  local r = table.pack(pcall(f))
  if r[1] then return true, table.pack(table.unpack(r, 2, r.n)) end
  return false, r[2]
end

-- Runs code on engine e the same way: true and results packed, or false,
-- the error value (the RemoteError's value, or its message when the value
-- was a string) and the RemoteError.
local function there(e, code)
  local r = table.pack(pcall(e.execute, e, code))
  if r[1] then return true, table.pack(table.unpack(r, 2, r.n)) end
  local err = r[2]
  assert(errors.is(err, "RemoteError"), tostring(err))
  if err.value ~= nil then return false, err.value, err end
  return false, err.message, err
end

local every_type = [[
  local vals = {n = 8, nil, false, true, 42, 4.5, "s", {k = "v"}, print}
  local out = {}
  for i = 1, vals.n do
    local v = vals[i]
    local f, e = load(function() error(v, 0) end)
    out[i] = {f == nil, type(e), rawequal(e, v)}
  end
  return out
]]

local cases = {
  -- errors raised in load's reader come back from load untouched
  {"reader error string", [[return select(2, load(function() error("hhi") end))]]},
  {"reader error of every type", every_type},
  {"calls.lua: cannotload", [[
    local function cannotload(msg, a, b)
      assert(not a and string.find(b, msg))
      return b
    end
    local r = {}
    r[1] = cannotload("hhi", load(function() error("hhi") end))
    r[2] = cannotload("reader function must return a string",
                      load(function() return {} end))
    local t = {"return ", "1 + ", "41"}
    local i = 0
    r[3] = load(function() i = i + 1 return t[i] end)()
    r[4] = cannotload("unexpected symbol", load("x ++"))
    r[5] = cannotload("attempt to load a text chunk", load("return 1", "c", "b"))
    return r
  ]]},
  {"reader error inside a pcall inside load", [[
    local ok, e = pcall(load, function() error({code = 7}) end)
    return ok, select(2, load(function() error({code = 7}) end)).code
  ]]},
  -- error values of every type through pcall and error
  {"pcall keeps error values", [[
    local out = {}
    for i, v in ipairs{false, true, 42, 4.5, "s", {1}} do
      local ok, e = pcall(error, v)
      out[i] = {ok, type(e), rawequal(e, v)}
    end
    local ok, e = pcall(error)
    out[#out + 1] = {ok, e == nil}
    return out
  ]]},
  {"xpcall with a handler of the user's", [[
    return xpcall(function() error({1, 2}) end, function(e) return #e end)
  ]]},
  {"error with a level", [[
    local function f() error("lvl", 2) end
    return pcall(function() f() end)
  ]]},
  -- __close sees the error untouched
  {"__close gets the error value", [[
    local saw
    pcall(function()
      local x <close> = setmetatable({}, {__close = function(_, e) saw = e end})
      error("boom")
    end)
    return saw
  ]]},
  -- __gc: runs, and its errors are warnings, not errors
  {"__gc runs and its error is a warning", [[
    GC_SAW = nil
    setmetatable({}, {__gc = function() GC_SAW = true error("in gc") end})
    collectgarbage() collectgarbage()
    local r = GC_SAW
    GC_SAW = nil
    return r
  ]]},
  -- coroutines
  {"coroutine errors of every kind", [[
    local r = {}
    local co = coroutine.create(function() error({x = 1}) end)
    local ok, e = coroutine.resume(co)
    r[1] = {ok, type(e), e.x, coroutine.status(co)}
    r[2] = {pcall(coroutine.wrap(function() error("w") end))}
    r[3] = {pcall(coroutine.wrap(function() error(12) end))}
    co = coroutine.create(function()
      local x <close> = setmetatable({}, {__close = function(_, e) r[5] = e end})
      coroutine.yield(1)
    end)
    coroutine.resume(co)
    r[4] = {coroutine.close(co)}
    co = coroutine.create(function()
      local x <close> = setmetatable({}, {__close = function() error("c") end})
      coroutine.yield(1)
    end)
    coroutine.resume(co)
    r[6] = {coroutine.close(co)}
    r[7] = {coroutine.isyieldable(), coroutine.running() ~= nil}
    return r
  ]]},
  {"the main thread's coroutine functions (a task runs in a coroutine)", [[
    local co, main = coroutine.running()
    return main, coroutine.status(co), coroutine.isyieldable(),
      coroutine.isyieldable(co), pcall(coroutine.yield, 1)
  ]]},
  {"coroutine.yield called at the top level", [[
    return pcall(load("coroutine.yield(1)"))
  ]]},
  {"warn", [[warn("@on") warn("from ", "the test") warn("@off") warn("unseen") return true]]},
  {"collectgarbage options", [[
    -- the lua5.4 program switches its state to generational mode; a
    -- state as luaL_newstate makes it (an engine's) is incremental
    local mode = collectgarbage("incremental")
    local r = {}
    r[1] = collectgarbage("isrunning")
    collectgarbage("stop")
    r[2] = collectgarbage("isrunning")
    collectgarbage("restart")
    r[3] = collectgarbage("isrunning")
    r[4] = math.type(collectgarbage("count"))
    r[5] = type(collectgarbage("step", 0))
    r[6] = collectgarbage("generational")
    r[7] = collectgarbage("incremental")
    r[8] = collectgarbage("incremental")
    r[9] = collectgarbage()
    r[10] = math.type(collectgarbage("setpause", 200))
    r[11] = math.type(collectgarbage("setstepmul", 100))
    collectgarbage("setpause", 200) collectgarbage("setstepmul", 100)
    r[12] = select("#", pcall(collectgarbage, "nosuch"))
    r[13] = select(2, pcall(collectgarbage, "nosuch"))
    collectgarbage(mode)
    return r
  ]]},
  {"debug hooks set by user code", [[
    local lines = 0
    local function h(ev) lines = lines + 1 end
    debug.sethook(h, "l")
    local a = 1
    a = a + 1
    local f, m, c = debug.gethook()
    debug.sethook()
    return lines >= 2, f == h, m, c, debug.gethook()
  ]]},
  {"debug.traceback and getinfo", [[
    local function f() return debug.getinfo(1, "Sl") end
    local i = f()
    return i.short_src, i.currentline, i.what, type(debug.traceback("x"))
  ]]},
}

-- Errors that end the execute: what the client sees must carry the value.
local raising = {
  {"a string", [[error("boom")]]},
  {"a string at level 0", [[error("boom", 0)]]},
  {"an integer", [[error(42)]]},
  {"a float", [[error(4.5)]]},
  {"false", [[error(false)]]},
  {"a table", [[error({code = 7})]]},
  {"a table with __tostring",
   [[error(setmetatable({}, {__tostring = function() return "custom" end}))]]},
  {"an error replaced by __close's", [[
    local x <close> = setmetatable({}, {__close = function() error("in close", 0) end})
    error("boom")
  ]]},
  {"an error from a coroutine.wrap", [[coroutine.wrap(function() error("w") end)()]]},
  {"a bad argument to coroutine.resume", [[coroutine.resume(1)]]},
  {"a bad argument to coroutine.wrap", [[coroutine.wrap(1)]]},
  {"a runtime error", [[local t = nil; return t.x]]},
}

describe("e2e stock", function()
  local rc, e

  setup(function()
    rc = plush.connect{file = file, timeout = 20}
    e = rc[rc:ids()[1]]
  end)
  teardown(function() rc:close() end)

  for _, c in ipairs(cases) do
    it("as stock Lua: " .. c[1], function()
      local ok1, r1 = here(c[2])
      local ok2, r2 = there(e, c[2])
      assert.same({ok1, r1}, {ok2, r2})
    end)
  end

  for _, c in ipairs(raising) do
    it("an error value that ends the execute: " .. c[1], function()
      local ok1, v1 = here(c[2])
      local ok2, v2, err = there(e, c[2])
      assert.is_false(ok1)
      assert.is_false(ok2)
      assert.same(v1, v2)
      assert.is_string(err.message)
      assert.matches("^stack traceback:\n", err.traceback)
      if type(v1) == "string" then assert.equal(v1, err.message) end
    end)
  end

  it("__close sees the error value untouched when the execute fails", function()
    local code = [[
      local x <close> = setmetatable({}, {__close = function(_, e) CLOSE_SAW = e end})
      error("boom")
    ]]
    here(code)
    local want = rawget(_G, "CLOSE_SAW")
    rawset(_G, "CLOSE_SAW", nil)
    there(e, code)
    assert.equal("execute:2: boom", want)
    assert.equal(want, e:execute("local v = CLOSE_SAW CLOSE_SAW = nil return v"))
  end)

  it("an error object whose __tostring fails still comes back whole", function()
    local ok, err = pcall(e.execute, e, [[
      error(setmetatable({code = 3}, {__tostring = function() error("bad tostring", 0) end}))
    ]])
    assert.is_false(ok)
    assert.equal("(error object is a table value; its __tostring failed: bad tostring)",
                 err.message)
    assert.same({code = 3}, err.value)
    assert.matches("^stack traceback:\n", err.traceback)
  end)

  it("the traceback of a failed execute is the error's", function()
    local ok, err = pcall(e.execute, e, "local function deep() error('d') end\ndeep()")
    assert.is_false(ok)
    assert.equal("execute:1: d", err.message)
    assert.matches("in %a+ 'deep'", err.traceback)
    assert.equal(1, err.line)
    assert.equal("execute", err.chunk)
  end)
end)
