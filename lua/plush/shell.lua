-- plush.shell: the interactive shell (`plush` with no arguments).
--
-- A Lua REPL in the client (where `rc`, `plush` and the user's globals
-- live) with the %magics that reach the engines. On a terminal it edits
-- lines with libedit (plush.edit, shell/edit.c): history, completion, and
-- one wait for the terminal and the controller together, so that output
-- and results arriving while the user types are printed above the line
-- being typed instead of through it. Without a terminal it reads plain
-- lines, like `lua` does.
--
--   require("plush.shell").run(rc, sh)   -- sh: the magics' shell table
--
-- Over 600 lines: the line editor's callbacks, the wait on terminal and
-- controller together, and running a line (magics, =, auto-print) share
-- one session; the magics are plush.magic, Ctrl-C's offers
-- plush.shell_intr.
local core = require "plush.core"
local debugger = require "plush.debugger"
local deferred = require "plush.deferred"
local errors = require "plush.errors"
local inspect = require "plush.inspect"
local magic = require "plush.magic"
local session_magics = require "plush.magic_session"
local util = require "plush.util"

local shell = {}

-------------------------------------------------------------------------------
-- Colours: only on a terminal, never under NO_COLOR (https://no-color.org)
-- or TERM=dumb.
-------------------------------------------------------------------------------

local styles = {
  prompt = "1;32", cont = "2", engine = "36", error = "31", note = "2",
  name = "1", banner = "1",
}

function shell.colors_on(fd)
  local nc = os.getenv("NO_COLOR")
  if nc and nc ~= "" then return false end
  if os.getenv("TERM") == "dumb" then return false end
  return core.isatty(fd or 1) == true
end

-- A paint(style, text) function for the magics' shell.paint, or nil (no
-- colours). `wrap`: mark the escapes as invisible for libedit's prompt.
function shell.painter(on, wrap)
  if not on then return nil end
  local open, close = "", ""
  if wrap then open, close = "\1", "\2" end
  return function(style, text)
    local c = styles[style]
    if not c or text == "" then return text end
    return open .. "\27[" .. c .. "m" .. close .. text .. open .. "\27[0m" .. close
  end
end

local function plain(_, text) return text end

-------------------------------------------------------------------------------
-- Chunks: what `lua` does with a line, plus `%px` code over several lines.
-------------------------------------------------------------------------------

--[[
  compile(code, chunkname, env) -> f, or nil and "incomplete", or nil and
  the syntax error. An expression is compiled as `return EXPR` so that its
  values are printed; `= EXPR` is the old spelling of the same.
]]
function shell.compile(code, chunkname, env)
  local expr = code:match("^%s*=(.*)$")
  if expr then
    code = "return " .. expr
  else
    local f = load("return " .. code, chunkname, "t", env)
    if f then return f end
  end
  local f, err = load(code, chunkname, "t", env)
  if f then return f end
  if err:match("<eof>$") then return nil, "incomplete" end
  return nil, err
end

local function lua_incomplete(code)
  local f, err = load(magic.chunk(code), "=px")
  return not f and err:match("<eof>$") ~= nil
end

--[[
  incomplete(text, sh): whether `text` waits for more lines. Lua is, like
  in `lua`, while it ends inside a statement; so is the code of %px,
  %pn and %autopx lines (checked here: it is Lua 5.4 on both sides).
  Other magics, ?help and !commands are one line.
]]
function shell.incomplete(text, sh)
  if magic.is_magic(text) then
    local name, rest = text:match("^%s*%%([%w_]+)%s*(.*)$")
    local code
    if name == "px" or name == "pn" then
      code = require("plush.magic_px").code_of(name, rest)
    end
    return code ~= nil and code:match("%S") ~= nil and lua_incomplete(code)
  end
  if text:match("^%s*[?!]") or text:match("%?%s*$") then return false end
  if sh.autopx then return lua_incomplete(text) end
  local _, why = shell.compile(text, "=stdin", sh.env)
  return why == "incomplete"
end

