-- %timeit: IPython's %timeit for Lua, here or on the engines.
--
--   %timeit [-n N] [-r R] CODE        times CODE in the client (an
--                                     expression, or statements)
--   %timeit [-n N] [-r R] %px CODE    times CODE on each target engine
--
-- CODE runs N times per run (when -n is absent, N grows until a run takes
-- 0.2 s), R runs (default 5); the best and the mean time per loop are
-- printed. In the client the clock is plush.now() (wall time); an engine
-- has only os.clock(), so there it is the CPU time of the engine.
local plush = require "plush"

local function parse(line)
  local opts = {r = 5}
  while true do
    local flag, value, rest = line:match("^%-([nr])%s*(%d+)%s*(.*)$")
    if not flag then break end
    opts[flag] = math.tointeger(tonumber(value))
    line = rest
  end
  return opts, line
end

local function unit(s)
  if s >= 1 then return ("%.3f s"):format(s) end
  if s >= 1e-3 then return ("%.3f ms"):format(s * 1e3) end
  if s >= 1e-6 then return ("%.3f us"):format(s * 1e6) end
  return ("%.1f ns"):format(s * 1e9)
end

--[[
  The timing loop, the same on both sides: it travels to the engines as
  bytecode, so it takes its clock as an argument and uses only globals.
]]
local function measure(code, n, r, clock, env)
  -- an expression as the shell takes one (1 + 1), else a statement
  local f, err = load("return " .. code, "=timeit", "t", env or _G)
  if not f then f, err = load(code, "=timeit", "t", env or _G) end
  if not f then error(err, 0) end
  clock = clock or os.clock
  if not n then
    n = 1
    while true do
      local t0 = clock()
      for _ = 1, n do f() end
      if clock() - t0 >= 0.2 or n >= 1e9 then break end
      n = n * 10
    end
  end
  local best, total = math.huge, 0
  for _ = 1, r do
    local t0 = clock()
    for _ = 1, n do f() end
    local per = (clock() - t0) / n
    if per < best then best = per end
    total = total + per
  end
  return {n = n, r = r, best = best, mean = total / r}
end

local function report(t)
  return ("%d loop%s, best of %d: %s per loop (mean %s)"):format(t.n,
    t.n == 1 and "" or "s", t.r, unit(t.best), unit(t.mean))
end

plush.magic("timeit", function(line, shell)
  local opts, code = parse(line)
  local remote = code:match("^%%px%s+(.*)$")
  if (remote or code) == "" or code:match("^%-[nr]%f[%A]") or opts.n == 0 or opts.r == 0 then
    error("usage: %timeit [-n N] [-r R] [%px] CODE (N and R: whole numbers from 1)", 0)
  end
  if not remote then
    -- in the client's globals, as plain lines see them
    shell.out(report(measure(code, opts.n, opts.r, plush.now, shell.env or _G)) .. "\n")
    return
  end
  local view = shell.rc:view(shell.targets or "all")
  local ids = view:ids()
  local results = view:apply(measure, remote, opts.n, opts.r)
  if #ids == 1 then results = {results} end
  for i, id in ipairs(ids) do
    shell.out(("[engine %d] %s (cpu)\n"):format(id, report(results[i])))
  end
end, "time a Lua line, here or on each engine: %timeit [-n N] [-r R] [%px] CODE")
