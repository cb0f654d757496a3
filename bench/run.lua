--[[
bench/run.lua: the plush benchmark driver (scripts/bench runs it).

  lua5.4 bench/run.lua [--quick] [--json FILE] [--reps N] [--no-peers]
                       [--systems plush,ipyparallel,dask] [--phases 2,8,64]
                       [--out DIR] [--keep]

It starts plush clusters itself (plush-controller -n N, spawned with
plush.core.spawn so that it knows every PID), runs the workloads through the
plush client API, and — when /usr/bin/python3 has them — runs the same
workloads on ipyparallel and Dask (bench/peers_ipp.py, bench/peers_dask.py,
read as JSON lines from their output). Repetitions alternate: in each one,
every phase (a cluster of 2, 8 or 64 engines) runs on plush, then on each
peer. Each repetition first measures the machine's floors
(build/bench/plush-bench-floor, bench/floor.c: a relay round trip, loopback
TCP, memcpy) before its 2-engine cluster starts. At the end it prints one
table (median, spread, ratio to the row's floor, ratio to each peer,
target, met?), writes DIR/table.md, DIR/latency.svg and, with --json, every
sample and summary. Every process it started is ended by PID, on success,
on error and on Ctrl-C.
]]
local ROOT = os.getenv("PLUSH_ROOT")
  or (arg and arg[0] and arg[0]:match("^(.*)/bench/[^/]*$"))
  or "."

local MB = 1000000
local NUMBERS = 1000000
local PYTHON = "/usr/bin/python3"

-------------------------------------------------------------------------------
-- Options
-------------------------------------------------------------------------------

local function usage(code)
  local out = code == 0 and io.stdout or io.stderr
  out:write([[
usage: scripts/bench [--quick] [--json FILE] [--peers] [options]
  --quick          fewer repetitions, no 64-engine start, no 100 MB transfers
  --json FILE      write every sample and summary to FILE
  --peers          (scripts/bench) install python3-ipyparallel and
                   python3-distributed first
  --no-peers       plush only, even when the peers are installed
  --systems LIST   comma-separated subset of plush,ipyparallel,dask
  --phases LIST    comma-separated subset of 2,8,64 (cluster sizes)
  --reps N         repetitions (default 5, --quick 2)
  --out DIR        where table.md and latency.svg go (default build/bench)
  --keep           keep the temporary folder (logs, connection files)
  --controller-args "ARGS"  extra plush-controller arguments (diagnosis:
                   e.g. "--db memory"); recorded in the JSON and the notes
  --only LIST      comma-separated row ids (exec_rt,floor_relay,...): only
                   those rows are measured (comparing two builds quickly)
]])
  os.exit(code)
end

local opt = {quick = false, peers = true, out = ROOT .. "/build/bench"}
do
  local i = 1
  local function value(name)
    i = i + 1
    if arg[i] == nil then
      io.stderr:write("bench: ", name, " needs a value\n")
      usage(2)
    end
    return arg[i]
  end
  while arg[i] do
    local a = arg[i]
    if a == "--quick" then opt.quick = true
    elseif a == "--json" then opt.json = value(a)
    elseif a == "--no-peers" then opt.peers = false
    elseif a == "--peers" then opt.peers = true
    elseif a == "--systems" then opt.systems = value(a)
    elseif a == "--phases" then opt.phases = value(a)
    elseif a == "--reps" then opt.reps = math.tointeger(tonumber(value(a)))
    elseif a == "--out" then opt.out = value(a)
    elseif a == "--keep" then opt.keep = true
    elseif a == "--controller-args" then opt.controller_args = value(a)
    elseif a == "--only" then
      opt.only = {}
      for id in value(a):gmatch("[^,]+") do opt.only[id] = true end
    elseif a == "-h" or a == "--help" then usage(0)
    else
      io.stderr:write("bench: unknown argument ", a, "\n")
      usage(2)
    end
    i = i + 1
  end
end
local QUICK = opt.quick
local REPS = opt.reps or (QUICK and 2 or 5)

-- after the options: --help works before anything is built
local core = require "plush.core"
local plush = require "plush"
local cjson = require "cjson"
local svg = dofile(ROOT .. "/bench/svg.lua")
local now = plush.now

local function say(fmt, ...)
  io.stderr:write(fmt:format(...), "\n")
  io.stderr:flush()
end

-------------------------------------------------------------------------------
-- Workloads
-------------------------------------------------------------------------------

--[[
  unit: "s" (lower is better), "B/s" and "tasks/s" (higher is better), "B"
  (lower is better). phase: the cluster size the workload runs on.
  n: samples per repetition {plush full, plush quick, peer full, peer quick};
  dask = the same for Dask when it differs; false = not run there.
  target: {op, value} or a function of the summaries giving {op, value, text}.
]]
local BY_ID = {}
local fmt -- (w, x): x in w's unit, as the table shows it; defined below

-- A target relative to another row's plush median (a floor, the serial
-- map) or to a peer's median: {op, factor × that median, text}.
local function relative(id, op, factor, text, sys)
  return function(S)
    local f = S[id] and S[id][sys or "plush"]
    if not f then return nil end
    local v = factor * f.median
    return {op, v, ("%s %s (%s)"):format(op:gsub("<=", "≤"):gsub(">=", "≥"), text,
      fmt(BY_ID[id], v))}
  end
end

