-- plush.kernel_cell: what the Jupyter kernel (plush.kernel) does with a
-- cell, a completion, an inspection: the shell's own machinery
-- (plush.shell's Session, plush.magic), with output going to the notebook.
--
-- A cell is split as the shell reads lines: %magic, ?name and !cmd lines
-- (with the continuation lines of a %px) are chunks of their own, the Lua
-- between them one chunk, so that a cell's locals live across its lines.
-- The value of a Lua chunk's last expression is the cell's execute_result;
-- print, io.write and io.stdout/io.stderr are stream output while a cell
-- runs, as is what the magics print (%px output tagged by engine, live).
-- Errors, local or remote, are Jupyter `error` outputs: ename the error's
-- kind, the traceback the shell's report of it (the remote traceback).
local core = require "plush.core"
local display = require "plush.kernel_display"
local errors = require "plush.errors"
local magic = require "plush.magic"
local progress = require "plush.progress"
local shell = require "plush.shell"

local null = require("cjson").null

local cell = {}

local C = {}
C.__index = C

local function array(t) return require("plush.kernel").array(t) end
local function utf8ok(s) return require("plush.kernel").utf8(s) end

-------------------------------------------------------------------------------
-- Output
-------------------------------------------------------------------------------

-- Stream text is sent at most every 50 ms (else kept, up to 64 KiB), and
-- before anything else goes out, so that a loop of prints is a few
-- messages, not one each.
function C:stream(name, text)
  if text == "" then return end
  if self.capture then
    self.capture[#self.capture + 1] = text
    return
  end
  if self.buf.name ~= name then
    self:flush()
    self.buf.name = name
  end
  local b = self.buf
  b[#b + 1] = text
  b.bytes = b.bytes + #text
  if b.bytes >= 65536 or core.now() - self.flushed >= 0.05 then self:flush() end
end

function C:flush()
  local b = self.buf
  if #b > 0 then
    self.k:publish("stream", {name = b.name, text = utf8ok(table.concat(b))})
  end
  self.buf = {bytes = 0, name = b.name}
  self.flushed = core.now()
end

local function tostr(...)
  local n, parts = select("#", ...), {}
  for i = 1, n do
    local v = select(i, ...)
    parts[i] = math.type(v) == "float" and ("%.14g"):format(v) or tostring(v)
  end
  return table.concat(parts)
end

-- A stand-in for io.stdout / io.stderr: write goes to the stream, the
-- other methods to the real file.
local function pseudo_file(self, name, real)
  local f = {}
  function f.write(_, ...)
    self:stream(name, tostr(...))
    return f
  end
  function f.flush() return f end
  return setmetatable(f, {__name = "FILE*", __index = function(_, k)
    local m = real[k]
    if type(m) == "function" then return function(_, ...) return m(real, ...) end end
  end, __tostring = function() return tostring(real) end})
end

--[[
  One line from the notebook: an input_request on the stdin channel to
  the client that sent the cell, and its input_reply. Refused when that
  client does not allow stdin (nbclient, most tests). Ctrl-C / the ■
  interrupts the wait (the hook is armed while the cell runs).
]]
function C:input(prompt)
  local k, req = self.k, self.request
  if not (req and req.content.allow_stdin == true) then
    error("io.read: no input here: the notebook's client does not allow stdin", 0)
  end
  self:flush()
  k:send(k.stdin, req.idents, "input_request", {prompt = prompt or "", password = false},
    req.header)
  while true do
    if k.zmq.poll({k.stdin}, 0.1)[1] then
      local msg = k:parse(k.stdin:recv() or {})
      if msg and msg.header.msg_type == "input_reply" then
        return tostring(msg.content.value or "")
      end
    end
  end
end

-- io.read's formats over lines from the notebook.
local function reader(self)
  return function(...)
    local fmts, out = table.pack(...), {}
    if fmts.n == 0 then fmts = {n = 1, "l"} end
    for i = 1, fmts.n do
      local f = tostring(fmts[i]):gsub("^%*", "")
      local line = self:input("")
      if f:sub(1, 1) == "n" then out[i] = tonumber(line)
      elseif f:sub(1, 1) == "L" then out[i] = line .. "\n"
      else out[i] = line end
    end
    return table.unpack(out, 1, fmts.n)
  end
end

function C:redirect(on)
  if on then
    self.saved = {print = print, write = io.write, stdout = io.stdout, stderr = io.stderr,
      pout = progress.out, read = io.read, stdin = io.stdin}
    local read = reader(self)
    rawset(io, "read", read)
    local stdin = pseudo_file(self, "stdout", self.saved.stdin)
    stdin.read = function(_, ...) return read(...) end
    stdin.lines = function(_, ...)
      local fmts = table.pack(...)
      return function() return read(table.unpack(fmts, 1, fmts.n)) end
    end
    rawset(io, "stdin", stdin)
    local function pr(...)
      local n, parts = select("#", ...), {}
      for i = 1, n do parts[i] = tostring((select(i, ...))) end
      self:stream("stdout", table.concat(parts, "\t") .. "\n")
    end
    rawset(_G, "print", pr)
    rawset(io, "write", function(...)
      self:stream("stdout", tostr(...))
      return io.stdout
    end)
    rawset(io, "stdout", pseudo_file(self, "stdout", self.saved.stdout))
    rawset(io, "stderr", pseudo_file(self, "stderr", self.saved.stderr))
  elseif self.saved then
    local s = self.saved
    rawset(_G, "print", s.print)
    rawset(io, "write", s.write)
    rawset(io, "stdout", s.stdout)
    rawset(io, "stderr", s.stderr)
    rawset(io, "read", s.read)
    rawset(io, "stdin", s.stdin)
    progress.out = s.pout
    self.saved = nil
  end
end

--[[
  The progress bar (d:wait_interactive()) as a display that updates in
  place: display_data the first time, update_display_data after, the
  final count left in the cell.
]]
function C:progress_sink()
  local id
  return function(line)
    self:flush()
    local content = {data = {["text/plain"] = line}, metadata = {},
      transient = {display_id = id or self.k.zmq.uuid()}}
    self.k:publish(id and "update_display_data" or "display_data", content)
    id = content.transient.display_id
  end
end

-- `!cmd` in a cell: what the command writes (stdout and stderr) streams
-- into the cell line by line, where the shell leaves it the terminal; it
-- reads no input (the kernel's stdin is not the notebook's).
local function system(self, cmd)
  if not cmd:match("%S") then return end
  self:flush()
  local p = io.popen("(" .. cmd .. "\n) </dev/null 2>&1", "r")
  for l in p:lines("L") do self:stream("stdout", l) end
  local ok, how, code = p:close()
  if not ok and how then
    self:stream("stdout", ("%s %s\n"):format(how == "signal" and "killed by signal" or "exit",
      tostring(code)))
  end
end

-------------------------------------------------------------------------------
-- Cells
-------------------------------------------------------------------------------

local function lines_of(code)
  local out = {}
  for l in (code .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = l end
  return out
end

-- A line the shell would not run as Lua: %magic, ?help, name?, !cmd.
local function special(line)
  return line:match("^%s*%%") or line:match("^%s*[?!]")
    or line:match("^%s*%%?[%a_][%w_.:]*%?%??%s*$")
end

--[[
  split(code) -> chunks {text =, lua = bool, line = first line}. A cell
  that starts with %%name is the magic %name of the rest (%%px: the whole
  cell on the engines).
]]
function C:split(code)
  local name, args, body = code:match("^%s*%%%%([%w_]+)([^\n]*)\n?(.*)$")
  if name then
    args = args:match("^%s*(.-)%s*$")
    return {{text = "%" .. name .. " " .. (args ~= "" and (args .. "\n") or "") .. body, line = 1}}
  end
  local lines, chunks, lua, first = lines_of(code), {}, {}, nil
  local function flush()
    if #lua > 0 and table.concat(lua, "\n"):match("%S") then
      chunks[#chunks + 1] = {text = table.concat(lua, "\n"), lua = true, line = first}
    end
    lua = {}
  end
  local i = 1
  while i <= #lines do
    local l = lines[i]
    local inside = #lua > 0 and select(2, shell.compile(table.concat(lua, "\n"), "=x", {}))
      == "incomplete"
    if not inside and special(l) and not (self.sh.autopx and not l:match("^%s*[%%?!]")) then
      flush()
      local text, at = l, i
      while shell.incomplete(text, self.sh) and i < #lines do
        i = i + 1
        text = text .. "\n" .. lines[i]
      end
      chunks[#chunks + 1] = {text = text, line = at}
    else
      if #lua == 0 then first = i end
      lua[#lua + 1] = l
    end
    i = i + 1
  end
  flush()
  return chunks
end

--[[
  Compile a Lua chunk so that its last expression is returned (its value
  is the cell's result): the whole chunk as `return EXPR`, `= EXPR`, else
  the longest tail of lines that is an expression, returned after the
  lines before it. Line numbers are the cell's (the chunk is padded).
]]
local function compile(text, first, chunkname, env)
  local pad = ("\n"):rep(first - 1)
  local expr = text:match("^%s*=(.*)$")
  if expr then return load(pad .. "return " .. expr, chunkname, "t", env) end
  local f = load(pad .. "return " .. text, chunkname, "t", env)
  if f then return f end
  local lines = lines_of(text)
  for k = #lines, math.max(2, #lines - 50), -1 do
    local tail = table.concat(lines, "\n", k)
    if load("return " .. tail, "=tail", "t", env) then
      local h = load(pad .. table.concat(lines, "\n", 1, k - 1) .. "\nreturn " .. tail,
        chunkname, "t", env)
      if h then return h end
    end
  end
  return load(pad .. text, chunkname, "t", env)
end

-- A local traceback ends at the user's chunk: the kernel's frames below
-- it are no news to the user.
local function trim(tb)
  local cut = tb:find("\n%s*%[C%]: in function 'xpcall'\n[^\n]*kernel_cell%.lua")
  if cut then tb = tb:sub(1, cut - 1) end
  return tb
end

-- The Jupyter error for what the shell would report: ename the kind,
-- evalue its first line, traceback the report's lines.
function C:error_of(e)
  self.capture = {}
  local ok = pcall(self.session.report, self.session, e)
  local text = table.concat(self.capture):gsub("\n$", "")
  self.capture = nil
  if not ok or text == "" then text = tostring(e) end
  local ename
  if errors.is_error(e) then
    ename = e.kind
  elseif type(e) == "string" and e:match("^[^\n]*interrupted\n") or e == "interrupted" then
    ename = "Interrupted"
  elseif type(e) == "table" and e.syntax then
    ename = "SyntaxError"
  else
    ename = "LuaError"
  end
  local tb = {}
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do tb[#tb + 1] = utf8ok(l) end
  return {status = "error", ename = ename, evalue = utf8ok(tb[1] or ""), traceback = array(tb)}
end

-- Errors of the engines that %px/%pn/%result showed: one Jupyter error.
function C:remote_error()
  local list = self.remote
  self.remote = {}
  if #list == 1 then return self:error_of(list[1]) end
  -- each engine's error in full, remote tracebacks included
  local tb = {("CompositeError: %d engines failed"):format(#list)}
  for _, e in ipairs(list) do
    for l in (tostring(e) .. "\n"):gmatch("([^\n]*)\n") do tb[#tb + 1] = utf8ok(l) end
  end
  return {status = "error", ename = "CompositeError", evalue = tb[1], traceback = tb}
end

-- One chunk: Lua (values returned) or the shell's (a magic, ?, !).
function C:run_chunk(chunk, chunkname)
  local E, sh = self.session.edit, self.sh
  sh.width = 80
  local f
  if chunk.lua and not sh.autopx then
    local err
    f, err = compile(chunk.text, chunk.line, chunkname, sh.env)
    if not f then return false, {status = "error", ename = "SyntaxError", evalue = err,
      traceback = array{err}} end
  end
  E.interrupted()
  E.arm(true)
  local r
  if f then
    r = table.pack(xpcall(f, shell.handler))
  else
    r = table.pack(xpcall(magic.handle, shell.handler, chunk.text, sh))
    r = {n = r[1] and 1 or 2, r[1], r[2]}
  end
  E.arm(false)
  E.interrupted()
  if not r[1] then
    return false, self:error_of(type(r[2]) == "string" and trim(r[2]) or r[2])
  end
  if #self.remote > 0 then return false, self:remote_error() end
  return true, table.pack(table.unpack(r, 2, r.n))
end

-- The `rc` of the session, once a cell has used it.
function C:sync_rc()
  local rc = rawget(self.sess, "rc")
  if rc and self.session.rc ~= rc then
    self.session.rc = rc
    local pump = rc.pump
    rc.pump = function(c, t)
      self:flush()
      return pump(c, t)
    end
  end
  return rc
end

--[[
  execute(code, silent, store) -> the execute_reply's content. Outputs,
  the result and the error go to iopub meanwhile.
]]
function C:execute(code, silent, store)
  local count = self.count
  if store and not silent then
    count = count + 1
    self.count = count
    self.hist[#self.hist + 1] = {count, code}
    self.k:publish("execute_input", {code = code, execution_count = count})
  end
  local reply
  self.last_parent = self.k.parent
  self:redirect(true)
  progress.sink = function() return self:progress_sink() end
  local ok, chunks = pcall(self.split, self, code)
  if not ok then chunks = {{text = code, lua = true, line = 1}} end
  local values
  for _, chunk in ipairs(chunks) do
    local done, r = self:run_chunk(chunk, "=In[" .. count .. "]")
    self:sync_rc()
    if not done then
      reply = r
      break
    end
    values = chunk.lua and r.n > 0 and r or nil
  end
  progress.sink = nil
  self:redirect(false)
  self:flush()
  if reply then
    self.k:publish("error", {ename = reply.ename, evalue = reply.evalue,
      traceback = reply.traceback})
    reply.execution_count = count
    return reply
  end
  if values and not silent then
    local data = display.mime(values)
    self.hist_out[count] = data["text/plain"]
    self.k:publish("execute_result", {execution_count = count, data = data, metadata = {}})
  end
  return {status = "ok", execution_count = count}
end

-------------------------------------------------------------------------------
-- Completion, inspection, is_complete, history
-------------------------------------------------------------------------------

-- The byte offset in `code` of a cursor counted in code points.
local function byte_at(code, pos)
  if not pos then return #code end
  return (utf8.offset(code, pos + 1) or (#code + 1)) - 1
end

function C:complete(code, cursor)
  self:sync_rc()
  local b = byte_at(code, cursor)
  local before = code:sub(1, b)
  local line = before:match("[^\n]*$")
  local word = line:match("[%%%w_.:]*$")
  local ok, matches = pcall(self.session.complete, self.session, word, line, #line - #word)
  if not ok then matches = {} end
  local at = utf8.len(before) or b
  return {status = "ok", matches = array(matches), cursor_start = at - (utf8.len(word) or #word),
    cursor_end = at, metadata = {}}
end

-- inspect(code, cursor, detail) -> inspect_reply: %help on the name at
-- the cursor (detail 1: with a Lua function's source).
function C:inspect(code, cursor, detail)
  self:sync_rc()
  local b = byte_at(code, cursor)
  local name = (code:sub(1, b):match("[%w_.:]*$") .. code:sub(b + 1):match("^[%w_]*"))
    :gsub("[.:]$", "")
  if not name:match("^[%a_]") then
    return {status = "ok", found = false, data = {}, metadata = {}}
  end
  self.capture = {}
  local ok = pcall(magic.run, "%help " .. (detail == 1 and "?" or "") .. name, self.sh)
  local text = table.concat(self.capture)
  self.capture = nil
  local found = ok and text ~= "" and not text:match(" is not defined, here or on the engines")
  return {status = "ok", found = found, data = found and {["text/plain"] = utf8ok(text)} or {},
    metadata = {}}
end

function C:is_complete(code)
  local ok, more = pcall(shell.incomplete, code, self.sh)
  if ok and more then return {status = "incomplete", indent = "  "} end
  if special(code) or self.sh.autopx then return {status = "complete"} end
  local f, err = shell.compile(code, "=x", self.sh.env)
  if not f and err ~= "incomplete" then
    -- a cell that is Lua with magic lines is the shell's to judge, line by line
    for l in code:gmatch("[^\n]+") do
      if special(l) then return {status = "complete"} end
    end
    return {status = "invalid"}
  end
  return {status = "complete"}
end

local function glob(pattern)
  return "^" .. pattern:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".")
    .. "$"
end

-- history_request: this session's cells (session 0), by tail, range or
-- search (a glob pattern, optionally unique, the last n).
function C:history(c)
  local out, hist = {}, self.hist
  local function entry(h)
    local input = h[2]
    if c.output then return {0, h[1], {input, self.hist_out[h[1]] or null}} end
    return {0, h[1], input}
  end
  local kind, n = c.hist_access_type, math.tointeger(c.n)
  if kind == "tail" then
    for i = math.max(1, #hist - (n or #hist) + 1), #hist do out[#out + 1] = entry(hist[i]) end
  elseif kind == "range" then
    local start, stop = math.tointeger(c.start) or 1, math.tointeger(c.stop)
    for _, h in ipairs(hist) do
      if h[1] >= start and (not stop or h[1] < stop) then out[#out + 1] = entry(h) end
    end
  elseif kind == "search" then
    local pat, seen = glob(tostring(c.pattern or "*")), {}
    for i = #hist, 1, -1 do
      local h = hist[i]
      if h[2]:match(pat) and not (c.unique and seen[h[2]]) then
        seen[h[2]] = true
        table.insert(out, 1, entry(h))
        if n and #out >= n then break end
      end
    end
  end
  return out
end

-------------------------------------------------------------------------------
-- The session
-------------------------------------------------------------------------------

-- Between requests: results and output of %block off arrive, into the
-- last cell's output.
function C:idle_timeout()
  local rc = rawget(self.sess, "rc")
  if rc and not rc.closed then return 0.1 end
  return nil
end

function C:idle()
  local rc = self:sync_rc()
  if not rc or rc.closed or next(rc.pending) == nil then return end
  -- into the last cell's output, whatever request came since
  local parent = self.k.parent
  self.k.parent = self.last_parent or parent
  self:redirect(true)
  pcall(rc.pump, rc, 0)
  self:redirect(false)
  self:flush()
  self.k.parent = parent
end

--[[
  new(k, sess [, edit]) -> the cell runner of kernel k. sess: cli.lua's
  session (sess.shell the magics' table, sess.rc the Client once used).
  edit replaces plush.edit (tests).
]]
function cell.new(k, sess, edit)
  local sh = sess.shell
  local self = setmetatable({k = k, sess = sess, sh = sh, count = 0, hist = {},
    hist_out = {}, buf = {bytes = 0}, flushed = core.now(), remote = {}}, C)
  local s = shell.new(nil, sh, {edit = edit})
  self.session = s
  s.write = function(_, text) self:stream("stdout", text) end
  s.width = function() return 80 end
  sh.paint = nil
  sh.connected = function() return rawget(sess, "rc") end
  sh.remote_error = function(_, e) self.remote[#self.remote + 1] = e end
  self.system = magic.system
  magic.system = function(cmd) return system(self, cmd) end
  -- Ctrl-C and Jupyter's interrupt (SIGINT): the shell's handler, whole
  -- session. The kernel's own code is library code for it: an interrupt
  -- there waits for the user's code, or for the client's wait (which then
  -- interrupts the engines), instead of cutting a message in two.
  local sources = shell.library_sources()
  for _, name in ipairs{"plush.kernel", "plush.kernel_cell", "plush.kernel_display"} do
    local path = package.searchpath(name, package.path)
    if path then sources[#sources + 1] = "@" .. path end
  end
  s.edit.trap(true, sources)
  return self
end

function C:close()
  magic.system = self.system
  self:redirect(false)
  self.session.edit.trap(false)
  self.session.edit.arm(false)
end

return cell
