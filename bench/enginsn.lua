--[[
bench/enginsn.lua: an engine's instructions per balanced no-op task, from
valgrind --tool=callgrind on the one engine of a `-n 1` controller (both
its threads), as performance.md's "Engines per small task" measured them:

  PLUSH_ROOT=. LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua/?.so;;" \
    lua5.4 bench/enginsn.lua [ENGINE]

ENGINE: the plush-engine binary (default build/bin/plush-engine beside
PLUSH_ROOT's controller), so that two engines can be compared under the
same controller and client. Each run warms up with 300 executes and 300
applies, then submits N balanced no-ops (1,000 at a time, then
plush.wait_all, as the lb_noop row); the figure printed is (Ir at N =
5,000 minus Ir at N = 1,000) / 4,000, which takes out the start, the
warm-up and the shutdown. It takes about a minute.
]]
local core = require "plush.core"
local plush = require "plush"
local proc

local ROOT = os.getenv("PLUSH_ROOT") or "."
proc = dofile(ROOT .. "/bench/proc.lua")
local engine = arg[1] or (ROOT .. "/build/bin/plush-engine")

-- Ir of the engine for a run of n tasks
local function run(n)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  local out, wrap = dir .. "/callgrind.out", dir .. "/engine.sh"
  local f = assert(io.open(wrap, "w"))
  f:write("#!/bin/sh\nexec valgrind --tool=callgrind --log-file='", dir,
    "/valgrind.log' --callgrind-out-file='", out, "' '", engine, "' \"$@\"\n")
  f:close()
  assert(os.execute("chmod +x '" .. wrap .. "'"))
  local file = dir .. "/bench.json"
  local pid = core.spawn{ROOT .. "/build/bin/plush-controller", "--file", file, "-n", "1",
    "--engine", wrap, "--log", dir .. "/log", "--parent", tostring(core.getpid()),
    "--dead-after", "60"}
  local ok, err = xpcall(function()
    local rc = proc.connect(core, plush, file, pid, 1, 120)
    local e0, lb, noop = rc[rc:ids()[1]], rc:balanced():async(), function() end
    for _ = 1, 300 do e0:execute("a = 1") end
    for _ = 1, 300 do e0:apply(noop) end
    proc.lb_batches(plush, lb, noop, n)
    rc:close()
  end, debug.traceback)
  core.kill(pid, 15)
  local deadline = core.now() + 60
  local ir
  while core.now() < deadline do -- the engine's callgrind writes its file last
    local s = proc.read(out)
    ir = s and tonumber(s:match("\nsummary: (%d+)"))
    if ir and not core.alive(pid) then break end
    core.sleep(0.05)
  end
  os.execute("rm -rf '" .. dir .. "'")
  if not ok then
    io.stderr:write(tostring(err), "\n")
    os.exit(1)
  end
  return assert(ir, "no callgrind output from the engine")
end

local a, b = run(1000), run(5000)
io.write(("engine %s: %.1fk instructions per balanced no-op (Ir %d at 1,000, %d at 5,000)\n")
  :format(engine, (b - a) / 4000 / 1000, a, b))
