-- plush.magic_px: %px's options (parsing, and what each does against the
-- fake core), %pn with a list, %pxconfig, %pxresult.
local fake = require("fake_core").install()
local deferred = require "plush.deferred"
local magic = require "plush.magic"
local mpx = require "plush.magic_px"

describe("%px options", function()
  describe("parse", function()
    local function err(line, name)
      local ok, e = pcall(mpx.parse, line, name)
      assert.is_false(ok)
      return (tostring(e):gsub("^[^:]*:%d+: ", ""))
    end

    it("reads each option, long and short, and leaves the code", function()
      local o, code = mpx.parse("--targets 0,2 --noblock --group-outputs type --out r"
        .. " --local --no-stream x = 1")
      assert.same({targets = {0, 2}, block = false, group = "type", out = "r",
        localrun = true, stream = false}, o)
      assert.equal("x = 1", code)
      o, code = mpx.parse("-t 1-3,5 -b -o res return engine.id")
      assert.same({targets = {1, 2, 3, 5}, block = true, out = "res"}, o)
      assert.equal("return engine.id", code)
      o, code = mpx.parse("-a --stream --targets=all --group-outputs=order f()")
      assert.same({block = false, stream = true, targets = "all", group = "order"}, o)
      assert.equal("f()", code)
    end)

    it("takes code as it is when there is no option", function()
      local o, code = mpx.parse("x = -1")
      assert.same({}, o)
      assert.equal("x = -1", code)
      -- a number or a parenthesis after '-' is code, not an option
      o, code = mpx.parse("-1 + x")
      assert.same({}, o)
      assert.equal("-1 + x", code)
      o, code = mpx.parse("")
      assert.same({}, o)
      assert.equal("", code)
    end)

    it("ends the options at --, so code may start with '-'", function()
      local o, code = mpx.parse("-t 0 -- -x")
      assert.same({targets = {0}}, o)
      assert.equal("-x", code)
      o, code = mpx.parse("-- --[[note]] y = 1")
      assert.same({}, o)
      assert.equal("--[[note]] y = 1", code)
      o, code = mpx.parse("--")
      assert.same({}, o)
      assert.equal("", code)
    end)

    it("refuses an unknown option, a missing or a bad value", function()
      assert.equal("%px: unknown option --nope (?%px lists them; `%px -- CODE` runs code"
        .. " that starts with '-')", err("--nope x = 1"))
      assert.matches("^%%px: unknown option %-%-%[%[c%]%] ", err("--[[c]] x = 1"))
      assert.matches("^%%px: unknown option %-x ", err("-x"))
      assert.matches("^%%px: unknown option %-%-targetz ", err("--targetz 1 x"))
      assert.equal("%px: --targets needs IDS", err("--targets"))
      assert.equal("%px: -o needs NAME", err("-b -o"))
      assert.equal("%px: --targets: not an engine id: 'x'", err("--targets x code"))
      assert.equal("%px: -t: not a range of engine ids: '3-1'", err("-t 3-1 code"))
      assert.equal("%px: --group-outputs: 'all' is not engine, order or type",
        err("--group-outputs all code"))
      assert.equal("%px: --out: '1x' is not a Lua name", err("--out 1x code"))
      assert.equal("%px: --block takes no value", err("--block=yes code"))
      assert.matches("^%%pn: unknown option %-%-zz %(%?%%pn lists them;", err("--zz", "pn"))
    end)

    it("code_of gives the code after the options, nil when they are wrong", function()
      assert.equal("for i = 1, 2 do", mpx.code_of("px", "-t 0 for i = 1, 2 do"))
      assert.equal("x", mpx.code_of("pn", "0,1 -a x"))
      assert.is_nil(mpx.code_of("px", "--nope x"))
    end)
  end)

  describe("running", function()
    local rc, shell, buf, saved

    local function text()
      local s = table.concat(buf)
      buf = {}
      return s
    end

    local function run(line)
      magic.run(line, shell)
      return text()
    end

    before_each(function()
      fake.reset{n = 3}
      rc = fake.client{output = false}
      buf = {}
      shell = {rc = rc, targets = "all", block = true, env = {},
        out = function(s) buf[#buf + 1] = s end}
      saved = deferred.on_unhandled
      deferred.on_unhandled = function() end
    end)
    after_each(function()
      rc:close()
      collectgarbage()
      collectgarbage()
      deferred.on_unhandled = saved
    end)

    it("a result with a value shows it, nil first too; a lone nil shows nothing", function()
      assert.equal('[engine 1] nil, "timeout"\n', run('%px -t 1 return nil, "timeout"'))
      assert.equal('[engine 1] nil, nil, 3\n', run('%px -t 1 return nil, nil, 3'))
      assert.equal("", run("%px -t 1 return nil"))
      assert.equal("", run("%px -t 1 return nil, nil"))
    end)

    it("--targets runs on those engines once, the default stays", function()
      assert.equal("[engine 0] 0\n[engine 2] 2\n", run("%px --targets 0,2 engine.id"))
      assert.equal("[engine 1] 1\n", run("%px -t 1 engine.id"))
      assert.equal("[engine 0] 0\n[engine 1] 1\n[engine 2] 2\n", run("%px engine.id"))
      assert.has_error(function() run("%px -t 7 engine.id") end,
        "no engine 7 (%engines lists them)")
    end)

    it("an unknown option runs nothing", function()
      assert.has_error(function() run("%px --targets1 x = 1") end)
      assert.is_nil(fake.env(0).x)
    end)

    it("--noblock submits; %pxresult shows the results", function()
      assert.equal("submitted to 3 engine(s); %result shows the results\n",
        run("%px --noblock sleep(1) return 'late'"))
      assert.equal('[engine 0] "late"\n[engine 1] "late"\n[engine 2] "late"\n', run("%pxresult"))
      assert.is_true(shell.block)
    end)

    it("--out keeps the Deferred in a local global", function()
      assert.equal("[engine 0] 0\n[engine 1] 10\n[engine 2] 20\n", run("%px -o res engine.id * 10"))
      assert.is_true(deferred.is(shell.env.res))
      assert.same({0, 10, 20}, shell.env.res:get())
      run("%px -a --out later return engine.id + 1")
      assert.same({1, 2, 3}, shell.env.later:get())
    end)

    it("--no-stream groups output by engine, order or type", function()
      local code = "print('out ' .. engine.id) io.stderr:write('err ' .. engine.id)"
        .. " return engine.id"
      assert.equal(table.concat{
        "[engine 0] out 0\n[engine 0] err 0\n[engine 0] 0\n",
        "[engine 1] out 1\n[engine 1] err 1\n[engine 1] 1\n",
        "[engine 2] out 2\n[engine 2] err 2\n[engine 2] 2\n"},
        run("%px --group-outputs engine " .. code))
      assert.equal(table.concat{
        "[engine 0] out 0\n[engine 1] out 1\n[engine 2] out 2\n",
        "[engine 0] err 0\n[engine 1] err 1\n[engine 2] err 2\n",
        "[engine 0] 0\n[engine 1] 1\n[engine 2] 2\n"},
        run("%px --group-outputs type " .. code))
      -- --stream (the default): output as it comes, before the results
      local out = run("%px --stream " .. code)
      assert.matches("^%[engine %d%] ", out)
      assert.matches("%[engine 0%] 0\n%[engine 1%] 1\n%[engine 2%] 2\n$", out)
    end)

    it("--no-stream holds a bounded amount, then streams the rest", function()
      local saved_max, saved_lines = mpx.HOLD_MAX, mpx.HOLD_LINES
      local code = " for i = 1, 5 do print('line ' .. i) end return 'r'"
      local function flood(max, lines)
        mpx.HOLD_MAX, mpx.HOLD_LINES = max, lines
        local ok, out = pcall(run, "%pn 1 --group-outputs engine" .. code)
        mpx.HOLD_MAX, mpx.HOLD_LINES = saved_max, saved_lines
        assert.is_true(ok, out)
        return out
      end
      local rest = table.concat{
        "[engine 1] line 1\n[engine 1] line 2\n[engine 1] line 3\n",
        "[engine 1] line 4\n[engine 1] line 5\n", '[engine 1] "r"\n'}
      -- "line 1\n".."line 2\n".."line 3\n" is 21 bytes
      assert.equal("(over 20 bytes or 100 lines of output held: the rest is shown as it comes)\n"
        .. rest, flood(20, 100))
      assert.equal("(over 32 MiB or 2 lines of output held: the rest is shown as it comes)\n"
        .. rest, flood(32 << 20, 2))
      -- under both: held, then grouped, no note
      assert.equal(rest, flood(32 << 20, 100))
    end)

    it("--local runs the code here too", function()
      assert.equal("[local] 2\n[engine 0] 2\n[engine 1] 2\n[engine 2] 2\n",
        run("%px --local y = 2 return y"))
      assert.equal(2, shell.env.y)
      -- an error here is raised once the engines' results are shown
      shell.env.error = error
      local ok, e = pcall(run, "%px --local error('here only', 0)")
      assert.is_false(ok)
      assert.equal("here only", e)
      assert.matches("^%[engine 0%] RemoteError on engine 0: here only", text())
      assert.equal(2, fake.env(1).y)
    end)

    it("%pn takes one engine or a list", function()
      assert.equal("[engine 2] 2\n", run("%pn 2 engine.id"))
      assert.equal("[engine 0] 0\n[engine 2] 2\n", run("%pn 0,2 engine.id"))
      assert.has_error(function() run("%pn all x") end,
        "usage: %pn ENGINE[,ENGINE...] [options] CODE")
      assert.has_error(function() run("%pn -t 1 x") end,
        "usage: %pn ENGINE[,ENGINE...] [options] CODE")
    end)

    it("%pxconfig shows and sets the defaults", function()
      assert.equal("targets all, block, stream, group-outputs engine\n", run("%pxconfig"))
      run("%pxconfig --targets 1,2 --noblock --group-outputs type")
      assert.equal("targets 1,2, noblock, no-stream, group-outputs type\n", run("%pxconfig"))
      assert.same({1, 2}, shell.targets)
      assert.is_false(shell.block)
      run("%pxconfig -b --stream -t all")
      assert.equal("targets all, block, stream, group-outputs type\n", run("%pxconfig"))
      assert.equal("[engine 0] 0\n[engine 1] 1\n[engine 2] 2\n", run("%px engine.id"))
      assert.has_error(function() run("%pxconfig --out x") end,
        "%pxconfig: --out and --local are for one %px, not defaults")
      assert.has_error(function() run("%pxconfig x = 1") end, "%pxconfig: not an option: x = 1")
    end)
  end)
end)
