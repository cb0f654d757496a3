-- plush.magic: the %magic interpreter shared by `plush -e`, `plush run`
-- and the interactive shell.
--
-- A magic is function(line, shell) where `line` is what follows its name
-- and `shell` the session's state:
--   shell.rc       the Client
--   shell.view     the DirectView %px runs on (built from targets/block)
--   shell.targets  "all" or an array of engine ids
--   shell.block    false: %px submits and returns; %result shows later
--   shell.last     what %result shows
--   shell.out      function(s) writing text (default io.write)
--   shell.env      the table %push/%pull read and write (default _G)
--   shell.autopx   true: lines that are not magics go to %px
--   shell.paint    function(style, text) colouring text (the shell sets it
--                  on a terminal); absent: plain text
--   shell.async_results  true: with %block off, %px results print when
--                  they arrive (the interactive shell, which keeps waiting)
--   shell.width    the terminal's width, for %help (default 80)
--   shell.connected  function() -> the Client when one is connected, so
--                  that %help asks the engines without starting a cluster
--   shell.remote_error  function(engine, e): when set, an engine's error
--                  that %px/%pn/%result would print is handed to it instead
--                  (the Jupyter kernel makes it an error output)
-- A magic that returns a value has it printed.
--
-- Besides %magics, handle() knows the shell's two other prefixes: `?name`
-- (or `name?`) is %help name, and `!cmd` runs cmd in the system shell.
--
-- Over 600 lines: the magics share the shell table and its view, and
-- each is a few lines; the REPL itself is plush.shell, Ctrl-C's second
-- thoughts plush.shell_intr.
local core = require "plush.core"
local pretty = require "plush.pretty"
local util = require "plush.util"

local magic = {}

local registry = {}
local builtin = true -- set while this file registers its own magics
local loading        -- the file load_dir is running, for %magic

local function out(shell, s)
  (shell.out or io.write)(s)
end

local function say(shell, s)
  out(shell, s .. "\n")
end

-- magic.register(name, fn [, help]); also plush.magic(name, fn, help).
function magic.register(name, fn, help)
  util.check(name, 1, "magic", "string")
  name = name:gsub("^%%", "")
  if not name:match("^[%a_][%w_]*$") then
    util.argerror(1, "magic", "a magic name is letters, digits and '_'")
  end
  util.check(fn, 2, "magic", "function")
  util.check(help, 3, "magic", "string", "nil")
  registry[name] = {fn = fn, help = help or "", builtin = builtin, file = loading}
end

-- The help line of a magic, or nil when there is no such magic.
function magic.help_of(name)
  local m = registry[(name:gsub("^%%", ""))]
  return m and m.help
end

