-- plush.magic_px: %px and %pn with ipyparallel's per-call options,
-- %pxconfig (their defaults) and %pxresult.
--
--   %px [--targets IDS|-t IDS] [--block|-b|--noblock|-a]
--       [--group-outputs engine|order|type] [--out NAME|-o NAME]
--       [--local] [--stream|--no-stream] [--] CODE
--
-- Options come first; the first word that is not one starts CODE. A word
-- that looks like an option ("-x", "--anything") but is none is an error,
-- never Lua: `%px --targets 1 x` must not run "--targets 1 x" as a
-- comment. `--` alone ends the options, so `%px -- -x` and
-- `%px -- --[[note]] y = 1` run code that starts with '-'.
--
-- Installed by plush.magic (install(magic, internals)), which hands over
-- what %result shares with %px: show(), the current view, tag/paint.
local pretty = require "plush.pretty"
local util = require "plush.util"

local M = {}

local GROUPS = {engine = true, order = true, type = true}

-- Output --no-stream holds at most (bytes, lines: a held line costs some
-- 250 bytes besides its text): past either, what is held is shown in
-- arrival order and the rest streams, so a flood cannot eat the memory.
M.HOLD_MAX, M.HOLD_LINES = 32 * 1024 * 1024, 150000

-- "all", "3", "0,2", "0-3,5" -> "all" or an array of ids; nil and why.
function M.parse_ids(s)
  if s == "all" then return "all" end
  local ids = {}
  for w in s:gmatch("[^,]+") do
    local a, b = w:match("^%s*(%d+)%s*%-%s*(%d+)%s*$")
    if a then
      a, b = math.tointeger(tonumber(a)), math.tointeger(tonumber(b))
      if a > b then return nil, ("not a range of engine ids: '%s'"):format(w) end
      for id = a, b do ids[#ids + 1] = id end
    else
      local id = math.tointeger(tonumber(w))
      if not id or id < 0 then return nil, ("not an engine id: '%s'"):format(w) end
      ids[#ids + 1] = id
    end
  end
  if #ids == 0 then return nil, ("not a list of engine ids: '%s'"):format(s) end
  return ids
end

-- The options: name -> {field, value} (a flag) or {field, kind} (takes one).
local OPTIONS = {
  ["--targets"] = {"targets", arg = "IDS"}, ["-t"] = {"targets", arg = "IDS"},
  ["--block"] = {"block", true}, ["-b"] = {"block", true},
  ["--noblock"] = {"block", false}, ["-a"] = {"block", false},
  ["--group-outputs"] = {"group", arg = "engine|order|type"},
  ["--out"] = {"out", arg = "NAME"}, ["-o"] = {"out", arg = "NAME"},
  ["--local"] = {"localrun", true},
  ["--stream"] = {"stream", true}, ["--no-stream"] = {"stream", false},
}

M.usage = "%px [-t IDS] [-b|-a] [--group-outputs engine|order|type] [-o NAME]"
  .. " [--local] [--stream|--no-stream] [--] CODE"

local function bad(magicname, msg)
  util.raise(("%%%s: %s"):format(magicname, msg))
end

--[[
  parse(line [, magicname]) -> opts, code. opts holds only what the line
  gives: targets ("all" or ids), block, group, out, localrun, stream.
  Raises a one-line error on an unknown option or a missing/bad value.
]]
function M.parse(line, magicname)
  magicname = magicname or "px"
  local opts, pos = {}, 1
  while true do
    local s = line:match("^%s*()", pos)
    local word = line:match("^%S+", s)
    if word == "--" then
      pos = s + 2
      break
    end
    -- an option: '-' then a letter, or '--' then anything
    if not word or not (word:match("^%-%a") or word:match("^%-%-")) then
      pos = s
      break
    end
    local name, value = word:match("^(%-%-[%w-]+)=(.*)$")
    name = name or word
    local o = OPTIONS[name]
    if not o then
      bad(magicname, ("unknown option %s (?%%%s lists them; `%%%s -- CODE` runs code"
        .. " that starts with '-')"):format(word, magicname, magicname))
    end
    pos = s + #word
    if o.arg then
      if not value then
        local vs = line:match("^%s+()", pos)
        value = vs and line:match("^%S+", vs)
        if not value then bad(magicname, ("%s needs %s"):format(name, o.arg)) end
        pos = vs + #value
      end
      if o[1] == "targets" then
        local ids, why = M.parse_ids(value)
        if not ids then bad(magicname, name .. ": " .. why) end
        value = ids
      elseif o[1] == "group" and not GROUPS[value] then
        bad(magicname, ("%s: '%s' is not engine, order or type"):format(name, value))
      elseif o[1] == "out" and not value:match("^[%a_][%w_]*$") then
        bad(magicname, ("%s: '%s' is not a Lua name"):format(name, value))
      end
      opts[o[1]] = value
    else
      if value then bad(magicname, name .. " takes no value") end
      opts[o[1]] = o[2]
    end
  end
  return opts, (line:sub(pos):gsub("^%s+", ""))
end

-- The code of a %px/%pn line after its options (for the shell's test of
-- a chunk left open), or nil when the options are wrong.
function M.code_of(name, rest)
  if name == "pn" then
    rest = rest:match("^%S+%s*(.*)$")
    if not rest then return nil end
  end
  local ok, _, code = pcall(M.parse, rest, name)
  return ok and code or nil
end

-------------------------------------------------------------------------------

function M.install(magic, I)
  local say, paint, tag, show, current_view = I.say, I.paint, I.tag, I.show, I.current_view

  local check_up = I.check_up

  -- Output held back (--no-stream), printed in the order `group` asks.
  local function held_output(shell, held, engines, group)
    if group == "order" then
      for _, h in ipairs(held) do say(shell, tag(shell, h[1], h[2] == 2 and "error") .. h[3]) end
      return
    end
    local function lines_of(engine, stream)
      for _, h in ipairs(held) do
        if h[1] == engine and (stream == nil or h[2] == stream) then
          say(shell, tag(shell, engine, h[2] == 2 and "error") .. h[3])
        end
      end
    end
    if group == "type" then
      for _, e in ipairs(engines) do lines_of(e, 1) end
      for _, e in ipairs(engines) do lines_of(e, 2) end
    else
      return lines_of -- engine: each engine's just before its result
    end
  end

  --[[
    %px on `v` with `o` (the line's options over the defaults): output
    tagged as it arrives (or held, --no-stream), then each engine's
    result. Ctrl-C while waiting interrupts the engines (the client does
    that) and leaves through here.
  ]]
  local function px(shell, v, code, o)
    if code == "" then util.raise("usage: " .. M.usage) end
    local expr = magic.chunk(code)
    local held, held_bytes, last = {}, 0, nil
    local function output(line, engine, stream)
      if o.stream then
        I.out(shell, tag(shell, engine, stream == 2 and "error" or "engine") .. line .. "\n")
      else
        held[#held + 1] = {engine, stream, line}
        held_bytes = held_bytes + #line + 1
        if held_bytes > M.HOLD_MAX or #held > M.HOLD_LINES then
          say(shell, paint(shell, "note", ("(over %s or %d lines of output held:"
            .. " the rest is shown as it comes)"):format(M.HOLD_MAX >= 1 << 20
              and ("%d MiB"):format(M.HOLD_MAX >> 20) or ("%d bytes"):format(M.HOLD_MAX),
            M.HOLD_LINES)))
          held_output(shell, held, last and last.targets or {}, "order")
          for k = #held, 1, -1 do held[k] = nil end -- in place: lines_of reads it
          o.stream = true
        end
      end
    end
    local nb = v:with{block = false, output = output}
    local d = expr ~= code and nb:_execute_expr(expr) or nb:execute(code)
    last = {deferred = d, targets = d.targets or {v.targets}}
    shell.last = last
    if o.out then (shell.env or _G)[o.out] = d end
    if o.localrun then
      -- here too, as a plain line would run (after sending, so that both run
      -- at once); its error is raised once the engines' results are shown
      local ok, err = pcall(function()
        local f, lerr = load(expr, "=(local)", "t", shell.env or _G)
        if not f then error(lerr, 0) end
        local r = table.pack(f())
        if util.has_value(r) then -- as the engines' results are shown
          local parts = {}
          for k = 1, r.n do parts[k] = pretty(r[k]) end
          say(shell, paint(shell, "name", "[local]") .. " " .. table.concat(parts, ", "))
        end
      end)
      if not ok then last.local_error = err end
    end
    local function results()
      local lines_of
      if not o.stream and o.group ~= "engine" then
        -- all of it first: wait as show does (Ctrl-C leaves from here)
        last.shown = true
        local ok, err = pcall(d.wait, d)
        if not ok then
          last.shown = false
          error(err, 0)
        end
      end
      if not o.stream then
        lines_of = held_output(shell, held, last.targets, o.group)
        last.printed = o.group ~= "engine" -- engine: show prints them, once it has waited
      end
      show(shell, last, lines_of and function(engine) lines_of(engine) end)
    end
    if not o.block then
      if shell.async_results then
        d:_observe(function()
          if not shell.async_results then return d:error() end
          if last.shown then return d:error() end
          local ok, err = pcall(results)
          if not ok then say(shell, paint(shell, "error", tostring(err))) end
        end)
        say(shell, paint(shell, "note",
          ("submitted to %d engine(s); the results print when they arrive"):format(#last.targets)))
      else
        say(shell, ("submitted to %d engine(s); %%result shows the results")
          :format(#last.targets))
      end
    else
      local ok, err = pcall(results)
      if not ok then
        -- the wait ended early (Ctrl-C): what was held is shown as it came
        if not o.stream and not last.printed and #held > 0 then
          -- (after the ^C the terminal echoed)
          if shell.async_results then I.out(shell, "\n") end
          held_output(shell, held, last.targets, "order")
        end
        d:_observe(function() end, true)
        shell.px_stopped = last -- what the interrupt's summary says of the others
        error(err, 0)
      end
    end
    if last.local_error ~= nil then error(last.local_error, 0) end
  end

  -- The line's options over the shell's defaults.
  local function effective(shell, opts)
    local o = {
      block = shell.block ~= false, stream = shell.stream ~= false,
      group = shell.group_outputs or "engine", localrun = false,
    }
    for k, v in pairs(opts) do o[k] = v end
    if opts.group and opts.stream == nil then o.stream = false end
    return o
  end

  magic.register("px", function(line, shell)
    local opts, code = M.parse(line, "px")
    local o = effective(shell, opts)
    local v
    if opts.targets then
      v = shell.rc:view(check_up(shell, opts.targets), {block = o.block})
    else
      v = current_view(shell)
    end
    px(shell, v, code, o)
  end, "run CODE on the current targets: " .. M.usage)

  magic.register("pn", function(line, shell)
    local n, rest = line:match("^(%S+)%s*(.*)$")
    local ids = n and not n:match("^%-") and M.parse_ids(n)
    if not ids or ids == "all" then
      util.raise("usage: %pn ENGINE[,ENGINE...] [options] CODE")
    end
    local opts, code = M.parse(rest, "pn")
    if opts.targets then util.raise("%pn: the engines are its first word, not --targets") end
    local o = effective(shell, opts)
    px(shell, shell.rc:view(check_up(shell, ids), {block = o.block}), code, o)
  end, "run CODE on some engines: %pn 1 CODE, %pn 0,2 CODE (the options of %px)")

  magic.register("pxconfig", function(line, shell)
    local opts, rest = M.parse(line, "pxconfig")
    if rest ~= "" then util.raise(("%%pxconfig: not an option: %s"):format(rest)) end
    if opts.out or opts.localrun then
      util.raise("%pxconfig: --out and --local are for one %px, not defaults")
    end
    if next(opts) == nil then
      say(shell, ("targets %s, %s, %s, group-outputs %s"):format(
        I.format_targets(shell.targets),
        shell.block == false and "noblock" or "block",
        shell.stream == false and "no-stream" or "stream",
        shell.group_outputs or "engine"))
      return
    end
    if opts.targets then
      shell.targets = check_up(shell, opts.targets)
      shell.view = nil
    end
    if opts.block ~= nil then
      shell.block = opts.block
      if shell.view then shell.view = shell.view:with{block = shell.block} end
    end
    if opts.group then
      shell.group_outputs = opts.group
      if opts.stream == nil then shell.stream = false end
    end
    if opts.stream ~= nil then shell.stream = opts.stream end
  end, "the defaults of %px's options: %pxconfig [-t IDS] [-b|-a] [--stream|--no-stream]"
    .. " [--group-outputs engine|order|type]; alone: shows them")

  magic.register("pxresult", function(line, shell)
    magic.run("%result " .. line, shell)
  end, "the same as %result")
end

return M
