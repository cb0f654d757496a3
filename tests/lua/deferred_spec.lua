-- plush.deferred: Twisted-style chains, waiting, combining.
require("fake_core").install()
local deferred = require "plush.deferred"
local errors = require "plush.errors"

-- A tiny event loop: `later(f)` queues f; pump(timeout) runs one queued
-- function, or lets `timeout` seconds of virtual time pass.
local function loop()
  local l = {clock = 0, queue = {}, pumps = 0}
  function l.later(f) l.queue[#l.queue + 1] = f end
  function l.pump(timeout)
    l.pumps = l.pumps + 1
    local f = table.remove(l.queue, 1)
    if f then
      f()
    elseif timeout then
      l.clock = l.clock + timeout
    else
      error("would block forever")
    end
  end
  function l.new()
    return deferred.new{pump = l.pump, clock = function() return l.clock end}
  end
  return l
end

describe("Deferred", function()
  local saved
  before_each(function()
    saved = deferred.on_unhandled
    deferred.on_unhandled = function() end
  end)
  after_each(function() deferred.on_unhandled = saved end)

  describe("chains", function()
    it("passes a callback's return values to the next callback", function()
      local d = deferred.new()
      local seen
      assert.equal(d, d:add_callback(function(x) return x + 1, "two" end))
      d:add_callback(function(a, b) seen = {a, b} return a * 10 end)
      d:callback(1)
      assert.same({2, "two"}, seen)
      assert.same({20}, {d:get()})
    end)

    it("runs callbacks added after firing at once", function()
      local d = deferred.new():callback(5)
      local got
      d:add_callback(function(x) got = x end)
      assert.equal(5, got)
    end)

    it("keeps every value, nils included", function()
      local d = deferred.new():callback(nil, 2, nil)
      assert.same(table.pack(nil, 2, nil), table.pack(d:get()))
    end)

    it("skips callbacks to the next errback when a callback raises", function()
      local d = deferred.new()
      local skipped, caught = true, nil
      d:add_callback(function() error("bad value") end)
      d:add_callback(function() skipped = false end)
      d:add_errback(function(e) caught = e return "recovered" end)
      d:callback(1)
      assert.is_true(skipped)
      assert.is_true(errors.is(caught, "CallbackError"))
      assert.matches("bad value", caught.message)
      assert.matches("stack traceback", caught.traceback)
      assert.matches("bad value", tostring(caught))
      assert.equal("recovered", d:get())
    end)

    it("passes error objects raised in callbacks unchanged", function()
      local e = errors.RemoteError{engine = 1, message = "execute:1: boom"}
      local d = deferred.new()
      d:add_callback(function() error(e) end)
      d:callback()
      local ok, got = pcall(d.get, d)
      assert.is_false(ok)
      assert.equal(e, got)
    end)

    it("recovers when an errback returns normally", function()
      local d = deferred.new()
      d:add_errback(function(e) return "handled " .. e end)
      d:add_callback(function(s) return s .. "!" end)
      d:errback("oops")
      assert.equal("handled oops!", d:get())
    end)

    it("stays failed when an errback returns deferred.fail(e)", function()
      local d = deferred.new()
      local after = false
      d:add_errback(function(e) return deferred.fail("again: " .. e) end)
      d:add_callback(function() after = true end)
      d:errback("oops")
      assert.is_false(after)
      assert.equal("again: oops", d:error())
    end)

    it("fails from a callback that returns deferred.fail(e)", function()
      local d = deferred.new()
      d:add_callback(function() return deferred.fail("no") end)
      d:callback(1)
      assert.equal("error", d:state())
      assert.has_error(function() d:get() end, "no")
    end)

    it("runs add_both on either outcome", function()
      local log = {}
      deferred.new():add_both(function(...) log[#log + 1] = {...} end):callback(1)
      deferred.new():add_both(function(e) log[#log + 1] = e return "fine" end):errback("e")
      assert.same({{1}, "e"}, log)
    end)

    it("runs only one function of add_callbacks", function()
      local log = {}
      local d = deferred.new()
      d:add_callbacks(function() log[#log + 1] = "cb" end, function() log[#log + 1] = "eb" end)
      d:errback("x")
      assert.same({"eb"}, log)
    end)

    it("waits for a Deferred a callback returns", function()
      local inner = deferred.new()
      local d = deferred.new()
      local got
      d:add_callback(function() return inner end)
      d:add_callback(function(x) got = x end)
      d:callback()
      assert.is_false(d:ready())
      inner:callback(42)
      assert.is_true(d:ready())
      assert.equal(42, got)
    end)

    it("refuses to fire twice", function()
      local d = deferred.new():callback(1)
      assert.has_error(function() d:callback(2) end)
      assert.has_error(function() d:errback("x") end)
    end)

    it("checks its arguments", function()
      local d = deferred.new()
      local ok, err = pcall(d.add_callback, d, 5)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'add_callback' %(function expected, got number%)", err)
    end)
  end)

  describe("captured output", function()
    it("reads empty until the first piece, then joins the pieces", function()
      local d = deferred.new{id = 3}
      assert.equal("", d.stdout)
      assert.equal("", d.stderr)
      d:_append("stdout", "a")
      d:_append("stdout", "b\n")
      d:_append("stderr", "e")
      assert.equal("ab\n", d.stdout)
      assert.equal("ab\n", d.stdout)
      assert.equal("e", d.stderr)
      -- the same Deferred as before: methods, is, tostring
      assert.is_true(deferred.is(d))
      assert.equal("<Deferred 3 pending>", tostring(d))
      d:add_callback(function(x) return x * 2 end)
      d:callback(21)
      assert.equal(42, d:get())
    end)

    it("of many Deferreds stays apart (no shared chain or output)", function()
      local a, b = deferred.new(), deferred.new()
      a:add_callback(function(x) return x + 1 end)
      a:_append("stdout", "only a")
      b:callback(1)
      a:callback(1)
      assert.equal(1, b:get())
      assert.equal(2, a:get())
      assert.equal("", b.stdout)
      assert.equal("only a", a.stdout)
    end)
  end)

  describe("waiting", function()
    it("reports ready and state", function()
      local d = deferred.new()
      assert.is_false(d:ready())
      assert.equal("pending", d:state())
      d:callback(1)
      assert.is_true(d:ready())
      assert.equal("ok", d:state())
    end)

    it("pumps the loop until fired", function()
      local l = loop()
      local d = l.new()
      l.later(function() end)
      l.later(function() d:callback("done") end)
      assert.is_true(d:wait(10))
      assert.equal(2, l.pumps)
      assert.equal("done", d:get())
    end)

    it("gives up after the timeout", function()
      local l = loop()
      local d = l.new()
      assert.is_false(d:wait(2))
      assert.is_true(l.clock >= 2)
    end)

    it("get raises TimeoutError when not done in time", function()
      local l = loop()
      local d = l.new()
      local ok, e = pcall(d.get, d, 1)
      assert.is_false(ok)
      assert.is_true(errors.is(e, "TimeoutError"))
      assert.equal("TimeoutError: result not ready after 1 s", tostring(e))
    end)

    it("get raises the error object", function()
      local e = errors.EngineError{engine = 3, message = "engine 3 died"}
      local d = deferred.new():errback(e)
      local ok, got = pcall(d.get, d)
      assert.is_false(ok)
      assert.equal(e, got)
    end)
  end)

  describe("unhandled errors", function()
    it("are reported when the Deferred is collected", function()
      local reported
      deferred.on_unhandled = function(e) reported = e end
      do deferred.new():errback("lost") end
      collectgarbage()
      collectgarbage()
      assert.equal("lost", reported)
    end)

    it("are reported for a Deferred that captured output", function()
      local reported
      deferred.on_unhandled = function(e, d) reported = e .. " " .. d.stderr end
      do
        local d = deferred.new()
        d:_append("stderr", "printed")
        d:errback("lost")
      end
      collectgarbage()
      collectgarbage()
      assert.equal("lost printed", reported)
    end)

    it("are reported for a Deferred whose output came after its failure", function()
      local reported
      deferred.on_unhandled = function(e, d) reported = e .. " " .. d.stderr end
      do
        local d = deferred.new()
        d:errback("lost")
        d:_append("stderr", "late")
        assert.is_true(deferred.is(d))
        assert.equal("late", d.stderr)
      end
      collectgarbage()
      collectgarbage()
      assert.equal("lost late", reported)
    end)

    it("leave a failed Deferred a Deferred, and other values not", function()
      local d = deferred.new():errback("x")
      assert.is_true(deferred.is(d))
      assert.equal("error", d:state())
      assert.is_false(deferred.is({}))
      assert.is_false(deferred.is(5))
      assert.is_false(deferred.is(nil))
      d:error()
    end)

    it("are reported once each for 10^5 Deferreds failed long after they were made", function()
      -- a client closed with 10^5 tasks in flight: marking each for its
      -- report must not walk every object made since it (lgc.c)
      local n = 0
      deferred.on_unhandled = function() n = n + 1 end
      do
        local ds, filler = {}, {}
        for i = 1, 100000 do ds[i] = deferred.new() end
        for i = 1, 200000 do filler[i] = {i} end
        assert.equal(200000, #filler)
        for i = 1, 100000 do ds[i]:errback("lost " .. i) end
        -- one looked at: not reported
        assert.equal("lost 7", ds[7]:error())
      end
      collectgarbage()
      collectgarbage()
      assert.equal(99999, n)
    end)

    it("are not reported once get raised them", function()
      local reported
      deferred.on_unhandled = function(e) reported = e end
      do
        local d = deferred.new():errback("seen")
        pcall(d.get, d)
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(reported)
    end)
  end)

  describe("gather_results", function()
    it("fires with the first values in order", function()
      local a, b, c = deferred.new(), deferred.new(), deferred.new()
      local g = deferred.gather{a, b, c}
      c:callback(3, "ignored")
      a:callback(1)
      assert.is_false(g:ready())
      b:callback(nil)
      local r = g:get()
      assert.same({1, nil, 3}, r)
      assert.equal(3, #r)
    end)

    it("fires with the single error when one fails", function()
      local a, b = deferred.new(), deferred.new()
      local g = deferred.gather{a, b}
      local e = errors.RemoteError{engine = 1, message = "m"}
      a:callback(1)
      b:errback(e)
      assert.equal(e, g:error())
    end)

    it("fires with a CompositeError in order when several fail", function()
      local ds = {deferred.new(), deferred.new(), deferred.new()}
      local g = deferred.gather(ds)
      ds[3]:errback(errors.RemoteError{engine = 2, message = "third"})
      ds[2]:callback(1)
      ds[1]:errback(errors.RemoteError{engine = 0, message = "first"})
      local e = g:error()
      assert.is_true(errors.is(e, "CompositeError"))
      assert.equal(2, #e.errors)
      assert.equal("first", e.errors[1].message)
      assert.equal("third", e.errors[2].message)
    end)

    it("does not change the gathered Deferreds' results", function()
      local a = deferred.new()
      deferred.gather{a}
      a:callback(7, 8)
      assert.same({7, 8}, {a:get()})
    end)

    it("fires at once for an empty list", function()
      assert.same({}, deferred.gather({}):get())
    end)
  end)

  describe("wait_all and as_completed", function()
    it("wait_all is true when all fired", function()
      local l = loop()
      local a, b = l.new(), l.new()
      l.later(function() b:callback(2) end)
      l.later(function() a:callback(1) end)
      assert.is_true(deferred.wait_all({a, b}, 5))
    end)

    it("wait_all is false on timeout", function()
      local l = loop()
      local a, b = l.new(), l.new()
      a:callback()
      assert.is_false(deferred.wait_all({a, b}, 1))
    end)

    it("as_completed yields in firing order", function()
      local l = loop()
      local a, b, c = l.new(), l.new(), l.new()
      b:callback("b")
      l.later(function() c:callback("c") end)
      l.later(function() a:callback("a") end)
      local order = {}
      for d in deferred.as_completed{a, b, c} do order[#order + 1] = d:get() end
      assert.same({"b", "c", "a"}, order)
    end)

    it("as_completed raises TimeoutError when one never fires", function()
      local l = loop()
      local a = l.new()
      local it = deferred.as_completed({a}, 1)
      local ok, e = pcall(it)
      assert.is_false(ok)
      assert.is_true(errors.is(e, "TimeoutError"))
    end)
  end)
end)