-------------------------------------------------------------------------------
-- The session
-------------------------------------------------------------------------------

local Session = {}
Session.__index = Session

local CANCEL = {} -- read_line's answer to Ctrl-C on a continuation line

function Session:paint(style, text)
  return (self.sh.paint or plain)(style, text)
end

-- Output while the user types waits in outbuf for the next redraw; at
-- other times it goes straight out.
function Session:write(text)
  if self.editing then
    self.outbuf[#self.outbuf + 1] = text
  else
    io.stdout:write(text)
    io.stdout:flush()
  end
end

function Session:say(text)
  self:write(text .. "\n")
end

function Session:width()
  return self.edit and self.edit.width() or 80
end

-- "plush [2 up | all]> ": the engines up, the targets, async mode.
function Session:prompt_text(cont)
  local p = self.prompt_paint
  if self.asking then return self.asking end
  if cont then return p("cont", ">>") .. " " end
  if self.ask_prompt then return self.ask_prompt end
  local rc = self.rc
  local status
  if rc == nil or rc.lost or rc.closed then
    status = "[no controller]"
  else
    -- after the client redialled a restarted controller, ask again
    if not rc._ids then pcall(rc.ids, rc) end
    local ids = rc._ids or {}
    local t = self.sh.targets
    t = type(t) == "table" and table.concat(t, ",") or tostring(t or "all")
    status = ("[%d up | %s%s]"):format(#ids, t, self.sh.block == false and " | async" or "")
  end
  -- "[n] ": the number the line will have (In[n], %history)
  return ("[%d] "):format((self.sh.count or 0) + 1)
    .. p("prompt", self.sh.autopx and "%px" or "plush") .. " " .. p("note", status) .. "> "
end

function Session:hide()
  if self.editing and self.edit then self.edit.hide() end
end

function Session:show()
  if self.editing and self.edit then
    self.edit.prompt(self:prompt_text(self.cont))
    self.edit.show()
  end
end

function Session:flush_out()
  if #self.outbuf == 0 then return end
  local text = table.concat(self.outbuf)
  self.outbuf = {}
  io.stdout:write(text)
  if text:sub(-1) ~= "\n" then io.stdout:write("\n") end
  io.stdout:flush()
end

function Session:connected()
  local rc = self.rc
  return rc ~= nil and not rc.closed and not rc.lost
end

--[[
  Wait for the terminal, the controller, or Ctrl-C. Returns readable,
  sigint. What the controller sends meanwhile (output, results of %block
  off, engines coming and going) is handled here, between hiding the line
  being typed and drawing it again. A Ctrl-C here interrupts nothing
  remote: it is the prompt's, it clears the line.
]]
function Session:wait_input()
  if not self:connected() then
    local r = self.edit.wait(nil)
    local sigint = self.edit.interrupted()
    return r, sigint
  end
  local rc = self.rc
  core.catch_sigint(true)
  local ok, evs = pcall(rc.conn.poll, rc.conn, nil, 0)
  core.catch_sigint(false)
  if not ok then evs = {{kind = "closed", message = util.strip_where(tostring(evs))}} end
  local readable, sigint, news = false, false, {}
  for _, ev in ipairs(evs) do
    if ev.kind == "readable" then
      readable = true
    elseif ev.kind == "sigint" then
      sigint = true
    else
      news[#news + 1] = ev
    end
  end
  if #news > 0 or #self.outbuf > 0 then
    self:hide()
    for _, ev in ipairs(news) do
      local dok, err = pcall(rc._dispatch, rc, ev)
      if not dok then self:say(self:paint("error", tostring(err))) end
    end
    if rc.lost then
      self:say(self:paint("error", "lost the controller: " .. rc.lost)
        .. "; Lua goes on here, and the next request to the engines dials again")
    end
    self:flush_out()
    self:show()
  end
  -- a Ctrl-C while that output was printed (the SHELL layer had it)
  if self.edit.interrupted() then sigint = true end
  return readable, sigint
end

--[[
  One line from the user: the line, nil at end of input, or CANCEL after
  Ctrl-C on a continuation line (the chunk is dropped). Ctrl-C on the
  first line clears it and asks again, as shells do.
]]
function Session:read_line(cont)
  local E = self.edit
  if not self.editor then
    if self.prompts then
      io.stdout:write(self.asking or (cont and ">> " or self:prompt_text(false)))
      io.stdout:flush()
    end
    return io.read("l")
  end
  E.interrupted() -- a Ctrl-C from before the prompt is not for it
  self.cont = cont
  self:flush_out()
  E.start(self:prompt_text(cont))
  self.editing = true
  while true do
    local readable, sigint = self:wait_input()
    if sigint then
      if cont then
        E.stop()
        self.editing = false
        io.stdout:write("^C\n")
        return CANCEL
      end
      E.cancel()
    elseif readable then
      local line = E.feed()
      if line ~= nil then
        E.stop()
        self.editing = false
        if line == false then return nil end
        return line
      end
    end
  end
end

-- A line typed at another prompt (%debug's): the line, nil at its end.
function Session:ask(prompt)
  self.ask_prompt = prompt
  self.edit.arm(false)
  local ok, line = pcall(self.read_line, self, false)
  self.edit.arm(true)
  self.ask_prompt = nil
  if not ok then error(line, 0) end
  return line
end

-- A whole chunk: the first line and its continuation lines.
function Session:read_chunk()
  local text = self:read_line(false)
  if text == nil then return nil end
  while shell.incomplete(text, self.sh) do
    local more = self:read_line(true)
    if more == CANCEL then return "" end
    if more == nil then break end
    text = text .. "\n" .. more
  end
  return text
end

function Session:remember(text)
  if not self.edit or not self.edit.available or not self.histfile then return end
  if text == self.lastline then return end
  self.lastline = text
  self.edit.history_add(text)
  if not self.edit.history_save(self.histfile) and not self.warned then
    self.warned = true
    self:say(self:paint("note", "cannot write the history to " .. self.histfile))
  end
end

-- The part of a traceback below the user's chunk is the shell's own.
local here = debug.getinfo(1, "S").short_src
local function trim(tb)
  local cut = tb:find("\n[^\n]*" .. here:gsub("%p", "%%%0") .. ":")
  if cut then tb = tb:sub(1, cut - 1) end
  tb = tb:gsub("\n%s*%[C%]: in function 'xpcall'$", "")
  tb = tb:gsub("\n%s*%(%.%.%.tail calls%.%.%.%)$", "")
  return (tb:gsub("\nstack traceback:$", ""))
end

-- A syntax error is reported as it is: no traceback of the shell's.
local Syntax = {}

-- Frames of plush's own code (lua/plush, and the magics it ships in
-- share/plush/magics) are the shell's business, not the user's: a usage
-- mistake in a magic is one line. PLUSH_DEBUG=1 keeps them all.
local ours = here:match("^(.*/)") or here
local function own_source(src)
  return src:sub(1, #ours) == ours or src:find("share/plush/magics/", 1, true) ~= nil
end
local function debugging()
  local d = os.getenv("PLUSH_DEBUG")
  return d ~= nil and d ~= "" and d ~= "0"
end

local function user_frames(tb)
  local msg, frames = tb:match("^(.-)\nstack traceback:\n(.*)$")
  if not msg then return tb end
  if msg:sub(1, #ours) == ours then -- %rerun's Ctrl-C
    msg = msg:match("^[^:]*:%d+: (interrupted)$") or msg
  end
  local keep, user = {}, false
  for line in (frames .. "\n"):gmatch("([^\n]*)\n") do
    local src = line:match("^%s*(.-):")
    local own = src and own_source(src) -- plush's frame: dropped
    local plumbing = line:match("^%s*%[C%]") or line:match("tail calls")
    if not own and (user or not plumbing) then
      user = true
      keep[#keep + 1] = line
    end
  end
  -- the C calls below the user's last frame: plush's calling it
  while #keep > 0 and (keep[#keep]:match("^%s*%[C%]") or keep[#keep]:match("tail calls")) do
    keep[#keep] = nil
  end
  if #keep == 0 then return msg end
  return msg .. "\nstack traceback:\n" .. table.concat(keep, "\n")
end

local function handler(e)
  debugger.capture(e, 2, here) -- the frames %debug walks
  if type(e) == "string" then
    local tb = trim(debug.traceback(e, 2))
    return debugging() and tb or user_frames(tb)
  end
  if getmetatable(e) == Syntax then return e.message end
  return e
end

-- %rerun's and %reset's: Session:rerun(text), Session:confirm(question).
session_magics.install_session(Session, magic)

-- Ctrl-C during a remote wait: plush.shell_intr says what was interrupted,
-- waits for the answers, and offers a restart of an engine that cannot obey.
require("plush.shell_intr").install(Session, shell)

-- Tab: local names through metatables, remote names of the targets.
require("plush.shell_complete").install(Session, shell)

function Session:report(e)
  -- the error of a request that an earlier Ctrl-C cancelled (a Deferred
  -- of a tuple-space take, got later): said as it is
  if errors.is(e, "Interrupted") and e.message ~= "interrupted" then
    return self:say(self:paint("error", tostring(e)))
  end
  -- after Ctrl-C the terminal has echoed ^C where the cursor was
  if self.prompts and (errors.is(e, "Interrupted") or (type(e) == "string"
    and e:match("^[^\n]*interrupted\n"))) then
    io.stdout:write("\n")
  end
  local rc, px = self.rc, self.sh.px_stopped
  self.sh.px_stopped = nil -- set by a %px that Ctrl-C stopped (magic_px.lua)
  if type(e) == "string" and e:match("^[^\n]*interrupted\n") and self:connected()
    and next(rc.pending) ~= nil then
    -- Ctrl-C hit the shell's or a magic's code while tasks were in flight:
    -- they are what the user wants stopped
    rc:_interrupt_pending()
    e = errors.Interrupted{}
  end
  if errors.is(e, "Interrupted") then
    self:interrupted_remote(px)
  elseif errors.is(e, "CompositeError") and type(e.errors) == "table" then
    -- each failure in full, tracebacks included
    self:say(self:paint("error", ("CompositeError: %d tasks failed"):format(#e.errors)))
    for _, err in ipairs(e.errors) do
      local text = tostring(err)
      if type(err) == "table" and err.engine ~= nil and not text:find("engine", 1, true) then
        text = "[engine " .. tostring(err.engine) .. "] " .. text
      end
      self:say(self:paint("error", text))
    end
  elseif type(e) == "string" then
    self:say(self:paint("error", e))
  elseif type(e) == "table" and getmetatable(e) and getmetatable(e).__tostring then
    self:say(self:paint("error", tostring(e)))
  else
    self:say(self:paint("error", ("(error object is a %s value)"):format(type(e))))
  end
end

-- Values the way `lua` prints them (strings as they are), tables laid out
-- to the terminal's width.
function Session:print_values(r)
  if r.n == 0 then return end
  local parts = {}
  for k = 1, r.n do
    local v = r[k]
    parts[k] = type(v) == "string" and v or inspect.format(v, self:width())
  end
  self:say(table.concat(parts, "\t"))
end

function Session:load(code)
  local f, err = shell.compile(code, "=stdin", self.sh.env)
  if not f then
    if err == "incomplete" then
      f, err = load(code, "=stdin", "t", self.sh.env)
    end
    error(setmetatable({message = err}, Syntax), 0)
  end
  debugger.keep_chunk(code, "=stdin") -- ??name shows its functions' source
  return f
end

-- %time's way to run Lua here.
function Session:eval(code)
  self:print_values(table.pack(self:load(code)()))
end

-- The message handler execute runs chunks under (the traceback, without
-- the shell's own frames), for the Jupyter kernel's cells.
shell.handler = handler

--[[
  Run one chunk: a magic, ?help, !command, %px under autopx, or Lua.
  Ctrl-C interrupts it (local code by a hook, remote waits in the
  client). The chunk is called by xpcall itself, so that a traceback
  calls it "main chunk", as `lua` does.
]]
function Session:execute(text)
  if not text:match("%S") then return true end
  self.sh.failed = false
  self:remember(text)
  session_magics.number(self.sh, text)
  self.sh.width = self:width()
  local E = self.edit
  E.arm(true)
  local r = table.pack(xpcall(function()
    if magic.handle(text, self.sh) then return true end
    return false, self:load(text)
  end, handler))
  if r[1] and r[2] == false then
    r = table.pack(xpcall(r[3], handler))
    E.arm(false)
    if r[1] then
      local values = table.pack(table.unpack(r, 2, r.n))
      self:print_values(values)
      session_magics.record(self.sh, values)
    end
  end
  E.arm(false)
  E.interrupted()
  if not r[1] then self:report(r[2]) end
  if not r[1] then debugger.note(self.sh, r[2], text) end
  return r[1] and not self.sh.failed
end

function Session:banner()
  local rc = self.rc
  local where = ""
  if rc and rc.owned and rc.owned.threads then
    where = " (threads of this process, stopped when you leave)"
  elseif rc and rc.owned then
    where = " (an embedded cluster, stopped when you leave)"
  elseif rc and rc.info then
    where = (" (cluster '%s' at %s:%s)"):format(tostring(rc.info.profile or "default"),
      tostring(rc.info.host), tostring(rc.info.port))
  end
  local n = rc and rc._ids and #rc._ids or 0
  io.stdout:write(self:paint("banner", ("plush %s"):format(require("plush").version)),
    (" on %s, %d engine%s%s\n"):format(_VERSION, n, n == 1 and "" or "s", where),
    self:paint("note", "%help for help, %magic lists the magics, Tab completes, Ctrl-D leaves"),
    "\n")
  io.stdout:flush()
end

function Session:close()
  if self.closed then return end
  self.closed = true
  if self.editing then
    self.edit.stop()
    self.editing = false
  end
  self:flush_out()
  self.sh.async_results = false
  rawset(os, "exit", self.real_exit)
  deferred.on_unhandled = self.old_unhandled
  if self.rc then
    self.rc.on_event = self.old_on_event
    self.rc.output = self.old_output
  end
  self.edit.trap(false)
  self.edit.arm(false)
end

-------------------------------------------------------------------------------

-- The chunk sources of the client library, where a Ctrl-C waits for the
-- client's own handling (see shell/edit.c). The shell's own code is one:
-- its output handler runs inside the client's pump, under a pcall that
-- would otherwise take the interrupt for a failed handler.
-- (require loads a module as loadfile(path) does: its source is "@path".)
function shell.library_sources()
  local out = {}
  for _, name in ipairs{"plush", "plush.client", "plush.view", "plush.deferred",
      "plush.errors", "plush.util", "plush.cluster", "plush.pretty", "plush.progress",
      "plush.shell", "plush.shell_intr", "plush.shell_complete", "plush.inspect"} do
    local path = package.searchpath(name, package.path)
    if path then out[#out + 1] = "@" .. path end
  end
  return out
end

function shell.history_path()
  local state = os.getenv("XDG_STATE_HOME")
  if not state or state == "" then state = (os.getenv("HOME") or ".") .. "/.local/state" end
  return state .. "/plush/history"
end

local function ensure_dir(file)
  local dir = file:match("^(.*)/[^/]*$")
  if not dir then return end
  local f = io.open(file, "a")
  if f then
    f:close()
    return
  end
  os.execute("mkdir -p -m 700 " .. util.shquote(dir) .. " 2>/dev/null")
end

local function on_event(self, v)
  if type(v) ~= "table" then return end
  if v.event == "engine_up" then
    self:say(self:paint("note", ("engine %s is up"):format(tostring(v.id))))
  elseif v.event == "engine_down" then
    self:say(self:paint("note", ("engine %s is down%s"):format(tostring(v.id),
      v.reason and (": " .. tostring(v.reason)) or "")))
  end
end

--[[
  new(rc, sh [, opts]) -> a session, not started: the REPL's state and
  methods (complete, execute, ...). run() is new() plus the terminal.
  opts.edit replaces plush.edit (tests).
]]
function shell.new(rc, sh, opts)
  opts = opts or {}
  local E = opts.edit or require "plush.edit"
  local tty_in, tty_out = core.isatty(0), core.isatty(1)
  local self = setmetatable({
    rc = rc, sh = sh, edit = E, outbuf = {}, names_cache = {},
    editor = E.available and tty_in and tty_out,
    prompts = tty_in, tty = tty_in and tty_out,
    real_exit = os.exit,
    old_unhandled = deferred.on_unhandled,
  }, Session)
  local colors = shell.colors_on(1)
  sh.paint = shell.painter(colors)
  self.prompt_paint = shell.painter(colors, self.editor) or plain
  sh.out = function(text) self:write(text) end
  sh.eval = function(code) self:eval(code) end
  sh.ask = function(prompt) return self:ask(prompt) end
  sh.async_results = true
  sh.connected = function() return self:connected() and rc or nil end
  sh.rerun = function(text) self:rerun(text) end
  sh.confirm = function(question) return self:confirm(question) end
  sh.history_all = self.editor and E.history and function() return E.history() end or nil
  return self
end

--[[
  run(rc, sh [, opts]) -> exit status. `rc` the connected Client, `sh` the
  magics' shell table (cli.lua's session). Returns when the input ends
  (Ctrl-D); os.exit() leaves too, after the same clean-up, closing `rc`
  (which stops an embedded cluster).
]]
function shell.run(rc, sh, opts)
  local self = shell.new(rc, sh, opts)
  local E = self.edit
  if rc then
    pcall(rc.ids, rc)
    self.old_on_event, self.old_output = rc.on_event, rc.output
    rc.on_event = function(v) on_event(self, v) end
    if rc.output == nil then
      rc.output = function(line, engine, stream)
        self:write(self:paint(stream == 2 and "error" or "engine",
          "[engine " .. tostring(engine) .. "]") .. " " .. line .. "\n")
      end
    end
  end
  deferred.on_unhandled = function(e, d, where)
    self:say(self:paint("error", "unhandled error in " .. deferred.where(d, where) .. ": "
      .. tostring(e)))
  end
  -- os.exit() leaves like Ctrl-D does: the cluster we started stops
  rawset(os, "exit", function(code, close)
    self:close()
    if rc then pcall(rc.close, rc) end
    io.stdout:flush()
    return self.real_exit(code, close)
  end)
  E.trap(true, shell.library_sources())
  if self.editor then
    self.histfile = shell.history_path()
    ensure_dir(self.histfile)
    E.history_size(tonumber(os.getenv("PLUSH_HISTSIZE") or "") or 1000)
    E.history_load(self.histfile)
    E.completer(function(word, line, start)
      return self:complete(word, line, start)
    end)
  end
  if self.tty then self:banner() end
  -- the user's init.lua: magics, %pxconfig defaults, globals
  local init_error = session_magics.load_init(sh, nil, E) -- E: Ctrl-C interrupts it
  if init_error then self:say(self:paint("error", init_error)) end
  local status = 0
  local ok, err = pcall(function()
    while true do
      local text = self:read_chunk()
      if text == nil then break end
      -- piped input stops at its first error, as `lua5.4 < file` does
      if not self:execute(text) and not self.prompts then
        status = 1
        break
      end
    end
    -- a script on stdin wants the results of what it started; a person
    -- who pressed Ctrl-D wants to leave
    if not self.editor and self:connected() then
      E.arm(true)
      local done, why = pcall(rc.wait, rc)
      E.arm(false)
      if not done then
        self:report(why)
        status = 1
      end
    end
  end)
  if self.editor then io.stdout:write("\n") end
  self:close()
  if not ok then error(err, 0) end
  return status
end

return shell
