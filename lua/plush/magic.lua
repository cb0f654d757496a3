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
-- A magic that returns a value has it printed.
local core = require "plush.core"
local pretty = require "plush.pretty"
local util = require "plush.util"

local magic = {}

local registry = {}

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
  registry[name] = {fn = fn, help = help or ""}
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
    util.raise(("unknown magic %%%s (%%magic lists them)"):format(name))
  end
  local r = table.pack(m.fn(rest, shell))
  if r.n > 0 and r[1] ~= nil then say(shell, pretty(r[1])) end
  return true
end

-- What a shell does with a line: a magic, or %px of it under %autopx.
-- True when handled here, false when it is Lua for the caller to run.
function magic.handle(line, shell)
  if magic.is_magic(line) then return magic.run(line, shell) end
  if shell.autopx and line:match("%S") then
    return magic.run("%px " .. line, shell)
  end
  return false
end

local function current_view(shell)
  if not shell.view then
    shell.view = shell.rc:view(shell.targets or "all", {block = shell.block ~= false})
  end
  return shell.view
end

local function tag(engine)
  return "[engine " .. tostring(engine) .. "] "
end

-- Print each engine's result (non-nil values) or error, in target order.
local function show(shell, last)
  local d = last.deferred
  d:wait()
  d:error() -- looked at here, engine by engine
  local children = d.deferreds or {d}
  for i, c in ipairs(children) do
    local engine = last.targets[i] or c.metadata.engine
    local r = table.pack(pcall(c.get, c))
    if not r[1] then
      say(shell, tag(engine) .. tostring(r[2]))
    elseif r.n > 1 and r[2] ~= nil then
      local parts = {}
      for k = 2, r.n do parts[#parts + 1] = pretty(r[k]) end
      say(shell, tag(engine) .. table.concat(parts, ", "))
    end
  end
end

-- %px on `v`: output is tagged and written as it arrives, through
-- shell.out, then the results.
local function px(shell, v, code)
  if code == "" then util.raise("usage: %px CODE") end
  local function output(line, engine)
    out(shell, tag(engine) .. line .. "\n")
  end
  local d = v:with{block = false, output = output}:execute(code)
  shell.last = {deferred = d, targets = d.targets or {v.targets}}
  if shell.block == false then
    say(shell, ("submitted to %d engine(s); %%result shows the results")
      :format(#shell.last.targets))
    return
  end
  show(shell, shell.last)
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

local function names_of(s)
  local names = {}
  for w in s:gmatch("[^%s,]+") do names[#names + 1] = w end
  if #names == 0 then util.raise("usage: names of globals") end
  return names
end

local function format_targets(t)
  if type(t) ~= "table" then return tostring(t or "all") end
  local s = {}
  for i, id in ipairs(t) do s[i] = tostring(id) end
  return table.concat(s, ",")
end

magic.register("px", function(line, shell)
  px(shell, current_view(shell), line)
end, "run CODE on the current targets: %px CODE")

magic.register("pn", function(line, shell)
  local n, code = line:match("^(%S+)%s*(.*)$")
  local id = math.tointeger(tonumber(n or ""))
  if not id then util.raise("usage: %pn ENGINE CODE") end
  px(shell, shell.rc:view{id}, code)
end, "run CODE on one engine: %pn N CODE")

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

magic.register("targets", function(line, shell)
  if line == "" then
    say(shell, "targets " .. format_targets(shell.targets))
    return
  end
  local t = line == "all" and "all" or parse_ids(line)
  shell.view = shell.rc:view(t, {block = shell.block ~= false})
  shell.targets = t
end, "the engines %px addresses: %targets all|0,2,...")

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
  for _, name in ipairs(magic.names()) do
    say(shell, ("%%%-9s %s"):format(name, registry[name].help))
  end
end, "list the magics")

magic.register("push", function(line, shell)
  local env = shell.env or _G
  local ns = {}
  for _, name in ipairs(names_of(line)) do ns[name] = env[name] end
  current_view(shell):with{block = true}:push(ns)
end, "copy local globals to the engines: %push x y")

magic.register("pull", function(line, shell)
  local env = shell.env or _G
  local v = current_view(shell):with{block = true}
  for _, name in ipairs(names_of(line)) do
    local value = v:pull(name)
    env[name] = value
    say(shell, name .. " = " .. pretty(value))
  end
end, "fetch globals from the engines into local ones: %pull x")

magic.register("who", function(line, shell)
  local r = current_view(shell):with{block = true}:names(line)
  local seen, names = {}, {}
  local lists = (type(r) == "table" and type(r[1]) ~= "string") and r or {r}
  for i = 1, #lists do
    for _, name in ipairs(lists[i] or {}) do
      if not seen[name] then
        seen[name] = true
        names[#names + 1] = name
      end
    end
  end
  table.sort(names)
  say(shell, #names > 0 and table.concat(names, "  ") or "no names")
end, "names defined on the engines: %who [prefix]")

magic.register("time", function(line, shell)
  if line == "" then util.raise("usage: %time CODE") end
  local t0 = core.now()
  if magic.is_magic(line) then
    magic.run(line, shell)
  elseif shell.eval then
    shell.eval(line)
  else
    local f, err = load(line, "=(time)", "t", shell.env or _G)
    if not f then util.raise(err) end
    f()
  end
  say(shell, ("Wall time: %.6f s"):format(core.now() - t0))
end, "time a Lua line or a magic: %time CODE")

--[[
  load_dir(dir): run every *.lua in `dir` (sorted). A file registers its
  magics with plush.magic(...), or returns a table {name = fn} or
  {name = {fn, help}}. A broken file is reported on stderr and skipped.
  Returns the number of files loaded.
]]
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
    local ok, err = pcall(function()
      local chunk = assert(loadfile(file))
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
    if ok then
      count = count + 1
    else
      io.stderr:write("plush: magic file ", file, ": ", tostring(err), "\n")
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