local WORKLOADS = {
  -- the machine's floors (bench/floor.c, issue 14), measured in the same
  -- run; `floor` of a row names the floor its "× floor" column divides by
  {id = "floor_relay", label = "floor: relay round trip over loopback TCP", unit = "s",
    phase = 2, n = {2000, 500, 0, 0}, plush_only = true},
  {id = "floor_tcp", label = "floor: 100 MiB over loopback TCP", unit = "B/s",
    phase = 2, bytes = 100 * 1024 * 1024, n = {3, 1, 0, 0}, plush_only = true},
  {id = "floor_memcpy", label = "floor: memcpy of 100 MiB", unit = "B/s",
    phase = 2, bytes = 100 * 1024 * 1024, n = {3, 1, 0, 0}, plush_only = true},
  -- the same two over Unix sockets, which plush's local engines and
  -- clients use (shown beside; the targets stay ratios to TCP's)
  {id = "floor_relay_unix", label = "floor: relay round trip over a Unix socket", unit = "s",
    phase = 2, n = {2000, 500, 0, 0}, plush_only = true},
  {id = "floor_unix", label = "floor: 100 MiB over a Unix socket", unit = "B/s",
    phase = 2, bytes = 100 * 1024 * 1024, n = {3, 1, 0, 0}, plush_only = true},
  -- 100 MiB written into fresh memory: the page faults a first push or
  -- pull pays on top of the copy (performance.md, "First touch")
  {id = "floor_touch", label = "floor: first touch of 100 MiB of fresh memory", unit = "B/s",
    phase = 2, bytes = 100 * 1024 * 1024, n = {3, 1, 0, 0}, plush_only = true},
  -- the balanced no-op row's shape with no work in it: batches of 1,000
  -- 64-byte messages, one write each, through a relay to two servers
  {id = "floor_tasks", label = "floor: tasks through a relay to 2 servers (Unix sockets)",
    unit = "tasks/s", phase = 2, n = {30, 10, 0, 0}, plush_only = true},
  {id = "start_2", label = "cluster start, 2 engines", unit = "s", phase = 2,
    n = {1, 1, 1, 1}, target = {"<", 0.2}},
  {id = "start_8", label = "cluster start, 8 engines", unit = "s", phase = 8,
    n = {1, 1, 1, 1}},
  {id = "start_64", label = "cluster start, 64 engines", unit = "s", phase = 64,
    n = {1, 0, 1, 0}, target = {"<", 2}},
  {id = "exec_rt", label = "execute round trip, 1 engine", unit = "s", phase = 2,
    n = {2000, 500, 200, 50}, dask = false, floor = "floor_relay",
    target = relative("floor_relay", "<=", 2, "2× relay floor")},
  -- the same with `plush dashboard` open and a page reading it (bench/dash.lua)
  {id = "exec_rt_dash", label = "  the same, a dashboard open", unit = "s", phase = 2,
    n = {2000, 500, 0, 0}, plush_only = true,
    target = function(S)
      local ex = S.exec_rt and S.exec_rt.plush
      if not ex then return nil end
      return {"<=", 1.1 * ex.median, ("<= 1.1× without (%s)"):format(svg.fmt_time(1.1 * ex.median))}
    end},
  {id = "apply_rt", label = "apply round trip, 1 engine", unit = "s", phase = 2,
    n = {2000, 500, 200, 50}, dask = {100, 30}, floor = "floor_relay"},
  {id = "bcast_exec_8", label = "broadcast execute, 8 engines", unit = "s", phase = 8,
    n = {500, 100, 100, 30}, dask = {100, 30}, floor = "floor_relay"},
  -- n = tasks per batch; batches: lb_noop_batches
  {id = "lb_noop", label = "balanced no-op tasks, 2 engines", unit = "tasks/s", phase = 2,
    n = {20000, 20000, 1000, 300}, dask = {2000, 500}, target = {">=", 100000},
    floor = "floor_tasks"},
  {id = "push_1MB", label = "push 1 MB string", unit = "B/s", phase = 2, bytes = MB,
    n = {50, 10, 10, 3}, floor = "floor_tcp"},
  {id = "pull_1MB", label = "pull 1 MB string", unit = "B/s", phase = 2, bytes = MB,
    n = {50, 10, 10, 3}, floor = "floor_tcp"},
  {id = "push_10MB", label = "push 10 MB string", unit = "B/s", phase = 2, bytes = 10 * MB,
    n = {10, 3, 3, 1}, floor = "floor_tcp"},
  {id = "pull_10MB", label = "pull 10 MB string", unit = "B/s", phase = 2, bytes = 10 * MB,
    n = {10, 3, 3, 1}, floor = "floor_tcp"},
  {id = "push_100MB", label = "push 100 MB string", unit = "B/s", phase = 2, bytes = 100 * MB,
    n = {3, 0, 2, 0}, floor = "floor_tcp", target = relative("floor_tcp", ">=", 0.6, "0.6× TCP floor")},
  {id = "pull_100MB", label = "pull 100 MB string", unit = "B/s", phase = 2, bytes = 100 * MB,
    n = {3, 0, 2, 0}, floor = "floor_tcp", target = relative("floor_tcp", ">=", 0.6, "0.6× TCP floor")},
  -- each size's first transfer is not among its samples (buffers warm);
  -- 100 MB's is shown on its own: every process's buffers are new pages
  {id = "push_first_100MB", label = "↳ the first push of 100 MB on a cluster", unit = "B/s",
    phase = 2, bytes = 100 * MB, n = {1, 0, 1, 0}, floor = "floor_tcp",
    target = relative("floor_tcp", ">=", 0.4, "0.4× TCP floor")},
  {id = "pull_first_100MB", label = "↳ the first pull of 100 MB on a cluster", unit = "B/s",
    phase = 2, bytes = 100 * MB, n = {1, 0, 1, 0}, floor = "floor_tcp",
    target = relative("floor_tcp", ">=", 0.4, "0.4× TCP floor")},
  -- what sealing costs: bench/wire.c, one frame between two conns over
  -- loopback, no cluster (plush only: the peers have no such layer)
  {id = "wire_plain_100MB", label = "one 100 MiB frame over loopback, plain", unit = "B/s",
    phase = 2, bytes = 100 * 1024 * 1024, n = {3, 1, 0, 0}, plush_only = true,
    floor = "floor_tcp"},
  {id = "wire_sealed_100MB", label = "one 100 MiB frame over loopback, sealed", unit = "B/s",
    phase = 2, bytes = 100 * 1024 * 1024, n = {3, 1, 0, 0}, plush_only = true,
    floor = "floor_tcp"},
  -- Dask 2022.12 needs ~20 s to move a 10^6-item list: one sample, first
  -- repetition only, and none in --quick (see performance.md)
  {id = "push_table", label = "push 10^6-number table", unit = "s", phase = 2,
    n = {5, 2, 2, 1}, dask = {1, 0}, dask_first_rep_only = true,
    target = relative("push_table", "<=", 1 / 3, "ipyparallel / 3", "ipyparallel")},
  {id = "pull_table", label = "pull 10^6-number table", unit = "s", phase = 2,
    n = {5, 2, 2, 1}, dask = {1, 0}, dask_first_rep_only = true,
    target = relative("pull_table", "<=", 1 / 3, "ipyparallel / 3", "ipyparallel")},
  {id = "scatter_gather", label = "scatter+gather 10^6 numbers, 2 engines", unit = "s",
    phase = 2, n = {5, 2, 2, 1}, dask = {1, 0}, dask_first_rep_only = true},
  {id = "map", label = "map x^10 over 10^6, 2 engines", unit = "s", phase = 2,
    n = {5, 2, 2, 1}, dask = {1, 0}, dask_first_rep_only = true, floor = "map_serial",
    target = relative("map_serial", "<=", 1, "serial")},
  {id = "map_serial", label = "  the same map, serial, one Lua state", unit = "s", phase = 2,
    n = {5, 2, 0, 0}, dask = false, plush_only = true},
  -- the same over a plush.array of 10^6 float64 (share/doc/performance.md,
  -- "plush.array"); the peers' reference is their own list's row above
  {id = "push_array", label = "push 10^6-number plush.array (f64)", unit = "s", phase = 2,
    n = {5, 2, 0, 0}, plush_only = true,
    target = relative("push_table", "<=", 1 / 3, "ipyparallel's list / 3", "ipyparallel")},
  {id = "pull_array", label = "pull 10^6-number plush.array (f64)", unit = "s", phase = 2,
    n = {5, 2, 0, 0}, plush_only = true,
    target = relative("pull_table", "<=", 1 / 3, "ipyparallel's list / 3", "ipyparallel")},
  {id = "scatter_gather_array", label = "scatter+gather a 10^6 plush.array, 2 engines",
    unit = "s", phase = 2, n = {5, 2, 0, 0}, plush_only = true},
  {id = "map_array", label = "map x^10 over a 10^6 plush.array, 2 engines", unit = "s",
    phase = 2, n = {5, 2, 0, 0}, plush_only = true, floor = "map_serial",
    target = relative("map_serial", "<=", 1, "serial over a table")},
  {id = "map_serial_array", label = "  the same map, serial, a:map(f) in one Lua state",
    unit = "s", phase = 2, n = {5, 2, 0, 0}, plush_only = true},
  -- the models (share/doc/models.md); n = samples of MODEL_N operations
  {id = "msg_rt", label = "engine.send/recv round trip, 2 engines", unit = "s", phase = 2,
    n = {5, 3, 0, 0}, plush_only = true,
    target = function(S)
      local ex = S.exec_rt and S.exec_rt.plush
      if not ex then return nil end
      return {"<=", ex.median, ("<= execute round trip (%s)"):format(svg.fmt_time(ex.median))}
    end},
  {id = "ts_pairs", label = "tuple space out+take pairs, 2 engines", unit = "tasks/s",
    phase = 2, n = {5, 3, 0, 0}, plush_only = true, target = {">=", 20000}},
  -- a bag of tasks' results: each task's reply waits for its out's commit
  {id = "ts_out_tasks", label = "  balanced tasks that each put out a tuple", unit = "tasks/s",
    phase = 2, n = {5, 3, 0, 0}, plush_only = true},
  -- the word count of scripts/examples/wordcount.lua over every
  -- /usr/share/doc/*/copyright and /usr/share/common-licenses/*
  {id = "mr_wordcount", label = "MapReduce word count, 2 engines", unit = "s", phase = 2,
    n = {3, 1, 0, 0}, plush_only = true, floor = "mr_wordcount_floor",
    target = function(S)
      local serial = S.mr_wordcount_serial and S.mr_wordcount_serial.plush
      if not serial then return nil end
      return {"<=", 0.7 * serial.median,
        ("≤ 0.7× serial (%s)"):format(svg.fmt_time(0.7 * serial.median))}
    end},
  {id = "mr_wordcount_serial", label = "  the same word count, serial, one Lua state",
    unit = "s", phase = 2, n = {3, 1, 0, 0}, plush_only = true},
  -- the serial count split between two plain Lua processes side by side,
  -- no plush, nothing merged (bench/wordcount.lua, M.floor): how much of
  -- the serial time two processes leave on this machine
  {id = "mr_wordcount_floor",
    label = "  floor: the serial count in 2 plain Lua processes, half each",
    unit = "s", phase = 2, n = {3, 1, 0, 0}, plush_only = true},
  -- engines as threads (plush.connect{threads = 2}): exec_rt and lb_noop
  -- again on an in-process cluster, the process cluster stopped first
  {id = "exec_rt_threads", label = "execute round trip, engines as threads", unit = "s",
    phase = 2, n = {2000, 500, 0, 0}, plush_only = true},
  {id = "lb_noop_threads", label = "balanced no-op tasks, 2 engine threads", unit = "tasks/s",
    phase = 2, n = {20000, 20000, 0, 0}, plush_only = true},
  -- tasks that submit tasks (engine.client(), models.md "Hierarchies"):
  -- a sample is 1,000 balanced parents each waiting on 2 balanced children
  {id = "nested", label = "nested tasks: 1,000 parents × 2 children, 2 engines",
    unit = "tasks/s", phase = 2, n = {3, 2, 0, 0}, plush_only = true, target = {">=", 5000}},
  {id = "nested_threads", label = "  the same, 2 engine threads",
    unit = "tasks/s", phase = 2, n = {3, 2, 0, 0}, plush_only = true},
  {id = "rss_engine", label = "RSS of an idle engine", unit = "B", phase = 2,
    n = {2, 2, 2, 2}, target = {"<", 4e6}},
  {id = "rss_controller_2", label = "RSS of the controller, 2 engines", unit = "B", phase = 2,
    n = {1, 1, 1, 1}, dask = false},
  {id = "rss_controller_8", label = "RSS of the controller, 8 engines", unit = "B", phase = 8,
    n = {1, 1, 1, 1}, dask = false},
  {id = "rss_controller_64", label = "RSS of the controller, 64 engines", unit = "B", phase = 64,
    n = {1, 0, 1, 0}, dask = false, target = {"<", 10e6}},
}
for _, w in ipairs(WORKLOADS) do BY_ID[w.id] = w end

local function higher_better(w) return w.unit == "B/s" or w.unit == "tasks/s" end

local SYSTEMS = {
  {name = "plush", color = "#1b6ac9"},
  {name = "ipyparallel", color = "#e07b00", script = "peers_ipp.py", module = "ipyparallel"},
  {name = "dask", color = "#2e9e44", script = "peers_dask.py", module = "distributed"},
}

-- Samples per repetition of workload w on system sys (0: not run).
local function count(w, sys, rep)
  if opt.only and not opt.only[w.id] then return 0 end
  if sys == "plush" then return w.n[QUICK and 2 or 1] end
  if w.plush_only then return 0 end
  local n = w.n
  if sys == "dask" and w.dask ~= nil then
    if w.dask == false then return 0 end
    if w.dask_first_rep_only and rep > 1 then return 0 end
    return w.dask[QUICK and 2 or 1]
  end
  return n[QUICK and 4 or 3]
end

-- Phases: cluster sizes. Peers start 64 engines in the first repetition
-- only (ipyparallel and Dask need minutes for it on a small machine), and
-- with --quick 8 engines in the first repetition only (20 s for ipyparallel).
local PHASES = {2, 8, 64}
if QUICK then PHASES = {2, 8} end
if opt.phases then
  PHASES = {}
  for p in opt.phases:gmatch("[^,]+") do PHASES[#PHASES + 1] = math.tointeger(tonumber(p)) end
end
local function phase_runs(phase, sys, rep)
  if sys ~= "plush" and rep > 1 and (phase == 64 or (QUICK and phase == 8)) then
    return false
  end
  return true
end

-------------------------------------------------------------------------------
-- Processes and files
-------------------------------------------------------------------------------

local TMP
local live = {} -- pid -> what, every process we started and have not ended

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local bench_proc = dofile(ROOT .. "/bench/proc.lua")
local read_file = bench_proc.read

local function tail(path, n)
  local s = read_file(path) or ""
  local lines = {}
  for l in s:gmatch("[^\n]+") do lines[#lines + 1] = l end
  return table.concat(lines, "\n", math.max(1, #lines - (n or 10) + 1))
end

-- VmRSS of pid in bytes, or nil.
local function rss(pid)
  local s = read_file("/proc/" .. pid .. "/status")
  local kb = s and s:match("VmRSS:%s*(%d+)%s*kB")
  return kb and tonumber(kb) * 1024
end

-- Wait until pid is gone (reaping it when it is our child).
local function gone(pid, secs, ours)
  if ours then return core.wait(pid, secs) ~= nil end
  local deadline = now() + secs
  while core.alive(pid) do
    if now() >= deadline then return false end
    core.sleep(0.01)
  end
  return true
end

-- End pid: TERM (unless it already exits), then KILL. `ours`: our child.
local function finish(pid, ours, grace)
  if not core.alive(pid) then
    if ours then core.wait(pid, 1) end
    live[pid] = nil
    return true
  end
  local clean = true
  if not gone(pid, grace or 0, ours) then
    clean = false
    core.kill(pid, "TERM")
    if not gone(pid, 5, ours) then
      core.kill(pid, "KILL")
      gone(pid, 5, ours)
    end
  end
  live[pid] = nil
  return clean
end

local function end_everything()
  for pid, what in pairs(live) do
    if what == "plush-controller" or what == "plush-engine" or what:match("^plush%-bench") then
      finish(pid, what ~= "plush-engine")
    else
      -- a peer script: TERM makes it stop its cluster, which takes a while
      say("bench: stopping the %s run (pid %d)", what, pid)
      core.kill(pid, "TERM")
      if core.wait(pid, 90) == nil then
        core.kill(pid, "KILL")
        core.wait(pid, 5)
      end
      live[pid] = nil
    end
  end
end

-------------------------------------------------------------------------------
-- plush
-------------------------------------------------------------------------------

local CONTROLLER = ROOT .. "/build/bin/plush-controller"

-- Start a cluster of n engines; returns {pid, rc, engines = {pids}, start = s}.
local INFO = {plush = {version = plush.version}}
local NOTES, noted = {}, {}
local function note(msg)
  if not noted[msg] then
    noted[msg] = true
    NOTES[#NOTES + 1] = msg
    say("bench: %s", msg)
  end
end

local function plush_start(n)
  local dir = ("%s/plush-%d"):format(TMP, n)
  os.execute("mkdir -p " .. sh_quote(dir))
  local file = dir .. "/bench.json"
  os.remove(file)
  local argv = {CONTROLLER, "--file", file, "-n", tostring(n), "--log", dir .. "/log",
    "--parent", tostring(core.getpid())}
  for a in (opt.controller_args or ""):gmatch("%S+") do argv[#argv + 1] = a end
  local c = {dir = dir, file = file}
  local t0 = now()
  c.pid = core.spawn(argv, {stdout = dir .. "/out", stderr = dir .. "/out"})
  live[c.pid] = "plush-controller"
  local deadline = t0 + 60
  while not exists(file) do
    if not core.alive(c.pid) then
      core.wait(c.pid, 1)
      live[c.pid] = nil
      error(("plush-controller exited: %s %s"):format(tail(dir .. "/out", 3),
        tail(dir .. "/log", 5)), 0)
    end
    if now() > deadline then error("no connection file after 60 s", 0) end
    core.sleep(0.0002)
  end
  c.rc = plush.connect{file = file}
  local up, nup = {}, 0
  c.rc.on_event = function(ev)
    if ev.event == "engine_up" and not up[ev.id] then up[ev.id], nup = true, nup + 1 end
  end
  for _, id in ipairs(c.rc:ids()) do
    if not up[id] then up[id], nup = true, nup + 1 end
  end
  while nup < n do
    if now() > deadline then error(("only %d of %d engines after 60 s"):format(nup, n), 0) end
    c.rc:pump(0.1)
  end
  c.start = now() - t0
  c.rc.on_event = nil
  c.engines = {}
  for _, e in ipairs(c.rc:engines()) do
    c.engines[#c.engines + 1] = math.tointeger(e.pid)
    live[math.tointeger(e.pid)] = "plush-engine"
  end
  return c
end

-- Stop by PID: TERM the controller (it stops its engines), KILL what is
-- still there after 5 s. False when something needed KILL.
local function plush_stop(c)
  if c.rc then pcall(c.rc.close, c.rc) end
  local clean = true
  core.kill(c.pid, "TERM")
  if core.wait(c.pid, 5) == nil then
    clean = false
    say("bench: plush-controller %d ignored TERM for 5 s: killed", c.pid)
    core.kill(c.pid, "KILL")
    core.wait(c.pid, 5)
  end
  live[c.pid] = nil
  for _, pid in ipairs(c.engines or {}) do
    if not finish(pid, false, 5) then
      clean = false
      say("bench: plush-engine %d outlived its controller by 5 s: killed", pid)
    end
  end
  return clean
end

-- Runs one of bench/'s C programs with args; its stdout, a JSON object,
-- decoded. core.spawn appends (O_APPEND), so the files of a previous
-- repetition go first.
local function run_json(prog, args)
  local out, err = TMP .. "/" .. prog .. ".json", TMP .. "/" .. prog .. ".err"
  os.remove(out)
  os.remove(err)
  local argv = {ROOT .. "/build/bench/" .. prog}
  for i, a in ipairs(args) do argv[i + 1] = tostring(a) end
  local pid = core.spawn(argv, {stdout = out, stderr = err})
  live[pid] = prog
  local code = core.wait(pid, 300)
  if code == nil then
    core.kill(pid, "KILL")
    core.wait(pid, 5)
  end
  live[pid] = nil
  if code ~= 0 then
    error(("%s failed (%s): %s"):format(prog, tostring(code), tail(err, 3)), 0)
  end
  return cjson.decode(read_file(out))
end

-- bench/wire.c's k samples each way: {bytes = n, plain = {s...}, sealed = {s...}};
-- one more is taken first and left out (its buffers are new pages).
local function wire_run(k)
  local w = run_json("plush-bench-wire", {k + 1, 100})
  table.remove(w.plain, 1)
  table.remove(w.sealed, 1)
  return w
end

-- bench/floor.c: n relay round trips, k samples each of TCP and memcpy
-- (their first, on new pages, is left out by the program itself).
local function floor_run(n, k, nb)
  return run_json("plush-bench-floor", {n, k, 100, nb})
end

local function timed(k, op, warm)
  for _ = 1, warm or 0 do op() end
  local out = {}
  for i = 1, k do
    local t = now()
    op()
    out[i] = now() - t
  end
  return out
end

local function rates(bytes, times)
  local out = {}
  for i, t in ipairs(times) do out[i] = bytes / t end
  return out
end

-- Ctrl-C: lua5.4's "interrupted!" or the client library's Interrupted
-- error. It ends the whole run, never just the workload it hit.
-- k samples of 1,000 balanced parents each waiting on 2 balanced
-- children (engine.client()): 3,000 tasks per second of the batch
local function nested_rates(rc, k)
  local lb = rc:balanced{block = false, output = false}
  local function parent(i)
    local c = engine.client():balanced():async()
    local a, b = c:apply(function(x) return x end, i), c:apply(function(x) return -x end, i)
    return a:get() + b:get()
  end
  local warm = {}
  for i = 1, 100 do warm[i] = lb:apply(parent, i) end
  assert(plush.wait_all(warm, 120), "nested tasks did not finish in 120 s")
  local out = {}
  for s = 1, k do
    collectgarbage()
    local ds, t = {}, now()
    for i = 1, 1000 do ds[i] = lb:apply(parent, i) end
    assert(plush.wait_all(ds, 120), "nested tasks did not finish in 120 s")
    out[s] = 3000 / (now() - t)
    for i = 1, 1000 do assert(ds[i]:get() == 0, "a parent's sum is wrong") end
  end
  return out
end

local function is_interrupt(e)
  if type(e) == "table" and plush.is_error then
    local ok, yes = pcall(plush.is_error, e, "Interrupted")
    if ok and yes then return true end
  end
  return tostring(e):find("interrupted", 1, true) ~= nil
end

-- One phase on plush: returns {samples = {w = {...}}, errors = {w = msg}}.
local function run_plush(phase, rep)
  local res = {samples = {}, errors = {}}
  local function want(id)
    local w = BY_ID[id]
    return w and w.phase == phase and count(w, "plush", rep) > 0 and count(w, "plush", rep)
  end
  local function run(id, fn)
    local k = want(id)
    if not k then return end
    collectgarbage()
    local ok, v = xpcall(fn, function(e)
      if is_interrupt(e) then return {interrupt = e} end
      return debug.traceback(e, 2)
    end, k)
    if not ok and type(v) == "table" and v.interrupt then error(v.interrupt, 0) end
    if ok then res.samples[id] = v else
      res.errors[id] = tostring(v)
      say("bench: plush %s failed: %s", id, tostring(v))
    end
  end
  -- Like run, with one more sample taken before the k: the first transfer
  -- of a size, on buffers no transfer has warmed yet. It is left out of
  -- id's samples and kept as first's when that is wanted.
  local function run_warm(id, first, fn)
    run(id, function(k)
      local v = fn(k + 1)
      local cold = table.remove(v, 1)
      if want(first) then res.samples[first] = {cold} end
      return v
    end)
  end
  -- Rows whose ratio is a target (a parallel row, its serial baseline,
  -- maybe a floor): rows = {{id, op}, ...}, their samples taken in
  -- alternation, so that the machine's drift between minutes (this VM's
  -- speed moves by tens of percent) weighs on all alike. A row alone is
  -- timed as run would. Before each sample, settle (if given) collects
  -- the client's and the engines' garbage: an engine collects on its own
  -- once idle for 250 ms, which would otherwise land on the serial sample
  -- after a parallel one.
  local function run_alt(rows, settle)
    settle = settle or collectgarbage
    local taken
    run(rows[1][1], function(k)
      local ks, most = {k}, k
      for j = 2, #rows do
        ks[j] = want(rows[j][1]) or 0
        most = math.max(most, ks[j])
      end
      taken = {}
      for j = 1, #rows do taken[j] = {} end
      for i = 1, most do
        for j, row in ipairs(rows) do
          if i <= ks[j] then
            settle()
            local t = now()
            row[2]()
            taken[j][i] = now() - t
          end
        end
      end
      return taken[1]
    end)
    for j = 2, #rows do
      run(rows[j][1], function(k) return taken and taken[j] or timed(k, rows[j][2]) end)
    end
  end
  local function run_pair(id1, op1, id2, op2, settle)
    run_alt({{id1, op1}, {id2, op2}}, settle)
  end
  local c
  local ok, err = xpcall(function()
    -- the floors first, before any cluster of this phase exists
    local floor
    local function floors()
      floor = floor or floor_run(math.max(want("floor_relay") or 1, want("floor_relay_unix") or 1),
        math.max(want("floor_tcp") or 1, want("floor_unix") or 1, want("floor_touch") or 1),
        want("floor_tasks") or 1)
      return floor
    end
    -- with the execute round trip, the relay floor is taken in turns with
    -- it (below): its ratio is a target, and this VM's speed drifts
    if not want("exec_rt") then run("floor_relay", function() return floors().relay end) end
    run("floor_tcp", function() return rates(floors().bytes, floors().tcp) end)
    run("floor_memcpy", function() return rates(floors().bytes, floors().memcpy) end)
    run("floor_relay_unix", function() return floors().relay_unix end)
    run("floor_unix", function() return rates(floors().bytes, floors().unix) end)
    run("floor_touch", function() return rates(floors().bytes, floors().touch) end)
    run("floor_tasks", function() return rates(floors().batch, floors().tasks) end)
    c = plush_start(phase)
    res.samples["start_" .. phase] = {c.start}
    run("rss_engine", function(k)
      local out = {}
      for i = 1, math.min(k, #c.engines) do out[#out + 1] = rss(c.engines[i]) end
      return out
    end)
    run("rss_controller_" .. phase, function() return {rss(c.pid)} end)

    local rc = c.rc
    local first = rc:ids()[1]
    local e0, all = rc[first], rc:view()
    local noop = function() end

    -- the execute round trip, its relay floor and the round trip with a
    -- dashboard open: in two halves each, taken in turns (floor, without,
    -- with, floor, without, with), so that the machine's drift weighs on
    -- all three alike (their ratios are targets)
    local exec = function() e0:execute("a=1") end
    local function with_dash(k)
      return dofile(ROOT .. "/bench/dash.lua").with(ROOT, TMP, c.file,
        function() return timed(k, exec, 50) end)
    end
    local function relay_floor(k) return run_json("plush-bench-floor", {"relay", k}).relay end
    local dashed, relayed
    run("exec_rt", function(k)
      local kd, kf = want("exec_rt_dash"), want("floor_relay")
      local plain, open, floor_rt = {}, {}, {}
      local function add(to, samples) table.move(samples, 1, #samples, #to + 1, to) end
      for half = 1, 2 do
        local function part(x) return half == 1 and x // 2 or x - x // 2 end
        if kf and part(kf) > 0 then add(floor_rt, relay_floor(part(kf))) end
        add(plain, timed(part(k), exec, 50))
        if kd and part(kd) > 0 then add(open, with_dash(part(kd))) end
      end
      dashed, relayed = open, floor_rt
      return plain
    end)
    run("exec_rt_dash", function(k) return dashed or with_dash(k) end)
    if want("exec_rt") then run("floor_relay", function(k) return relayed or relay_floor(k) end) end
    run("apply_rt", function(k) return timed(k, function() e0:apply(noop) end, 50) end)
    run("bcast_exec_8", function(k) return timed(k, function() all:execute("a=1") end, 20) end)

    run("lb_noop", function(k)
      local lb = rc:balanced():async()
      local warm = {}
      for i = 1, 100 do warm[i] = lb:apply(noop) end
      plush.wait_all(warm)
      local out = {}
      for b = 1, QUICK and 1 or 3 do
        collectgarbage()
        local ds = {}
        local t = now()
        for i = 1, k do ds[i] = lb:apply(noop) end
        assert(plush.wait_all(ds, 120), "balanced tasks did not finish in 120 s")
        out[b] = k / (now() - t)
        for i = 1, k do ds[i]:get() end -- raises a task's error
      end
      return out
    end)

    -- models: MODEL_N operations between the first two engines per sample
    local MODEL_N = 5000
    local pair = rc:view{rc:ids()[1], rc:ids()[2]}
    run("msg_rt", function(k)
      local out = {}
      for i = 1, k do
        local t = now()
        pair:apply(function(peers, n)
          local other = peers[1] == engine.id and peers[2] or peers[1]
          for j = 1, n do
            if engine.id == peers[1] then
              engine.send(other, j)
              engine.recv(other)
            else
              engine.send(other, (engine.recv(other)))
            end
          end
        end, {rc:ids()[1], rc:ids()[2]}, MODEL_N)
        out[i] = (now() - t) / MODEL_N
      end
      return out
    end)
    run("ts_pairs", function(k)
      local out = {}
      for i = 1, k do
        local t = now()
        bench_proc.ts_pairs(rc, MODEL_N)
        out[i] = MODEL_N / (now() - t)
      end
      return out
    end)

    run("ts_out_tasks", function(k)
      local out, put = {}, function(i) tuples:out{"bench_out", i} end
      local space, lb = plush.tuplespace(rc), rc:balanced():async()
      for i = 1, k do
        local t, ds = now(), {}
        for j = 1, 2000 do ds[j] = lb:apply(put, j) end
        plush.wait_all(ds)
        out[i] = 2000 / (now() - t)
        while space:try_take{"bench_out", plush.ANY} do end
      end
      return out
    end)

    -- nested tasks: 3,000 tasks a sample, the parents parked while they wait
    run("nested", function(k) return nested_rates(rc, k) end)

    for _, tag in ipairs{"1MB", "10MB", "100MB"} do
      if want("push_" .. tag) or want("pull_" .. tag) then
        local bytes = BY_ID["push_" .. tag].bytes
        local s = string.rep("x", bytes)
        run_warm("push_" .. tag, "push_first_" .. tag, function(k)
          return rates(bytes, timed(k, function() e0:push{x = s} end))
        end)
        run_warm("pull_" .. tag, "pull_first_" .. tag, function(k)
          e0:push{x = s}
          return rates(bytes, timed(k, function()
            local v = e0:pull("x")
            assert(#v == bytes, "pulled string has the wrong length")
          end))
        end)
        s = nil -- luacheck: ignore
        e0:execute("x = nil collectgarbage()")
      end
    end

    local wire
    for _, way in ipairs{"plain", "sealed"} do
      run("wire_" .. way .. "_100MB", function(k)
        wire = wire or wire_run(k)
        return rates(wire.bytes, wire[way])
      end)
    end

    local seq = {}
    for i = 1, NUMBERS do seq[i] = i end
    run("push_table", function(k) return timed(k, function() e0:push{t = seq} end) end)
    run("pull_table", function(k)
      e0:push{t = seq}
      return timed(k, function()
        local v = e0:pull("t")
        assert(v[NUMBERS] == NUMBERS, "pulled table is wrong")
      end)
    end)
    e0:execute("t = nil collectgarbage()")
    run("scatter_gather", function(k)
      return timed(k, function()
        all:scatter("part", seq)
        local v = all:gather("part")
        assert(v[NUMBERS] == NUMBERS and v[1] == 1, "gathered table is wrong")
      end)
    end)
    all:execute("part = nil collectgarbage()")
    local f = function(x) return x ^ 10 end
    local expect = NUMBERS ^ 10
    local function settle()
      collectgarbage()
      all:execute("collectgarbage()")
    end
    run_pair("map", function()
      local v = all:map(f, seq)
      assert(v[NUMBERS] == expect, "map result is wrong")
    end, "map_serial", function()
      local v = {}
      for i = 1, #seq do v[i] = f(seq[i]) end
      assert(v[NUMBERS] == expect)
    end, settle)
    -- MapReduce word count (the map of scripts/examples/wordcount.lua)
    if want("mr_wordcount") or want("mr_wordcount_serial") or want("mr_wordcount_floor") then
      local wc = dofile(ROOT .. "/bench/wordcount.lua")
      local files, words, sum = wc.files(), wc.words, wc.sum
      local the
      local function same(n)
        assert(n and (the == nil or n == the), "the word counts differ")
        the = n
      end
      local shares = wc.floor(files, #rc:ids(), TMP, arg[-1] or "lua5.4")
      run_alt({{"mr_wordcount", function()
        same(all:mapreduce{input = {files = files}, map = words, combine = sum,
          reduce = sum}.the)
      end}, {"mr_wordcount_serial", function()
        same(wc.count(files).the)
      end}, {"mr_wordcount_floor", function()
        same(shares())
      end}}, settle)
    end
    -- plush.array rows: 10^6 float64 (1.0 .. 10^6)
    local arr = plush.array.range(1, NUMBERS, 1.0)
    run("push_array", function(k) return timed(k, function() e0:push{t = arr} end) end)
    run("pull_array", function(k)
      e0:push{t = arr}
      return timed(k, function()
        local v = e0:pull("t")
        assert(#v == NUMBERS and v[NUMBERS] == NUMBERS, "pulled array is wrong")
      end)
    end)
    e0:execute("t = nil collectgarbage()")
    run("scatter_gather_array", function(k)
      return timed(k, function()
        all:scatter("part", arr)
        local v = all:gather("part")
        assert(#v == NUMBERS and v[NUMBERS] == NUMBERS and v[1] == 1, "gathered array is wrong")
      end)
    end)
    all:execute("part = nil collectgarbage()")
    run_pair("map_array", function()
      local v = all:map(f, arr)
      assert(plush.array.is(v) and v[NUMBERS] == expect, "map result is wrong")
    end, "map_serial_array", function()
      local v = arr:map(f)
      assert(v[NUMBERS] == expect)
    end, settle)
  end, debug.traceback)
  if not ok and is_interrupt(err) then
    if c then plush_stop(c) end
    error("interrupted", 0)
  end
  if not ok then
    res.errors["phase_" .. phase] = tostring(err)
    say("bench: plush phase %d failed: %s", phase, tostring(err))
    if c then say("bench: controller log %s/log:\n%s", c.dir, tail(c.dir .. "/log", 10)) end
  end
  if c then
    plush_stop(c)
  end
  -- engines as threads of this process: the same round trip and no-op
  -- rate through plush.connect{threads = 2} (socketpairs, no processes)
  if want("exec_rt_threads") or want("lb_noop_threads") or want("nested_threads") then
    local trc
    local tok, terr = xpcall(function()
      trc = plush.connect{threads = 2}
      local noop = function() end
      run("exec_rt_threads", function(k)
        return timed(k, function() trc[0]:execute("a=1") end, 50)
      end)
      run("lb_noop_threads", function(k)
        local lb = trc:balanced():async()
        local out = {}
        for b = 0, QUICK and 1 or 3 do -- batch 0 warms up, not counted
          collectgarbage()
          local ds, t = {}, now()
          for i = 1, b == 0 and 100 or k do ds[i] = lb:apply(noop) end
          assert(plush.wait_all(ds, 120), "balanced tasks did not finish in 120 s")
          if b > 0 then out[b] = k / (now() - t) end
          for i = 1, #ds do ds[i]:get() end
        end
        return out
      end)
      run("nested_threads", function(k) return nested_rates(trc, k) end)
    end, debug.traceback)
    if trc then pcall(trc.close, trc) end
    if not tok then
      if is_interrupt(terr) then error("interrupted", 0) end
      res.errors.threads = tostring(terr)
      say("bench: plush engines as threads failed: %s", tostring(terr))
    end
  end
  return res
end

-------------------------------------------------------------------------------
-- Peers
-------------------------------------------------------------------------------



local function peer_available(sys)
  if not exists(PYTHON) then return false end
  return os.execute(("%s -c 'import %s' >/dev/null 2>&1"):format(PYTHON, sys.module)) == true
end

--[[
  One phase on a peer: bench/peers_X.py spawned under timeout(1) (which puts
  it in a process group of its own: Ctrl-C reaches it only as our TERM, so
  it stops its cluster once, cleanly), its JSON lines read from a file as
  they come.
]]
local function run_peer(sys, phase, rep)
  local res = {samples = {}, errors = {}}
  local counts = {}
  for _, w in ipairs(WORKLOADS) do
    local k = w.phase == phase and count(w, sys.name, rep) or 0
    if k > 0 then counts[#counts + 1] = w.id .. "=" .. k end
  end
  counts[#counts + 1] = "lb_noop_batches=1"
  local log = ("%s/%s.log"):format(TMP, sys.name)
  local out = ("%s/%s-%d-%d.jsonl"):format(TMP, sys.name, phase, rep)
  local limit = phase == 64 and 1800 or 600
  local pid = core.spawn({"timeout", "-k", "30", tostring(limit), PYTHON,
    ROOT .. "/bench/" .. sys.script, "--phase", tostring(phase),
    "--counts", table.concat(counts, ","), "--workdir", TMP},
    {stdout = out, stderr = log,
     env = {PYTHONDONTWRITEBYTECODE = "1", IPYTHONDIR = TMP .. "/ipython"}})
  live[pid] = sys.name
  local done, pos, code = false, 0, nil
  local function consume(final)
    local f = io.open(out, "rb")
    if not f then return end
    f:seek("set", pos)
    local data = f:read("a") or ""
    f:close()
    local used = 0
    for line, stop in data:gmatch("([^\n]*)\n()") do
      used = stop - 1
      local ok, m = pcall(cjson.decode, line)
      if ok and type(m) == "table" then
        if m.kind == "samples" then
          res.samples[m.w] = m.v
        elseif m.kind == "error" then
          res.errors[m.w] = m.message
          say("bench: %s %s failed: %s", sys.name, m.w, m.message)
        elseif m.kind == "info" then
          INFO[sys.name] = {version = m.version, python = m.python}
        elseif m.kind == "killed" then
          note(("%s left processes behind after stopping its cluster; "
            .. "the bench ended them by PID: %s"):format(sys.name, table.concat(m.pids, " ")))
        elseif m.kind == "done" then
          done = true
        end
      end
    end
    pos = pos + used
    if final and used < #data then pos = pos + #data end
  end
  while code == nil do
    code = core.wait(pid, 0.2)
    consume(false)
  end
  live[pid] = nil
  consume(true)
  if not done then
    res.errors["phase_" .. phase] = ("exited (%s) before the end: see %s")
      :format(tostring(code), log)
    say("bench: %s phase %d did not complete (exit %s); last lines of %s:\n%s",
      sys.name, phase, tostring(code), log, tail(log, 8))
  end
  return res
end

-------------------------------------------------------------------------------
-- Statistics and formatting
-------------------------------------------------------------------------------

local quantile = svg.quantile

local function summarize(v)
  if not v or #v == 0 then return nil end
  local s = {}
  for i, x in ipairs(v) do s[i] = x end
  table.sort(s)
  local sum = 0
  for _, x in ipairs(s) do sum = sum + x end
  return {n = #s, median = quantile(s, 0.5), p10 = quantile(s, 0.1),
    p90 = quantile(s, 0.9), min = s[1], max = s[#s], mean = sum / #s}
end

local function sig3(x)
  if x >= 100 then return ("%.0f"):format(x) end
  if x >= 10 then return ("%.1f"):format(x) end
  return ("%.2f"):format(x)
end

function fmt(w, x)
  if x == nil then return "—" end
  if w.unit == "s" then return svg.fmt_time(x) end
  if w.unit == "B/s" then
    if x >= 1e9 then return sig3(x / 1e9) .. " GB/s" end
    if x >= 1e6 then return sig3(x / 1e6) .. " MB/s" end
    return sig3(x / 1e3) .. " kB/s"
  end
  if w.unit == "tasks/s" then
    if x >= 1e3 then return sig3(x / 1e3) .. "k/s" end
    return sig3(x) .. "/s"
  end
  if w.unit == "B" then
    if x >= 1e9 then return sig3(x / 1e9) .. " GB" end
    if x >= 1e6 then return sig3(x / 1e6) .. " MB" end
    return sig3(x / 1e3) .. " kB"
  end
  return tostring(x)
end

local function fmt_spread(w, s)
  if not s then return "—" end
  if s.n == 1 then return "(n = 1)" end
  local lo, hi = s.p10, s.p90
  if s.n < 10 then lo, hi = s.min, s.max end
  return fmt(w, lo) .. " – " .. fmt(w, hi)
end

-- How many times better plush is than the peer (>1: plush better).
local function ratio(w, plush_s, peer_s)
  if not plush_s or not peer_s or plush_s.median == 0 or peer_s.median == 0 then return nil end
  if higher_better(w) then return plush_s.median / peer_s.median end
  return peer_s.median / plush_s.median
end

local function fmt_ratio(r)
  if not r then return "—" end
  if r >= 100 then return ("%.0f×"):format(r) end
  if r >= 10 then return ("%.1f×"):format(r) end
  return ("%.2f×"):format(r)
end

local function target_of(w, S)
  local t = w.target
  if type(t) == "function" then t = t(S) end
  if not t then return nil end
  local op, v = t[1], t[2]
  local text = t[3] or (op:gsub("<=", "≤"):gsub(">=", "≥") .. " " .. fmt(w, v))
  return {op = op, value = v, text = text}
end

local function met(t, x)
  if not t or not x then return nil end
  if t.op == "<" then return x < t.value end
  if t.op == "<=" then return x <= t.value end
  if t.op == ">" then return x > t.value end
  if t.op == ">=" then return x >= t.value end
end

local function width(s) return utf8.len(s) or #s end
local function pad(s, n, right)
  local fill = string.rep(" ", math.max(0, n - width(s)))
  return right and fill .. s or s .. fill
end

-------------------------------------------------------------------------------
-- Machine
-------------------------------------------------------------------------------

local function machine()
  local m = {}
  m.nproc = core.ncpu()
  local cpu = read_file("/proc/cpuinfo") or ""
  m.cpu = cpu:match("model name%s*:%s*([^\n]+)") or "unknown"
  m.kernel = (read_file("/proc/sys/kernel/osrelease") or "?"):gsub("%s+$", "")
  local mem = (read_file("/proc/meminfo") or ""):match("MemTotal:%s*(%d+)")
  m.memory_gb = mem and math.floor(tonumber(mem) / 1048576 * 10 + 0.5) / 10
  local os_release = read_file("/etc/os-release") or ""
  m.os = os_release:match('PRETTY_NAME="([^"]+)"') or "unknown"
  m.date = os.date("!%Y-%m-%d %H:%M UTC")
  m.lua = _VERSION
  m.loadavg = (read_file("/proc/loadavg") or ""):match("^(%S+ %S+ %S+)")
  local p = io.popen("git -C " .. sh_quote(ROOT) .. " describe --always --dirty 2>/dev/null")
  m.commit = p and (p:read("l") or "") or ""
  if p then p:close() end
  return m
end

-------------------------------------------------------------------------------
-- Main
-------------------------------------------------------------------------------

local function main()
  TMP = os.tmpname()
  os.remove(TMP)
  assert(os.execute("mkdir -p " .. sh_quote(TMP) .. " && chmod 700 " .. sh_quote(TMP)))
  os.execute("mkdir -p " .. sh_quote(opt.out))

  local wanted = {}
  if opt.systems then
    for s in opt.systems:gmatch("[^,]+") do wanted[s] = true end
  end
  local systems = {}
  for _, sys in ipairs(SYSTEMS) do
    local on = (not opt.systems or wanted[sys.name])
    if on and sys.script then
      if not opt.peers then
        on = false
      elseif not peer_available(sys) then
        say("bench: %s is not installed (scripts/bench --peers installs it): skipped", sys.name)
        on = false
      end
    end
    if on then systems[#systems + 1] = sys end
  end
  if not exists(CONTROLLER) then error("no " .. CONTROLLER .. ": build first", 0) end

  local M = machine()
  local names = {}
  for i, s in ipairs(systems) do names[i] = s.name end
  say("bench: %s, %d repetitions, phases %s, systems %s; %d × %s, %s",
    QUICK and "quick" or "full", REPS, table.concat(PHASES, ","), table.concat(names, ", "),
    M.nproc, M.cpu, M.kernel)

  local samples, errors = {}, {}
  for _, w in ipairs(WORKLOADS) do samples[w.id] = {} end
  local t_all = now()
  for rep = 1, REPS do
    for _, phase in ipairs(PHASES) do
      local line = {}
      M.load_by_phase = M.load_by_phase or {}
      M.load_by_phase[#M.load_by_phase + 1] = {rep = rep, engines = phase,
        loadavg = (read_file("/proc/loadavg") or ""):match("^(%S+)")}
      for _, sys in ipairs(systems) do
        if phase_runs(phase, sys.name, rep) then
          local t = now()
          local res
          if sys.name == "plush" then res = run_plush(phase, rep)
          else res = run_peer(sys, phase, rep) end
          for id, v in pairs(res.samples) do
            if samples[id] then
              local dst = samples[id][sys.name] or {}
              for _, x in ipairs(v) do dst[#dst + 1] = x end
              samples[id][sys.name] = dst
            end
          end
          for id, msg in pairs(res.errors) do
            errors[#errors + 1] = {system = sys.name, workload = id, rep = rep, message = msg}
          end
          line[#line + 1] = ("%s %.1f s"):format(sys.name, now() - t)
        end
      end
      say("bench: rep %d/%d, %d engines: %s (load average %s)", rep, REPS, phase,
        table.concat(line, ", "), M.load_by_phase[#M.load_by_phase].loadavg)
    end
  end
  local elapsed = now() - t_all
  M.loadavg_end = (read_file("/proc/loadavg") or ""):match("^(%S+ %S+ %S+)")
  if opt.controller_args then
    note("plush-controller ran with extra arguments: " .. opt.controller_args)
    M.controller_args = opt.controller_args
  end

  -- summaries, the table
  local S = {}
  for _, w in ipairs(WORKLOADS) do
    S[w.id] = {}
    for _, sys in ipairs(systems) do S[w.id][sys.name] = summarize(samples[w.id][sys.name]) end
  end
  local peers = {}
  for _, sys in ipairs(systems) do if sys.script then peers[#peers + 1] = sys.name end end

  local header = {"workload", "plush median", "spread", "× floor"}
  for _, p in ipairs(peers) do
    header[#header + 1] = p .. " median"
    header[#header + 1] = "ratio"
  end
  header[#header + 1] = "target"
  header[#header + 1] = "met?"
  local rows, results = {}, {}
  for _, w in ipairs(WORKLOADS) do
    local ps = S[w.id].plush
    local any = ps ~= nil
    for _, p in ipairs(peers) do any = any or S[w.id][p] ~= nil end
    if any then
      local t = target_of(w, S)
      local m = met(t, ps and ps.median)
      local fs = w.floor and S[w.floor].plush
      local xf = ps and fs and fs.median > 0 and ps.median / fs.median or nil
      local row = {w.label, fmt(w, ps and ps.median), fmt_spread(w, ps), fmt_ratio(xf)}
      local entry = {id = w.id, label = w.label, unit = w.unit, bytes = w.bytes,
        samples = samples[w.id], summary = S[w.id], ratio = {},
        floor = w.floor, floor_ratio = xf,
        target = t and {op = t.op, value = t.value, text = t.text} or nil,
        met = m}
      for _, p in ipairs(peers) do
        local r = ratio(w, ps, S[w.id][p])
        entry.ratio[p] = r
        local peer_s = S[w.id][p]
        row[#row + 1] = peer_s and fmt(w, peer_s.median) or "n/a"
        row[#row + 1] = fmt_ratio(r)
      end
      row[#row + 1] = t and t.text or ""
      row[#row + 1] = m == nil and (t and "?" or "") or (m and "yes" or "NO")
      rows[#rows + 1] = row
      results[#results + 1] = entry
    end
  end

  local widths = {}
  for i, h in ipairs(header) do widths[i] = width(h) end
  for _, r in ipairs(rows) do
    for i, c in ipairs(r) do widths[i] = math.max(widths[i], width(c)) end
  end
  local out = {}
  local function line(cells)
    local t = {}
    for i, c in ipairs(cells) do t[i] = pad(c, widths[i], i > 1 and i < #cells - 1) end
    out[#out + 1] = table.concat(t, "  ")
  end
  line(header)
  local rule = {}
  for i, n in ipairs(widths) do rule[i] = string.rep("-", n) end
  line(rule)
  for _, r in ipairs(rows) do line(r) end
  local text = table.concat(out, "\n")

  io.stdout:write("\n", text, "\n\n")
  local notes = {
    "median over all samples of all repetitions; spread: p10 – p90 (min – max below 10 samples)",
    "ratio: how many times better plush is than the peer "
      .. "(peer time / plush time, plush rate / peer rate)",
    "× floor: plush median / the median of the row's floor measured in this run "
      .. "(relay round trip, loopback TCP; the serial map for the map)",
    ("%d × %s, Linux %s, %s; %s; %.0f s; load average %s at the start, %s at the end")
      :format(M.nproc, M.cpu, M.kernel, M.os, M.date, elapsed, M.loadavg or "?",
        M.loadavg_end or "?"),
  }
  for _, n in ipairs(notes) do io.stdout:write(n, "\n") end
  for _, n in ipairs(NOTES) do io.stdout:write("note: ", n, "\n") end
  if #errors > 0 then
    io.stdout:write("\nfailures:\n")
    for _, e in ipairs(errors) do
      io.stdout:write(("  %s %s (rep %d): %s\n"):format(e.system, e.workload, e.rep,
        (e.message:match("^[^\n]*"))))
    end
  end

  -- markdown
  local md = {"| " .. table.concat(header, " | ") .. " |"}
  local al = {"---"}
  for i = 2, #header do al[i] = i < #header - 1 and "---:" or "---" end
  md[#md + 1] = "| " .. table.concat(al, " | ") .. " |"
  for _, r in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(r) do cells[i] = (i == 1 and c:gsub("^%s+", "↳ ") or c) end
    if r[#r] == "NO" then cells[#cells] = "**NO**" end
    md[#md + 1] = "| " .. table.concat(cells, " | ") .. " |"
  end
  local mdpath = opt.out .. "/table.md"
  local f = assert(io.open(mdpath, "wb"))
  f:write(table.concat(md, "\n"), "\n")
  f:close()

  -- chart: every time-like workload, rates turned into seconds per operation
  local chart_rows = {}
  for _, w in ipairs(WORKLOADS) do
    if w.unit ~= "B" then
      local values, any = {}, false
      for _, sys in ipairs(systems) do
        local v = samples[w.id][sys.name]
        if v and #v > 0 then
          local t = {}
          for i, x in ipairs(v) do
            if w.unit == "s" then t[i] = x
            elseif w.unit == "B/s" then t[i] = w.bytes / x
            else t[i] = 1 / x end
          end
          values[sys.name], any = t, true
        end
      end
      if any then
        local label = w.label:gsub("^%s+", "")
        if w.unit == "tasks/s" then label = label .. " (per task)" end
        chart_rows[#chart_rows + 1] = {label = label, values = values}
      end
    end
  end
  local svgpath = opt.out .. "/latency.svg"
  f = assert(io.open(svgpath, "wb"))
  f:write(svg.latency_chart{
    title = "plush benchmark: time per operation",
    subtitle = ("%s; %d × %s; Linux %s; %s"):format(QUICK and "--quick" or "full run",
      M.nproc, M.cpu, M.kernel, M.date),
    systems = systems, rows = chart_rows,
  })
  f:close()
  io.stdout:write(("\ntable: %s\nchart: %s\n"):format(mdpath, svgpath))

  if opt.json then
    cjson.encode_number_precision(14)
    local doc = {
      machine = M, mode = QUICK and "quick" or "full", repetitions = REPS,
      phases = PHASES, systems = INFO, elapsed = elapsed,
      workloads = results, errors = errors, notes = NOTES,
    }
    f = assert(io.open(opt.json, "wb"))
    f:write(cjson.encode(doc), "\n")
    f:close()
    io.stdout:write(("json: %s\n"):format(opt.json))
  end
  for _, e in ipairs(errors) do
    if e.system == "plush" then return 1 end
  end
  return 0
end

local ok, code = xpcall(main, debug.traceback)
end_everything()
if TMP then
  if opt.keep or (not ok and not is_interrupt(code)) then
    say("bench: logs kept in %s", TMP)
  else
    os.execute("rm -rf " .. sh_quote(TMP))
  end
end
if not ok then
  if is_interrupt(code) then
    say("bench: interrupted; every process it started has been ended")
    os.exit(130)
  end
  say("bench: %s", tostring(code))
  os.exit(1)
end
os.exit(code)
