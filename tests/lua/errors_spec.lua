-- plush.errors: error objects and the mapping from reply statuses.
local errors = require "plush.errors"

describe("errors", function()
  it("RemoteError prints engine, message and the remote traceback", function()
    local e = errors.RemoteError{engine = 2, message = "execute:1: boom",
      traceback = "stack traceback:\n\t[C]: in function 'error'\n\texecute:1: in main chunk"}
    assert.equal("RemoteError", e.kind)
    assert.equal("RemoteError on engine 2: execute:1: boom\n"
      .. "stack traceback:\n\t[C]: in function 'error'\n\texecute:1: in main chunk", tostring(e))
  end)

  it("does not repeat a message the traceback starts with", function()
    local e = errors.RemoteError{engine = 0, message = "x:1: m",
      traceback = "x:1: m\nstack traceback:\n\tx:1: in main chunk"}
    assert.equal("RemoteError on engine 0: x:1: m\nstack traceback:\n\tx:1: in main chunk",
      tostring(e))
  end)

  it("a table error value prints as the table; plush's own error object by its message", function()
    local e = errors.RemoteError{engine = 1, message = "(error object is a table value)",
      value = {code = 7}, traceback = "stack traceback:\n\tx:1: in main chunk"}
    assert.equal("RemoteError on engine 1: {code = 7}\nstack traceback:\n\tx:1: in main chunk",
      tostring(e))
    e = errors.RemoteError{engine = 0, traceback = "stack traceback:\n\tx:1: in main chunk",
      message = "EngineError: x:1: engine.recv: engine 5 is not running",
      value = {kind = "EngineError", engine = 5,
        message = "x:1: engine.recv: engine 5 is not running"}}
    assert.equal("RemoteError on engine 0: EngineError: x:1: engine.recv: engine 5 is not running"
      .. "\nstack traceback:\n\tx:1: in main chunk", tostring(e))
  end)

  it("leaves plush's own frames out of a remote traceback", function()
    local tb = "stack traceback:\n\t[C]: in function 'error'\n\ttimeit:1: in local 'f'\n"
      .. "\t/src/share/plush/magics/timeit.lua:53: in function <timeit.lua:35>\n"
      .. "\t/usr/share/lua/5.4/plush/deferred.lua:305: in method 'wait'\n"
      .. "\t...rc/lua/plush/nested.lua:60: in field 'pump'\n"
      .. "\tmy/plush/own.lua:3: in main chunk"
    local e = errors.RemoteError{engine = 0, message = "timeit:1: y", traceback = tb}
    assert.equal("RemoteError on engine 0: timeit:1: y\nstack traceback:\n\t[C]: in function "
      .. "'error'\n\ttimeit:1: in local 'f'\n\tmy/plush/own.lua:3: in main chunk", tostring(e))
    -- nothing of the user's left: no traceback
    e = errors.RemoteError{engine = 1, message = "m",
      traceback = "stack traceback:\n\t/x/lua/plush/prun.lua:77: in function <x>"}
    assert.equal("RemoteError on engine 1: m", tostring(e))
  end)

  it("CompositeError lists each engine's message in order", function()
    local e = errors.CompositeError{errors = {
      errors.RemoteError{engine = 0, message = "execute:1: a"},
      errors.EngineError{engine = 3, message = "engine 3 died"},
    }}
    assert.equal("CompositeError: 2 tasks failed\n"
      .. "[engine 0] execute:1: a\n[engine 3] engine 3 died", tostring(e))
  end)

  it("EngineError, TimeoutError and BadRequest print kind and message", function()
    assert.equal("EngineError on engine 1: engine died",
      tostring(errors.EngineError{engine = 1}))
    assert.equal("EngineError: controller connection lost: reset",
      tostring(errors.EngineError{message = "controller connection lost: reset"}))
    assert.equal("TimeoutError on engine 0: task timed out after 2 s",
      tostring(errors.TimeoutError{engine = 0, message = "task timed out after 2 s"}))
    assert.equal("BadRequest: unknown engine 9",
      tostring(errors.BadRequest{message = "unknown engine 9"}))
    assert.equal("interrupted", tostring(errors.Interrupted{}))
    assert.equal("interrupted: the take was cancelled",
      tostring(errors.Interrupted{message = "interrupted: the take was cancelled"}))
  end)

  it("errors.is tells kinds apart, by name or class", function()
    local e = errors.RemoteError{message = "m"}
    assert.is_true(errors.is(e, "RemoteError"))
    assert.is_true(errors.is(e, errors.RemoteError))
    assert.is_false(errors.is(e, "EngineError"))
    assert.is_false(errors.is({kind = "RemoteError"}, "RemoteError"))
    assert.is_false(errors.is("RemoteError", "RemoteError"))
    assert.is_true(errors.is_error(e))
    assert.is_false(errors.is_error({}))
  end)

  it("pcall hands the object back", function()
    local e = errors.TimeoutError{message = "late"}
    local ok, got = pcall(error, e)
    assert.is_false(ok)
    assert.equal(e, got)
  end)

  describe("from_reply", function()
    it("maps 'error' to a RemoteError with every field", function()
      local e = errors.from_reply("error", {kind = "RemoteError", message = "execute:3: x",
        traceback = "tb", chunk = "execute", line = 3, engine = 5, value = {code = 7},
        started = 1.5, completed = 2.5}, 9)
      assert.is_true(errors.is(e, "RemoteError"))
      assert.equal(5, e.engine)
      assert.equal("execute:3: x", e.message)
      assert.equal("tb", e.traceback)
      assert.equal("execute", e.chunk)
      assert.equal(3, e.line)
      assert.same({code = 7}, e.value)
    end)

    it("takes the frame's engine when the payload has none", function()
      assert.equal(9, errors.from_reply("error", {message = "m"}, 9).engine)
    end)

    it("maps engine, timeout and badreq", function()
      local e = errors.from_reply("engine", {kind = "EngineError", message = "gone", engine = 1})
      assert.is_true(errors.is(e, "EngineError"))
      assert.equal("gone", e.message)
      e = errors.from_reply("timeout", {message = "task timed out after 1 s", engine = 0})
      assert.is_true(errors.is(e, "TimeoutError"))
      assert.equal(0, e.engine)
      e = errors.from_reply("badreq", {kind = "BadRequest", message = "unknown engine 7"})
      assert.is_true(errors.is(e, "BadRequest"))
      assert.equal("BadRequest: unknown engine 7", tostring(e))
    end)

    it("survives a payload that is not a table", function()
      local e = errors.from_reply("error", "plain text", 2)
      assert.equal("plain text", e.message)
      assert.equal(2, e.engine)
      e = errors.from_reply("weird", nil)
      assert.is_true(errors.is(e, "EngineError"))
      assert.matches("unexpected reply status 'weird'", e.message)
    end)
  end)
end)
