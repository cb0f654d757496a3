-- plush.kernel and plush.kernel_cell without ZeroMQ: JSON for Jupyter, the
-- connection file, the kernelspec, and cells (splitting, results, errors,
-- is_complete, history, HTML) against the fake core. The protocol itself
-- is tested end to end with Jupyter's own packages: tests/e2e/jupyter.sh.
require("fake_core").install()
local cjson = require "cjson"
local kernel = require "plush.kernel"
local cell = require "plush.kernel_cell"
local display = require "plush.kernel_display"
local progress = require "plush.progress"
local deferred = require "plush.deferred"

local function fake_edit()
  local e = {available = false}
  function e.trap() end
  function e.arm() end
  function e.interrupted() return false end
  function e.width() return 80 end
  return e
end

-- A kernel that keeps what it publishes.
local function runner()
  local k = {sent = {}, zmq = {uuid = function() return "id" end}}
  function k.publish(_, t, c) k.sent[#k.sent + 1] = {t, c} end
  local sh = {env = setmetatable({}, {__index = _G}), targets = "all", block = true}
  return cell.new(k, {shell = sh}, fake_edit()), k
end

local function of(k, kind)
  local out = {}
  for _, m in ipairs(k.sent) do
    if m[1] == kind then out[#out + 1] = m[2] end
  end
  return out
end

local function tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("l")
  p:close()
  return d
end

describe("kernel", function()
  it("writes empty arrays as [] and empty objects as {}", function()
    assert.equal('{"m":[]}', kernel.encode{m = kernel.array{}})
    assert.equal('{"m":{}}', kernel.encode{m = {}})
    assert.equal('[1,2]', kernel.encode(kernel.array{1, 2}))
  end)

  it("replaces bytes that are not UTF-8", function()
    assert.equal("a\u{FFFD}b\u{FFFD}", kernel.utf8("a\255b\192"))
    assert.equal("héllo", kernel.utf8("héllo"))
  end)

  it("reads a connection file and refuses a bad one in one line", function()
    local d = tmpdir()
    local function write(text)
      local f = assert(io.open(d .. "/c.json", "w"))
      f:write(text)
      f:close()
      return d .. "/c.json"
    end
    local ports = '"shell_port":1,"iopub_port":2,"stdin_port":3,"control_port":4,"hb_port":5'
    local info = assert(kernel.read_connection(write("{" .. ports .. ',"key":"k"}')))
    assert.equal("k", info.key)
    assert.same({nil, d .. "/c.json: not a JSON object"}, {kernel.read_connection(write("[1"))})
    assert.same({nil, d .. "/c.json: no hb_port"},
      {kernel.read_connection(write('{"shell_port":1,"iopub_port":2,"stdin_port":3,'
        .. '"control_port":4}'))})
    assert.same({nil, d .. "/c.json: signature scheme 'hmac-md5' (only hmac-sha256 is known)"},
      {kernel.read_connection(write("{" .. ports .. ',"key":"k","signature_scheme":"hmac-md5"}'))})
    os.execute("rm -rf " .. d)
  end)

  it("installs a kernelspec under a prefix", function()
    local d = tmpdir()
    local dir = kernel.install{prefix = d, name = "p2", profile = "big", program = "/x/plush"}
    assert.equal(d .. "/share/jupyter/kernels/p2", dir)
    local f = assert(io.open(dir .. "/kernel.json"))
    local spec = cjson.decode(f:read("a"))
    f:close()
    assert.same({"/x/plush", "kernel", "--profile", "big", "--connection-file",
      "{connection_file}"}, spec.argv)
    assert.equal("signal", spec.interrupt_mode)
    assert.equal("lua", spec.language)
    assert.equal("plush (p2)", spec.display_name)
    assert.has_error(function() kernel.install{prefix = d, name = "a/b", program = "p"} end,
      "a kernel name is letters, digits, '.', '_' and '-' (not 'a/b')")
    os.execute("rm -rf " .. d)
  end)
end)

describe("kernel cells", function()
  it("split at magic lines, keeping Lua lines together", function()
    local c = runner()
    local chunks = c:split("local a = 1\nb = a\n%magic\nb")
    assert.same({{text = "local a = 1\nb = a", lua = true, line = 1},
      {text = "%magic", line = 3}, {text = "b", lua = true, line = 4}}, chunks)
    -- a %px line takes its continuation; a % inside a long string is Lua
    assert.same({{text = "%px for i = 1, 2 do\nx = i\nend", line = 1}},
      c:split("%px for i = 1, 2 do\nx = i\nend"))
    assert.same({{text = "s = [[\n%px\n]]", lua = true, line = 1}}, c:split("s = [[\n%px\n]]"))
    assert.same({{text = "%px a = 1\nb = 2", line = 1}}, c:split("%%px\na = 1\nb = 2"))
    assert.same({{text = "%pn 2\nx", line = 1}}, c:split("%%pn 2\nx"))
  end)

  it("returns the last expression's value as the result", function()
    local c, k = runner()
    assert.same({status = "ok", execution_count = 1}, c:execute("x = 20\nx + 1", false, true))
    assert.same({execution_count = 1, data = {["text/plain"] = "21"}, metadata = {}},
      of(k, "execute_result")[1])
    c:execute("local t = {\n  1,\n  2,\n}\nt", false, true)
    assert.equal("{1, 2}", of(k, "execute_result")[2].data["text/plain"])
    c:execute("print('no value')", false, true)
    assert.equal(2, #of(k, "execute_result"))
    assert.same({name = "stdout", text = "no value\n"}, of(k, "stream")[1])
  end)

  it("makes errors Jupyter errors, with the cell's line numbers", function()
    local c, k = runner()
    local r = c:execute("a = 1\n\nerror('boom')", false, true)
    assert.equal("error", r.status)
    assert.equal("LuaError", r.ename)
    assert.equal("In[1]:3: boom", r.evalue)
    assert.same(r.traceback, of(k, "error")[1].traceback)
    r = c:execute("x = = 1", false, true)
    assert.same({"SyntaxError", "In[2]:1: unexpected symbol near '='"}, {r.ename, r.evalue})
  end)

  it("says whether code is complete as the shell does", function()
    local c = runner()
    assert.same({status = "incomplete", indent = "  "}, c:is_complete("for i = 1, 2 do"))
    assert.same({status = "incomplete", indent = "  "}, c:is_complete("%px if x then"))
    assert.same({status = "complete"}, c:is_complete("x = 1"))
    assert.same({status = "complete"}, c:is_complete("%magic"))
    assert.same({status = "invalid"}, c:is_complete("x = = 1"))
    assert.same({status = "complete"}, c:is_complete("x = 1\n%magic"))
  end)

  it("answers history by tail, range and search", function()
    local c = runner()
    for _, code in ipairs{"1 + 2", "x = 1", "1 + 2", "y = 2"} do c:execute(code, false, true) end
    c:execute("silent", true, true)
    assert.same({{0, 3, "1 + 2"}, {0, 4, "y = 2"}}, c:history{hist_access_type = "tail", n = 2})
    assert.same({{0, 2, "x = 1"}}, c:history{hist_access_type = "range", start = 2, stop = 3})
    assert.same({{0, 1, "1 + 2"}, {0, 3, "1 + 2"}},
      c:history{hist_access_type = "search", pattern = "1 + 2"})
    assert.same({{0, 3, "1 + 2"}},
      c:history{hist_access_type = "search", pattern = "1 + 2", unique = true})
    assert.same({{0, 2, "x = 1"}, {0, 4, "y = 2"}},
      c:history{hist_access_type = "search", pattern = "? = *"})
    assert.same({0, 1, {"1 + 2", "3"}},
      c:history{hist_access_type = "tail", n = 4, output = true}[1])
  end)

  it("shows a table of records as an HTML table", function()
    assert.equal("<table><tr><th></th><th>a</th><th>b</th></tr>"
      .. "<tr><th>1</th><td>1</td><td>x&lt;</td></tr>"
      .. "<tr><th>2</th><td>2</td><td></td></tr></table>",
      display.html{{a = 1, b = "x<"}, {a = 2}})
    assert.equal("<table><tr><th>key</th><th>value</th></tr><tr><th>k</th><td>v</td></tr></table>",
      display.html{k = "v"})
  end)

  it("draws the progress bar as a display updated in place", function()
    local c, k = runner()
    local ready = 0
    local ds = {}
    for i = 1, 2 do
      ds[i] = deferred.new{pump = function()
        ready = ready + 1
        if ds[ready] then ds[ready]:callback(ready) end
      end, clock = os.clock}
    end
    local all = deferred.gather(ds)
    progress.sink = function() return c:progress_sink() end
    assert.is_true(progress.wait(all))
    progress.sink = nil
    local first, updates = of(k, "display_data"), of(k, "update_display_data")
    assert.equal(1, #first)
    assert.truthy(first[1].data["text/plain"]:match("^%[%.+%] 0/2  "))
    assert.truthy(updates[#updates].data["text/plain"]:match("^%[#+%] 2/2  "))
    assert.equal(first[1].transient.display_id, updates[#updates].transient.display_id)
  end)
end)
