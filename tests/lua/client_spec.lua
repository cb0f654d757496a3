-- plush.client: events, output, control requests, lost connections, Ctrl-C.
local fake = require("fake_core").install()
local deferred = require "plush.deferred"
local errors = require "plush.errors"
local client = require "plush.client"

-- Replace io.stdout / io.stderr while f runs; returns what was written.
local function capture(f)
  local out, err = {}, {}
  local function sink(buf)
    return {write = function(self, ...)
      for i = 1, select("#", ...) do buf[#buf + 1] = tostring((select(i, ...))) end
      return self
    end, flush = function() end}
  end
  local so, se = io.stdout, io.stderr
  io.stdout, io.stderr = sink(out), sink(err)
  local ok, e = pcall(f)
  io.stdout, io.stderr = so, se
  assert(ok, e)
  return table.concat(out), table.concat(err)
end

describe("client", function()
  local rc
  local saved
  before_each(function()
    fake.reset{n = 4}
    rc = fake.client()
    saved = deferred.on_unhandled
    deferred.on_unhandled = function() end
  end)
  after_each(function()
    rc:close()
    -- errors these tests leave unhandled are reported at collection
    collectgarbage()
    collectgarbage()
    deferred.on_unhandled = saved
  end)

  describe("control requests", function()
    it("ids are sorted", function()
      assert.same({0, 1, 2, 3}, rc:ids())
    end)

    it("rc[i] is a one-engine view, rc:view{...} a list view", function()
      assert.equal(2, rc[2].targets)
      assert.equal("<DirectView 2>", tostring(rc[2]))
      assert.equal("<DirectView {0, 2}>", tostring(rc:view{0, 2}))
      assert.equal("<DirectView all async>", tostring(rc:view{block = false}))
    end)

    it("engines, history, queue_status, status", function()
      local e = rc:engines()
      assert.equal(4, #e)
      assert.equal("idle", e[1].state)
      local d = rc[0]:async():execute("return 1")
      d:get()
      assert.same({d.id}, rc:history())
      local ok, err = pcall(rc.history, rc, -1)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'history' %(a count from 0 expected%)", err)
      assert.equal(0, rc:queue_status().unassigned)
      assert.equal(4, rc:status().engines)
    end)

    it("result fetches a stored value or raises its error", function()
      local ok = rc[1]:async():execute("return 'v', 2")
      local bad = rc[1]:async():execute("error('stored')")
      rc:wait()
      assert.same({"v", 2}, {rc:result(ok.id)})
      local good, e = pcall(rc.result, rc, bad.id)
      assert.is_false(good)
      assert.is_true(errors.is(e, "RemoteError"))
      assert.equal(bad.id, e.id)
      good, e = pcall(rc.result, rc, 12345)
      assert.is_false(good)
      assert.is_true(errors.is(e, "BadRequest"))
    end)

    it("result accepts a wrapped {status, payload} answer", function()
      local conn = rc.conn
      local real = conn.ctrl
      conn.ctrl = function(self, msg)
        if msg.op ~= "result" then return real(self, msg) end
        local rid = real(self, {op = "ids"})
        local ev = self.queue[#self.queue]
        ev.value = {status = "ok", payload = {r = {n = 1, "wrapped"}}}
        return rid
      end
      assert.equal("wrapped", rc:result(1))
      conn.ctrl = nil
    end)

    it("interrupt sends the targets", function()
      assert.same({1}, rc:interrupt(1))
      assert.same({1}, fake.state.interrupts[1].targets)
      rc:interrupt()
      assert.is_nil(fake.state.interrupts[2].targets)
    end)

    it("shutdown asks the controller", function()
      assert.is_true(rc:shutdown())
      assert.is_true(fake.state.shutdown)
    end)
  end)

  describe("output", function()
    it("is written at once, tagged, line by line", function()
      local out = capture(function()
        rc[1]:execute("io.write('a') io.write('b\\nc') print(' d') io.write('tail')")
      end)
      assert.equal("[engine 1] ab\n[engine 1] c d\n[engine 1] tail\n", out)
    end)

    it("goes to stderr for the stderr stream", function()
      local out, err = capture(function()
        rc[0]:execute("io.stderr:write('warn\\n') print('ok')")
      end)
      assert.equal("[engine 0] ok\n", out)
      assert.equal("[engine 0] warn\n", err)
    end)

    it("is kept in d.stdout and d.stderr", function()
      local d
      local out = capture(function()
        d = rc[0]:with{output = false, block = false}:execute("print('x') io.stderr:write('e')")
        d:get()
      end)
      assert.equal("", out)
      assert.equal("x\n", d.stdout)
      assert.equal("e", d.stderr)
    end)

    it("can go to a function", function()
      local lines = {}
      rc:view{2, 3}:with{output = function(line, engine, stream)
        lines[#lines + 1] = {line, engine, stream}
      end}:execute("print('hi ' .. engine.id)")
      assert.same({{"hi 2", 2, 1}, {"hi 3", 3, 1}}, lines)
    end)

    it("a failing handler is reported once per line with its traceback, and the task goes on",
      function()
      local reports = {}
      deferred.on_unhandled = function(e, d, where) reports[#reports + 1] = {e, d, where} end
      local v = rc:view{2}:with{output = function(line) error("bad line " .. line) end}
      assert.same({42}, v:execute("print('a') print('b') return 42"))
      assert.equal(2, #reports)
      local e, d, where = reports[1][1], reports[1][2], reports[1][3]
      assert.is_true(errors.is(e, "CallbackError"))
      assert.matches("bad line a$", e.message)
      assert.matches("stack traceback:", e.traceback)
      assert.is_nil(d)
      assert.equal("output handler", where)
      assert.matches("bad line b$", reports[2][1].message)
    end)

    it("of several engines interleaves by line", function()
      local out = capture(function()
        rc:view{0, 1}:execute("print(engine.id) sleep(1) print(engine.id)")
      end)
      assert.equal("[engine 0] 0\n[engine 1] 1\n[engine 0] 0\n[engine 1] 1\n", out)
    end)
  end)

  describe("events", function()
    it("engine_up and engine_down update the ids cache", function()
      rc:ids()
      fake.add(5)
      fake.kill(0)
      rc:pump(0)
      assert.same({1, 2, 3, 5}, rc:_engine_ids())
    end)

    it("on_event sees them", function()
      local seen = {}
      rc.on_event = function(v) seen[#seen + 1] = v.event .. " " .. v.id end
      fake.add(9)
      rc:pump(0)
      assert.same({"engine_up 9"}, seen)
    end)

    it("a failing on_event is reported as an rc.on_event CallbackError, and the ids still update",
      function()
      local reports = {}
      deferred.on_unhandled = function(e, d, where) reports[#reports + 1] = {e, d, where} end
      rc.on_event = function() error("boom") end
      rc:ids()
      fake.add(9)
      rc:pump(0)
      assert.equal(1, #reports)
      assert.equal("CallbackError", reports[1][1].kind)
      assert.matches("boom$", reports[1][1].message)
      assert.equal("rc.on_event", reports[1][3])
      assert.same({0, 1, 2, 3, 9}, rc:_engine_ids())
    end)
  end)

  describe("waiting", function()
    it("wait is true once everything answered", function()
      rc[0]:async():execute("sleep(3)")
      assert.is_false(rc:wait(1))
      assert.is_true(rc:wait())
      assert.is_nil(next(rc.pending))
    end)
  end)

  describe("a lost connection", function()
    it("fails every pending Deferred with EngineError", function()
      local d = rc[0]:async():execute("sleep(5)")
      local g = rc:view{1, 2}:async():execute("sleep(5)")
      fake.drop("connection reset by peer")
      local ok, e = pcall(d.get, d)
      assert.is_false(ok)
      assert.is_true(errors.is(e, "EngineError"))
      assert.equal("EngineError on engine 0: controller connection lost: connection reset by peer",
        tostring(e))
      ok, e = pcall(g.get, g)
      assert.is_false(ok)
      assert.is_true(errors.is(e, "CompositeError"))
    end)

    it("makes later requests fail at once", function()
      fake.drop("gone")
      rc:pump(0)
      local ok, e = pcall(rc.ids, rc)
      assert.is_false(ok)
      assert.equal("EngineError: controller connection lost: gone", tostring(e))
    end)
  end)

  describe("Ctrl-C", function()
    it("interrupts the engines of pending tasks and raises Interrupted", function()
      fake.sigint()
      local ok, e = pcall(function() return rc:view{1, 3}:execute("sleep(10)") end)
      assert.is_false(ok)
      assert.is_true(errors.is(e, "Interrupted"))
      assert.equal("interrupted", tostring(e))
      local last = fake.state.ctrls[#fake.state.ctrls]
      assert.equal("interrupt", last.op)
      assert.same({1, 3}, last.targets)
      assert.is_false(fake.state.catching)
    end)

    it("interrupts every engine for a balanced task", function()
      fake.sigint()
      local ok = pcall(function() return rc:balanced():execute("sleep(10)") end)
      assert.is_false(ok)
      local last = fake.state.ctrls[#fake.state.ctrls]
      assert.equal("interrupt", last.op)
      assert.is_nil(last.targets)
    end)

    it("drops the interrupted tasks' output and says how much in one line", function()
      local lines = {}
      local v = rc:view(1, {output = function(line, engine, stream)
        lines[#lines + 1] = {line, engine, stream}
      end})
      fake.sigint()
      local ok, e = pcall(function()
        return v:execute("for i = 1, 10 do print(i) sleep(1) end")
      end)
      assert.is_false(ok)
      assert.is_true(errors.is(e, "Interrupted"))
      assert.is_true(rc:wait())
      assert.same({{"(10 lines, 21 bytes of output dropped after the interrupt)", 1, 2}}, lines)
    end)

    -- an async balanced view whose output lines are collected: lb, lines
    local function collected()
      local lines = {}
      return rc:balanced():with{output = function(line, engine, stream)
        lines[#lines + 1] = {line, engine, stream}
      end}:async(), lines
    end

    it("tags a balanced task's unfinished line with the engine that wrote it", function()
      local lb, lines = collected()
      lb:execute("io.write('half a line') sleep(10)")
      rc:pump(1) -- the output comes; the line waits for its end
      assert.same({}, lines)
      fake.sigint()
      local ok, e = pcall(rc.pump, rc, 1)
      assert.is_false(ok)
      assert.is_true(errors.is(e, "Interrupted"))
      assert.equal(1, #lines)
      assert.equal("half a line", lines[1][1])
      assert.equal(1, lines[1][3])
      assert.is_true(math.type(lines[1][2]) == "integer", tostring(lines[1][2]))
    end)

    it("tags a balanced task's dropped output count with its engine when the link goes", function()
      local lb, lines = collected()
      lb:execute("sleep(1) for i = 1, 5 do print(i) sleep(1) end")
      fake.sigint()
      assert.is_false(pcall(rc.pump, rc, 0.5)) -- Interrupted: muted from now on
      for _ = 1, 3 do rc:pump(1) end -- two lines come, counted
      assert.same({}, lines)
      fake.drop("gone")
      rc:pump(0)
      assert.equal(1, #lines)
      assert.equal("(2 lines, 4 bytes of output dropped after the interrupt)", lines[1][1])
      assert.is_true(math.type(lines[1][2]) == "integer", tostring(lines[1][2]))
      assert.equal(2, lines[1][3])
    end)

    it("takes an 'interrupted' raised in an output handler for a Ctrl-C", function()
      local v = rc:view(1, {output = function() error("stdin:1: interrupted") end})
      local ok, e = pcall(function() return v:execute("print(1) sleep(10)") end)
      assert.is_false(ok)
      assert.is_true(errors.is(e, "Interrupted"))
      assert.equal("interrupt", fake.state.ctrls[#fake.state.ctrls].op)
    end)

    it("is left alone when catch_sigint is off", function()
      rc.catch_sigint = false
      fake.sigint()
      assert.equal(1, rc[0]:execute("return 1"))
    end)
  end)

  describe("close", function()
    it("fails what is pending and refuses more", function()
      local d = rc[0]:async():execute("sleep(1)")
      rc:close()
      rc:close()
      assert.is_true(errors.is(d:error(), "EngineError"))
      assert.is_false(rc.conn.open)
      local ok, e = pcall(rc.ids, rc)
      assert.is_false(ok)
      assert.matches("the client is closed", e)
    end)

    it("says in one line what nobody will look at; each failure stays in its Deferred", function()
      local reports = {}
      deferred.on_unhandled = function(e, d, where) reports[#reports + 1] = {e, d, where} end
      local lb = rc:balanced():async()
      local kept = lb:apply(function() sleep(1) end)
      local watched = lb:apply(function() sleep(1) end)
      local seen
      watched:add_errback(function(e) seen = e end)
      for _ = 1, 500 do lb:apply(function() sleep(1) end) end
      rc:close()
      collectgarbage()
      collectgarbage()
      assert.equal(1, #reports)
      assert.equal("501 tasks in flight failed (EngineError: the client was closed)", reports[1][1])
      assert.equal("rc:close()", reports[1][3])
      assert.equal("the client was closed", seen.message)
      assert.is_true(errors.is(kept:error(), "EngineError"))
      assert.equal("the client was closed", kept:error().message)
    end)

    it("works with <close>", function()
      local conn
      do
        local c <close> = client.new(fake.core.connect("h", 1, "k"))
        conn = c.conn
      end
      assert.is_false(conn.open)
    end)
  end)
end)
