-- plush.fanout: the Deferred of a direct request to several engines
-- (view.lua), fed reply by reply by the client instead of a chain per
-- engine; against the fake core.
local fake = require("fake_core").install()
local deferred = require "plush.deferred"
local errors = require "plush.errors"

describe("fanout", function()
  local rc, all, saved, reported
  before_each(function()
    fake.reset{n = 4}
    rc = fake.client{output = false}
    all = rc:view()
    saved = deferred.on_unhandled
    reported = {}
    deferred.on_unhandled = function(e) reported[#reported + 1] = tostring(e) end
  end)
  after_each(function()
    rc:close()
    collectgarbage()
    collectgarbage()
    deferred.on_unhandled = saved
  end)

  it("fires each engine's Deferred, then the group with their first values", function()
    local g = all:async():execute("return engine.id, 'second'")
    local seen
    g.deferreds[2]:add_callback(function(id, s)
      seen = {id, s, g:ready()}
      return id * 100 -- its own chain: not the group's value
    end)
    assert.same({0, 1, 2, 3}, g:get())
    assert.same({1, "second", false}, seen)
    assert.equal(100, g.deferreds[2]:get())
    for i, d in ipairs(g.deferreds) do
      assert.is_true(d:ready())
      assert.equal(g.id[i], d.id)
      assert.equal(i - 1, d.metadata.engine)
    end
  end)

  it("a group callback finds every engine's Deferred fired", function()
    local g = all:async():execute("return engine.id")
    local states
    g:add_callback(function(r)
      states = {}
      for i, d in ipairs(g.deferreds) do states[i] = d:state() end
      return r
    end)
    g:wait()
    assert.same({"ok", "ok", "ok", "ok"}, states)
  end)

  it("one engine's error is the group's, reported once when nobody takes it", function()
    do
      local g = all:async():execute("if engine.id == 2 then error('two', 0) end return 1")
      assert.is_true(g:wait(5))
      local e = g:error()
      assert.is_true(errors.is(e, "RemoteError"))
      assert.equal("two", e.message)
      assert.equal(e, g.deferreds[3]:error())
      assert.equal("ok", g.deferreds[1]:state())
    end
    collectgarbage()
    collectgarbage()
    assert.same({}, reported)
    -- an unread error of the group is reported (the engines' are not)
    all:async():execute("if engine.id == 2 then error('again', 0) end")
    rc:wait(5)
    collectgarbage()
    collectgarbage()
    assert.equal(1, #reported)
    assert.matches("again", reported[1])
  end)

  it("joins the engines' output in target order", function()
    local g = all:async():execute("print('e' .. engine.id)")
    g:wait()
    assert.equal("e0\ne1\ne2\ne3\n", g.stdout)
    assert.equal("", g.stderr)
    g = all:async():execute("return 1")
    g:wait()
    assert.equal("", g.stdout)
  end)

  it("an engine that had left is dropped from the answer and the ids", function()
    assert.same({0, 1, 2, 3}, all:execute("return engine.id"))
    fake.kill(1, {unheard = true})
    local g = all:async():execute("return engine.id")
    local left = g.deferreds[2]
    assert.same({0, 2, 3}, g:get())
    assert.same({0, 2, 3}, g.targets)
    assert.equal(3, #g.deferreds)
    assert.equal(3, #g.metadata)
    assert.equal("ok", left:state()) -- not an unhandled error
    collectgarbage()
    collectgarbage()
    assert.same({}, reported)
  end)
end)
