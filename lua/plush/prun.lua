-- plush.prun: %prun, a sampling profiler for code run on the engines.
--
-- `profile` below is sent to each engine with `apply`: it compiles CODE
-- (chunk name "prun") and runs it under a debug.sethook hook that counts
-- every call ("c") and, every EVERY VM instructions, takes a sample: the
-- CPU time (os.clock) since the last sample goes to the function on top
-- of the stack (its self time) and once to each function on the stack
-- (their total time), and the stack itself is counted for the folded
-- stacks of a flame graph. The engine clears the hook when the task ends
-- (engines/engine_lua.c), an error included, and an interrupt replaces
-- it. An error in CODE is the task's error, as in %px (%debug sees it).
local util = require "plush.util"

local prun = {}

local EVERY = 1000

local function profile(code, every)
  local fn, err = load(code, "=prun")
  if not fn then error(err, 0) end
  local getinfo, clock, sethook = debug.getinfo, os.clock, debug.sethook
  local funcs, order, folded = {}, {}, {}
  local samples, last = 0, clock()
  local function entry(info)
    local e = funcs[info.func]
    if not e then
      local label
      if info.what == "C" then
        label = (info.name or "?") .. " [C]"
      elseif info.func == fn then
        label = "(prun main chunk)"
      else
        label = ("%s (%s:%d)"):format(info.name or "?", info.short_src, info.linedefined)
      end
      e = {label = label, calls = 0, self = 0, total = 0}
      funcs[info.func] = e
      order[#order + 1] = e
    end
    return e
  end
  local function hook(ev)
    if ev ~= "count" then -- "call", "tail call"
      local f = getinfo(2, "f").func
      local e = funcs[f]
      if not e then
        if f == sethook then return end
        e = entry(getinfo(2, "nSf"))
      end
      e.calls = e.calls + 1
      return
    end
    local now = clock()
    local dt = now - last
    last = now
    samples = samples + 1
    local stack, seen, level = {}, {}, 2
    while true do
      local info = getinfo(level, "nSf")
      if not info then break end
      local e = entry(info)
      if level == 2 then e.self = e.self + dt end
      if not seen[e] then
        seen[e] = true
        e.total = e.total + dt
      end
      stack[#stack + 1] = e.label
      if info.func == fn then break end
      level = level + 1
    end
    local parts = {}
    for i = #stack, 1, -1 do parts[#parts + 1] = stack[i] end
    local key = table.concat(parts, ";")
    folded[key] = (folded[key] or 0) + 1
  end
  local t0 = clock()
  sethook(hook, "c", every)
  fn()
  sethook()
  return {funcs = order, folded = folded, samples = samples, cpu = clock() - t0}
end

-- "%prun [--engines IDS] [--out FILE] CODE"
local function parse(line)
  local opts = {}
  while true do
    local opt, val, rest = line:match("^%-%-(%a+)[%s=]+(%S+)%s*(.*)$")
    if not opt then
      local bare = line:match("^%-%-(%a+)%s*$")
      if bare == "engines" or bare == "out" then
        util.raise(("%%prun: --%s needs %s"):format(bare, bare == "out" and "FILE" or "IDS"))
      end
      if line:match("^%-%-?%a") then
        util.raise(("%%prun: unknown option %s"):format(line:match("^(%S+)")))
      end
      break
    end
    if opt == "engines" then
      local ids = {}
      for w in val:gmatch("[^,]+") do
        local id = w:match("^%d+$") and math.tointeger(tonumber(w))
        if not id then util.raise("%prun: --engines takes ids like 0,2: " .. val) end
        ids[#ids + 1] = id
      end
      opts.engines = ids
    elseif opt == "out" then
      opts.out = val
    else
      util.raise(("%%prun: unknown option --%s"):format(opt))
    end
    line = rest
  end
  if not line:match("%S") then util.raise("usage: %prun [--engines IDS] [--out FILE] CODE") end
  local ok, err = load(line, "=prun")
  if not ok then util.raise(err) end -- a syntax error: one line, nothing sent
  opts.code = line
  return opts
end

local function say(sh, s) (sh.out or io.write)(s .. "\n") end

-- Merges each engine's table by function label and prints it.
function prun.report(sh, results, ids)
  local merged, order, total = {}, {}, 0
  for i, r in ipairs(results) do
    total = total + r.samples
    for _, f in ipairs(r.funcs) do
      local m = merged[f.label]
      if not m then
        m = {label = f.label, calls = 0, self = 0, total = 0, per = {}}
        merged[f.label] = m
        order[#order + 1] = m
      end
      m.calls, m.self, m.total = m.calls + f.calls, m.self + f.self, m.total + f.total
      m.per[#m.per + 1] = ("%s:%.3f"):format(tostring(ids[i]), f.self)
    end
  end
  table.sort(order, function(a, b)
    if a.self ~= b.self then return a.self > b.self end
    return a.label < b.label
  end)
  local parts = {}
  for i, r in ipairs(results) do
    parts[i] = ("engine %s: %d samples, %.3f s CPU"):format(tostring(ids[i]), r.samples, r.cpu)
  end
  say(sh, table.concat(parts, "; "))
  say(sh, ("%9s %9s %9s  %-40s %s"):format("ncalls", "tottime", "cumtime", "function",
    "tottime per engine"))
  for i = 1, math.min(#order, 25) do
    local m = order[i]
    say(sh, ("%9d %9.3f %9.3f  %-40s %s"):format(m.calls, m.self, m.total, m.label,
      table.concat(m.per, " ")))
  end
  if #order > 25 then say(sh, ("(%d more functions)"):format(#order - 25)) end
  return total
end

-- The folded stacks of every engine ("engine N;f;g COUNT" lines, sorted).
function prun.folded(results, ids)
  local lines = {}
  for i, r in ipairs(results) do
    for stack, n in pairs(r.folded) do
      lines[#lines + 1] = ("engine %s;%s %d"):format(tostring(ids[i]), stack, n)
    end
  end
  table.sort(lines)
  return lines
end

local function prun_magic(line, sh)
  local opts = parse(line)
  local rc = sh.rc
  local ids = opts.engines
  if not ids then
    ids = (sh.view or rc:view(sh.targets or "all")):ids()
  else
    local up = {}
    for _, id in ipairs(rc:ids()) do up[id] = true end
    for _, id in ipairs(ids) do
      if not up[id] then util.raise(("no engine %d (%%engines lists them)"):format(id)) end
    end
  end
  if #ids == 0 then util.raise("%prun: no engines") end
  local out
  if opts.out then
    local err
    out, err = io.open(opts.out, "w")
    if not out then util.raise("%prun: " .. tostring(err)) end
  end
  local ds = rc:submit(ids, {op = "apply", f = profile, args = {n = 2, opts.code, EVERY}})
  local results, got = {}, {}
  for i, d in ipairs(ds) do
    local ok, r = pcall(d.get, d)
    if not ok and type(r) == "table" and r.kind == "Interrupted" then
      if out then out:close() end
      error(r, 0) -- Ctrl-C: the shell says what was interrupted, as for %px
    end
    if ok then
      results[#results + 1], got[#got + 1] = r, ids[i]
    else
      sh.failed = true
      local text = tostring(r)
      say(sh, (sh.paint and sh.paint("error", "[engine " .. tostring(ids[i]) .. "] ") or
        ("[engine " .. tostring(ids[i]) .. "] ")) .. text)
    end
  end
  if #results > 0 then prun.report(sh, results, got) end
  if out then
    for _, l in ipairs(prun.folded(results, got)) do out:write(l, "\n") end
    out:close()
    say(sh, ("folded stacks written to %s"):format(opts.out))
  end
end

function prun.register(register)
  register("prun", prun_magic,
    "profile CODE on the engines: per-function calls, self and total CPU time, "
    .. "merged: %prun [--engines IDS] [--out FILE] CODE (--out: folded stacks)")
end

prun.profile = profile
return prun