function magic.names()
  local names = {}
  for name in pairs(registry) do names[#names + 1] = name end
  table.sort(names)
  return names
end

function magic.is_magic(line)
  return line:match("^%s*%%") ~= nil
end

-- Run one magic line ("%name rest"); raises on an unknown magic.
function magic.run(line, shell)
  util.check(line, 1, "run", "string")
  util.check(shell, 2, "run", "table")
  local name, rest = line:match("^%s*%%([%w_]+)%s*(.-)%s*$")
  if not name then util.raise("not a magic: " .. line) end
  local m = registry[name]
  if not m then
    local why = #magic.broken > 0 and ("; " .. magic.broken[1]) or ""
    util.raise(("unknown magic %%%s (%%magic lists them)%s"):format(name, why))
  end
  local r = table.pack(m.fn(rest, shell))
  if r.n > 0 and r[1] ~= nil then say(shell, pretty(r[1])) end
  return true
end

-- `?name`, `??name`, `name?`, `name??`: what %help gets, or nil.
local function help_request(line)
  local q = line:match("^%s*%?(.-)%s*$")
  if q then return q end
  local name, marks = line:match("^%s*(%%?[%a_][%w_.:]*)(%?%??)%s*$")
  if name then return (marks == "??" and "?" or "") .. name end
end

-- `!cmd`: the system shell, on the terminal (an interactive command
-- works); a failure's status is printed.
function magic.system(cmd, shell)
  util.check(cmd, 1, "system", "string")
  io.stdout:flush()
  if not cmd:match("%S") then return end
  local ok, how, code = os.execute(cmd)
  if not ok and how then
    say(shell, ("%s %s"):format(how == "signal" and "killed by signal" or "exit", tostring(code)))
  end
end

--[[
  What a shell does with a line: a %magic, ?help, !command, or %px of it
  under %autopx. True when handled here, false when it is Lua for the
  caller to run.
]]
function magic.handle(line, shell)
  if magic.is_magic(line) then return magic.run(line, shell) end
  local q = help_request(line)
  if q then return magic.run("%help " .. q, shell) end
  local cmd = line:match("^%s*!(.*)$")
  if cmd then
    magic.system(cmd, shell)
    return true
  end
  if shell.autopx and line:match("%S") then
    return magic.run("%px -- " .. line, shell) -- code, never options
  end
  return false
end

local function current_view(shell)
  if not shell.view then
    shell.view = shell.rc:view(shell.targets or "all", {block = shell.block ~= false})
  end
  return shell.view
end

local function paint(shell, style, text)
  if shell.paint then return shell.paint(style, text) end
  return text
end

local function tag(shell, engine, style)
  return paint(shell, style or "engine", "[engine " .. tostring(engine) .. "]") .. " "
end

-- The per-engine Deferreds of a %px and the engine of each.
local function children_of(last)
  local d = last.deferred
  local list = d.deferreds or {d}
  local engines = {}
  for i, c in ipairs(list) do engines[i] = last.targets[i] or c.metadata.engine end
  return list, engines
end

-- Print each engine's result (unless all its values are nil) or error, in
-- target order;
-- before(engine), when given, is called before each (held output). The
-- lines go out together, one write for a %px on 1,000 engines rather
-- than a write (and a flush, in the shell) per engine.
local NONE = {}

local function show(shell, last, before)
  local d = last.deferred
  -- while we wait, results that arrive are ours to print, not the async
  -- observer's (px); if the wait ends early they are its again
  last.shown = true
  local ok, err = pcall(d.wait, d)
  if not ok then
    last.shown = false
    error(err, 0)
  end
  d:error() -- looked at here, engine by engine
  local children, engines = children_of(last)
  local lines, n = {}, 0
  local function flush()
    if n > 0 then out(shell, table.concat(lines, "\n", 1, n) .. "\n") end
    n = 0
  end
  for i, c in ipairs(children) do
    local engine = engines[i]
    if before then
      flush()
      before(engine)
    end
    local r = table.pack(pcall(c.get, c))
    if not r[1] then
      shell.failed = true -- `plush -e` and piped input exit non-zero
    end
    if not r[1] and shell.remote_error then
      flush()
      shell.remote_error(engine, r[2])
    elseif not r[1] then
      n = n + 1
      lines[n] = tag(shell, engine, "error") .. paint(shell, "error", tostring(r[2]))
    elseif util.has_value(r, 2) then -- r = {true, results...}
      local ts = c.metadata.tostring
      n = n + 1
      if r.n == 2 and not ts then
        lines[n] = tag(shell, engine) .. pretty(r[2])
      else
        local parts, shown = {}, {}
        for _, k in ipairs(ts or NONE) do shown[k + 1] = true end
        for k = 2, r.n do
          -- a value that could not travel: its tostring, said to be one
          parts[#parts + 1] = shown[k] and (tostring(r[k]) .. paint(shell, "note", " (tostring)"))
            or pretty(r[k])
        end
        lines[n] = tag(shell, engine) .. table.concat(parts, ", ")
      end
    end
  end
  flush()
end

--[[
  The chunk %px sends for `code`: like the Lua REPL, an expression is
  sent as `return EXPR`, so that `%px x` shows each engine's x; `= EXPR`
  is the old spelling of the same, as at the prompt.
]]
function magic.chunk(code)
  local expr = code:match("^%s*=(.*)$")
  if expr then return "return " .. expr end
  if load("return " .. code, "=px") then return "return " .. code end
  return code
end

local function parse_ids(s)
  local ids = {}
  for w in s:gmatch("[^%s,]+") do
    local id = math.tointeger(tonumber(w))
    if not id then util.raise(("not an engine id: '%s'"):format(w)) end
    ids[#ids + 1] = id
  end
  return ids
end

local function names_of(s, magicname)
  local names = {}
  for w in s:gmatch("[^%s,]+") do names[#names + 1] = w end
  if #names == 0 then util.raise(("usage: %%%s NAME [NAME ...]"):format(magicname)) end
  return names
end

local function format_targets(t)
  if type(t) ~= "table" then return tostring(t or "all") end
  local s = {}
  for i, id in ipairs(t) do s[i] = tostring(id) end
  return table.concat(s, ",")
end

-- Engine ids ("all" passes) that are all up: an engine that is not would
-- fail every %px on it, so it is refused at once.
local function check_up(shell, ids)
  if ids == "all" then return ids end
  local up = {}
  for _, id in ipairs(shell.rc:ids()) do up[id] = true end
  for _, id in ipairs(ids) do
    if not up[id] then util.raise(("no engine %d (%%engines lists them)"):format(id)) end
  end
  return ids
end

-- %px, %pn (options as ipyparallel's), %pxconfig, %pxresult
require("plush.magic_px").install(magic, {say = say, out = out, paint = paint, tag = tag,
  show = show, current_view = current_view, format_targets = format_targets,
  check_up = check_up})

magic.register("result", function(_, shell)
  if not shell.last then
    say(shell, "no results yet")
    return
  end
  show(shell, shell.last)
end, "show the results of the last %px/%pn again")

magic.register("autopx", function(_, shell)
  shell.autopx = not shell.autopx
  say(shell, "autopx " .. (shell.autopx and "on: lines go to %px" or "off"))
end, "toggle sending every line to the engines as %px")

magic.register("block", function(line, shell)
  if line == "" then
    say(shell, "block " .. (shell.block == false and "off" or "on"))
    return
  end
  if line ~= "on" and line ~= "off" then util.raise("usage: %block on|off") end
  shell.block = line == "on"
  if shell.view then shell.view = shell.view:with{block = shell.block} end
end, "blocking or not for %px: %block on|off")

local function up_ids(shell, line) return check_up(shell, parse_ids(line)) end

magic.register("targets", function(line, shell)
  if line == "" then
    say(shell, "targets " .. format_targets(shell.targets))
    return
  end
  local t = line == "all" and "all" or up_ids(shell, line)
  shell.view = shell.rc:view(t, {block = shell.block ~= false})
  shell.targets = t
end, "the engines %px addresses: %targets all|0,2,...")

magic.register("restart", function(line, shell)
  local t
  if line == "" then t = shell.targets or "all"
  elseif line == "all" then t = "all"
  else t = up_ids(shell, line) end
  local ids = shell.rc:restart(t ~= "all" and t or nil)
  if #ids == 0 then return say(shell, "no engine is up: nothing restarted") end
  table.sort(ids)
  say(shell, ("restarted %s: a fresh namespace"):format(#ids == 1
    and ("engine " .. tostring(ids[1])) or ("engines " .. format_targets(ids))))
end, "fresh namespaces on engines (what runs is stopped): %restart [all|0,2,...]")

magic.register("engines", function(_, shell)
  local list = shell.rc:engines()
  if #list == 0 then
    say(shell, "no engines")
    return
  end
  table.sort(list, function(a, b) return a.id < b.id end)
  for _, e in ipairs(list) do
    local mpi = e.rank and (" rank %s/%s"):format(e.rank, e.size) or ""
    say(shell, ("engine %-3s %-5s queue %-3s %s pid %s%s"):format(tostring(e.id),
      tostring(e.state or "?"), tostring(e.queue or 0), tostring(e.host or "?"),
      tostring(e.pid or "?"), mpi))
  end
end, "the engines, their state, load and host")

magic.register("magic", function(_, shell)
  local user = {}
  say(shell, "built-in magics:")
  for _, name in ipairs(magic.names()) do
    local m = registry[name]
    if m.builtin then
      say(shell, ("  %s %s"):format(paint(shell, "name", ("%%%-9s"):format(name)), m.help))
    else
      user[#user + 1] = name
    end
  end
  say(shell, "  ?name      what name is, here and on the engines (??name: with its source)")
  say(shell, "  !cmd       runs cmd in the system shell")
  if #user == 0 then return end
  say(shell, "user magics:")
  for _, name in ipairs(user) do
    local m = registry[name]
    local from = m.file and ("  (" .. m.file:match("[^/]*$") .. ")") or ""
    say(shell, ("  %s %s%s"):format(paint(shell, "name", ("%%%-9s"):format(name)), m.help,
      paint(shell, "note", from)))
  end
end, "list the magics")

magic.register("push", function(line, shell)
  local env = shell.env or _G
  local ns = {}
  -- each name checked first: nothing is pushed when one is wrong
  for _, name in ipairs(names_of(line, "push")) do
    local v = env[name]
    if v == nil then util.raise(("cannot push %s: no such global here"):format(name)) end
    local ok, err = pcall(core.encode, v, name)
    if not ok then
      local what = tostring(err):match("cannot serialise [^:]*: (%a+)")
      util.raise(("cannot push %s: %s"):format(name, what
        and ("a " .. what .. " value cannot travel") or util.strip_where(tostring(err))))
    end
    ns[name] = v
  end
  current_view(shell):with{block = true}:push(ns)
end, "copy local globals to the engines: %push x y")

magic.register("pull", function(line, shell)
  local env = shell.env or _G
  local v = current_view(shell):with{block = true}
  for _, name in ipairs(names_of(line, "pull")) do
    local value = v:pull(name)
    env[name] = value
    say(shell, name .. " = " .. pretty(value))
  end
end, "fetch globals from the engines into local ones: %pull x")

-- What a fresh engine namespace holds: %who leaves it out.
local standard = {}
for w in ([[_G _VERSION assert cjson collectgarbage coroutine debug dofile engine
  error getmetatable io ipairs load loadfile math mpi next os package pairs pcall
  print rawequal rawget rawlen rawset require select setmetatable string table
  tonumber tostring tuples type utf8 warn xpcall]]):gmatch("%S+") do
  standard[w] = true
end

--[[
  ask_names(rc, ids, prefix) -> a Deferred per engine, each firing with
  the array of names under `prefix` there (the engine "names" op; a
  dotted prefix gives full dotted names). The reply's `r` is that array,
  which the client unpacks into one value per name: put back together here.
]]
function magic.ask_names(rc, ids, prefix)
  local ds = rc:submit(ids, {op = "names", prefix = prefix or ""})
  for _, d in ipairs(ds) do
    d:add_callback(function(...)
      local first = ...
      if type(first) == "table" then return first end
      return {...}
    end)
  end
  return ds
end

magic.register("who", function(line, shell)
  local all = false
  local rest = line:gsub("^%-a%f[%s\0]%s*", function() all = true return "" end):match("^(.-)%s*$")
  if rest ~= "" and not rest:match("^[%a_][%w_]*$") then
    util.raise(("%%who: '%s' is not a name prefix (usage: %%who [-a] [prefix])"):format(rest))
  end
  local ids = current_view(shell):ids()
  local seen, names = {}, {}
  for i, d in ipairs(magic.ask_names(shell.rc, ids, rest)) do
    for _, name in ipairs(d:get()) do
      if not seen[name] and (all or not standard[name]) then
        seen[name] = {}
        names[#names + 1] = name
      end
      if seen[name] then table.insert(seen[name], ids[i]) end
    end
  end
  table.sort(names)
  -- a name that only some engines hold says which
  for i, name in ipairs(names) do
    local on = seen[name]
    if #on < #ids then
      table.sort(on)
      names[i] = ("%s (engine%s %s)"):format(name, #on > 1 and "s" or "", format_targets(on))
    end
  end
  say(shell, #names > 0 and table.concat(names, "  ") or "no names")
end, "names defined on the engines: %who [-a] [prefix] (-a: with the standard ones);"
  .. " a name only some engines hold is followed by theirs")

-- numbered input/output, %history, %rerun, %reset
require("plush.magic_session").install(magic, {say = say, paint = paint,
  current_view = current_view, format_targets = format_targets, standard = standard})

-- Each engine's run time of the last %px (from the replies' metadata).
local function engine_times(shell, last)
  local children, engines = children_of(last)
  for i, c in ipairs(children) do
    local md = c.metadata or {}
    if c:ready() and md.started and md.completed then
      say(shell, tag(shell, engines[i]) .. ("ran %.6f s"):format(md.completed - md.started))
    end
  end
end

magic.register("time", function(line, shell)
  if line == "" then util.raise("usage: %time CODE") end
  local before = shell.last
  local t0 = core.now()
  if magic.is_magic(line) then
    magic.run(line, shell)
  elseif shell.autopx then
    magic.run("%px -- " .. line, shell)
  elseif shell.eval then
    shell.eval(line)
  else
    local f, err = load(line, "=(time)", "t", shell.env or _G)
    if not f then util.raise(err) end
    f()
  end
  local wall = core.now() - t0
  if shell.last ~= before and shell.last then engine_times(shell, shell.last) end
  say(shell, ("Wall time: %.6f s"):format(wall))
end, "time a Lua line or a magic; for %px, each engine's time too: %time CODE")

local overview = [[
plush: Lua here, in the client, and on the engines.
  x = 1, f(x)       plain lines run here (the globals rc, plush and yours);
                    an expression prints its value; `= x` does too
  %px CODE          runs CODE on the engines (%pn N CODE: on engine N alone)
  %autopx           sends every line to the engines, until %autopx again
  %push x / %pull x copies a global to / from the engines; %who lists theirs
  ?name, name?      what name is, here and on the engines (??name: its source)
  !cmd              runs cmd in the system shell
  %magic            lists every magic; Tab completes names, here and remote
  Ctrl-C            interrupts what runs, here or on the engines; Ctrl-D leaves
The client API (rc:view(), rc[0], rc:balanced(), ...): share/doc/lua-api.md]]

-- Ask the engines what `path` is there: {engine, text} for each that
-- knows it, and the engines that did not answer within `wait` seconds.
local function remote_describe(shell, path, wait)
  local rc = rawget(shell, "rc") or (shell.connected and shell.connected())
  if not rc then return {}, {} end
  local ok, ids = pcall(function() return current_view(shell):ids() end)
  if not ok then return {}, {} end
  local inspect = require "plush.inspect"
  local ds = rc:submit(ids, {op = "apply", f = inspect.remote, args = {n = 1, path}})
  local deadline = core.now() + wait
  for _, d in ipairs(ds) do
    d:wait(math.max(0, deadline - core.now()))
  end
  local found, silent = {}, {}
  for i, d in ipairs(ds) do
    if d:ready() then
      local got, text = pcall(d.get, d)
      if got and text ~= nil then found[#found + 1] = {ids[i], text} end
    else
      d:_observe(function() end, true)
      silent[#silent + 1] = ids[i]
    end
  end
  return found, silent
end

-- "0-3,5" for {0, 1, 2, 3, 5}.
local function ranges(ids)
  local parts, i = {}, 1
  while ids[i] do
    local j = i
    while ids[j + 1] == ids[j] + 1 do j = j + 1 end
    parts[#parts + 1] = j > i + 1 and (ids[i] .. "-" .. ids[j])
      or (j == i + 1 and (ids[i] .. "," .. ids[j]) or tostring(ids[i]))
    i = j + 1
  end
  return table.concat(parts, ",")
end

-- ??name: the source of the functions the engines hold under `path`,
-- from the chunks they ran (plush.debugger), engines that agree together.
function magic.remote_sources(shell, path, found)
  local rc = rawget(shell, "rc") or (shell.connected and shell.connected())
  local ids = {}
  for _, f in ipairs(found) do
    if f[2]:match("^function") then ids[#ids + 1] = f[1] end
  end
  if not rc or #ids == 0 then return end
  table.sort(ids)
  for _, g in ipairs(require("plush.debugger").remote_sources(rc, ids, path)) do
    say(shell, paint(shell, "note", ("source on engine%s %s:"):format(#g[2] > 1 and "s" or "",
      ranges(g[2]))))
    say(shell, g[1])
  end
end

--[[
  %help NAME: the local value (its type, signature or size, the value),
  then what the engines hold under that name, engines that agree on one
  line. `?NAME` (here: a leading "?") adds a Lua function's source.
]]
local function help(line, shell)
  local inspect = require "plush.inspect"
  local detail = false
  line = line:gsub("^%?", function() detail = true return "" end)
  if line == "" then
    say(shell, overview)
    return
  end
  if line:match("^%%") then
    local h = magic.help_of(line)
    say(shell, h and ("%%%s: %s"):format(line:sub(2), h)
      or ("no magic %s (%%magic lists them)"):format(line))
    return
  end
  if not line:match("^[%a_][%w_]*$") and not line:match("^[%a_][%w_]*[.:][%w_.:]*[%w_]$") then
    util.raise("usage: %help NAME, a name like x, t.k or obj:method")
  end
  local width = shell.width or 80
  local v = inspect.resolve(shell.env or _G, line)
  local any = false
  if v ~= nil then
    any = true
    say(shell, paint(shell, "name", line) .. paint(shell, "note", "  here"))
    for _, l in ipairs(inspect.describe(v, width - 2)) do say(shell, "  " .. l) end
    local src = detail and inspect.source(v)
    if src then say(shell, src) end
  elseif registry[line] then
    any = true
    say(shell, ("%%%s: %s"):format(line, registry[line].help))
  end
  local found, silent = remote_describe(shell, line, 3)
  if #found > 0 then
    any = true
    local groups, order = {}, {}
    for _, f in ipairs(found) do
      if not groups[f[2]] then
        groups[f[2]] = {}
        order[#order + 1] = f[2]
      end
      table.insert(groups[f[2]], f[1])
    end
    for _, text in ipairs(order) do
      local ids = groups[text]
      say(shell, paint(shell, "name", line) .. paint(shell, "note",
        ("  on engine%s %s"):format(#ids > 1 and "s" or "", ranges(ids))))
      say(shell, "  " .. text)
    end
    if detail then magic.remote_sources(shell, line, found) end
  end
  if #silent > 0 then
    say(shell, paint(shell, "note", ("engines %s are busy: no answer"):format(ranges(silent))))
  end
  if not any and #silent == 0 then
    say(shell, ("%s is not defined, here or on the engines"):format(line))
  end
end

magic.register("help", help, "help; what a name is, here and on the engines: %help [NAME]")
require("plush.debugger").register(magic.register) -- %debug
require("plush.prun").register(magic.register) -- %prun

builtin = false

--[[
  load_dir(dir): run every *.lua in `dir` (sorted). A file registers its
  magics with plush.magic(...), or returns a table {name = fn} or
  {name = {fn, help}}. A broken file is reported on stderr and skipped.
  Returns the number of files loaded.
]]
-- The magic files that failed to load: "magic file F: why" each.
magic.broken = {}

function magic.load_dir(dir)
  util.check(dir, 1, "load_dir", "string")
  local p = io.popen("ls -1 " .. util.shquote(dir) .. " 2>/dev/null")
  if not p then return 0 end
  local files = {}
  for name in p:lines() do
    if name:match("%.lua$") then files[#files + 1] = dir .. "/" .. name end
  end
  p:close()
  table.sort(files)
  local count = 0
  for _, file in ipairs(files) do
    loading = file
    local ok, err = pcall(function()
      local chunk, lerr = loadfile(file)
      if not chunk then error(lerr, 0) end
      local r = chunk()
      if type(r) == "table" then
        for name, m in pairs(r) do
          if type(m) == "table" then
            magic.register(name, m[1] or m.fn, m[2] or m.help)
          else
            magic.register(name, m)
          end
        end
      end
    end)
    loading = nil
    if ok then
      count = count + 1
    else
      -- said once by the interactive shell (magic.broken), not by every
      -- `plush -e`; an unknown magic names them
      magic.broken[#magic.broken + 1] = ("magic file %s: %s"):format(file, tostring(err))
    end
  end
  return count
end

-- The directories magics are loaded from at start: share/plush/magics of
-- the install (and of the source tree), then the user's own, so that a
-- user's magic of the same name wins.
function magic.default_dirs()
  local dirs, seen = {}, {}
  local function add(d)
    if d and not seen[d] then
      seen[d] = true
      dirs[#dirs + 1] = d
    end
  end
  local data = os.getenv("PLUSH_DATA_DIR")
  if data and data ~= "" then add(data .. "/magics") end
  local ok, bindirs = pcall(core.bindirs)
  if ok and type(bindirs) == "table" then
    for _, d in ipairs(bindirs) do add(d .. "/../share/plush/magics") end
  end
  local src = package.searchpath("plush.magic", package.path)
  if src then
    local root = src:match("^(.*)[/\\]lua[/\\]plush[/\\]magic%.lua$")
    if root then add(root .. "/share/plush/magics") end
  end
  local config = os.getenv("XDG_CONFIG_HOME")
  if not config or config == "" then config = (os.getenv("HOME") or "") .. "/.config" end
  add(config .. "/plush/magics")
  return dirs
end

function magic.load_defaults()
  local n = 0
  for _, d in ipairs(magic.default_dirs()) do n = n + magic.load_dir(d) end
  return n
end

return magic
