--[[
bench/cpu.lua: where the time of a plush operation goes, process by process.
`scripts/bench --cpu [--controller-args "ARGS"] [OP...]` runs it.

For each operation it starts nothing new: one cluster of 2 engines
(plush-controller -n 2, ended by PID at the end) serves them all. It runs the
operation a number of times and prints, per operation, the wall time and the
CPU time (user + system, from /proc/PID/stat) that the client (this
process), the controller and each engine spent. CPU time is what a busy
machine does not inflate much, so this works where wall clock numbers are
noisy; a process whose CPU time is close to the wall time is the bottleneck
of a serial path. Under each operation, "switches/op": the context switches
of the controller's and each engine's threads per operation (thread
hand-offs, wake-ups).
]]
local core = require "plush.core"
local plush = require "plush"

local ROOT = os.getenv("PLUSH_ROOT") or "."
local cargs, only = nil, {}
do
  local i = 1
  while arg[i] do
    if arg[i] == "--controller-args" then
      i = i + 1
      cargs = arg[i]
    elseif arg[i] == "-h" or arg[i] == "--help" then
      io.write("usage: scripts/bench --cpu [--controller-args \"ARGS\"] [OP...]\n")
      os.exit(0)
    else
      only[arg[i]] = true
    end
    i = i + 1
  end
end

local proc = dofile(ROOT .. "/bench/proc.lua")
local cpu, switches, TICK = proc.cpu, proc.switches, proc.TICK

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p '" .. dir .. "'")
local file = dir .. "/bench.json"
local argv = {ROOT .. "/build/bin/plush-controller", "--file", file, "-n", "2",
  "--log", dir .. "/log", "--parent", tostring(core.getpid())}
for a in (cargs or ""):gmatch("%S+") do argv[#argv + 1] = a end
local pid = core.spawn(argv)
local engines = {}

local ok, err = xpcall(function()
  local rc
  rc, engines = proc.connect(core, plush, file, pid, 2, 30)
  local ids = rc:ids()
  local e0, all = rc[ids[1]], rc:view()
  local s1, s10, s100 = string.rep("x", 10 ^ 6 // 1), string.rep("x", 10 ^ 7 // 1),
    string.rep("x", 10 ^ 8 // 1)
  local seq = {}
  for i = 1, 10 ^ 6 do seq[i] = i end
  local encoded = core.encode(seq)
  local f = function(x) return x ^ 10 end
  local noop = function() end
  local lb = rc:balanced():async()
  local wc = dofile(ROOT .. "/bench/wordcount.lua")
  local files
  local function corpus()
    files = files or wc.files()
    return files
  end
  local words, sum = wc.words, wc.sum
  local ops = {
    {"execute", 5000, function() e0:execute("a=1") end},
    {"apply", 5000, function() e0:apply(noop) end},
    {"balanced_1000", 10, function()
      local ds = {}
      for i = 1, 1000 do ds[i] = lb:apply(noop) end
      plush.wait_all(ds)
    end},
    {"push_1MB", 50, function() e0:push{x = s1} end},
    {"pull_1MB", 50, function() return e0:pull("x") end, function() e0:push{x = s1} end},
    {"push_10MB", 10, function() e0:push{x = s10} end},
    {"pull_10MB", 10, function() return e0:pull("x") end, function() e0:push{x = s10} end},
    {"push_100MB", 3, function() e0:push{x = s100} end},
    {"pull_100MB", 3, function() return e0:pull("x") end, function() e0:push{x = s100} end},
    {"push_table", 5, function() e0:push{t = seq} end},
    {"pull_table", 5, function() return e0:pull("t") end, function() e0:push{t = seq} end},
    {"scatter_gather", 3, function() all:scatter("p", seq) return all:gather("p") end},
    -- what bench/run.lua's "map" workload measures: one chunk per engine
    {"map", 5, function() return all:map(f, seq) end},
    {"map_chunks_1e5", 3, function() return all:with{chunksize = 100000}:map(f, seq) end},
    {"serial_map", 5, function()
      local v = {}
      for i = 1, #seq do v[i] = f(seq[i]) end
      return v
    end},
    {"encode_table", 5, function() return core.encode(seq) end},
    -- the models rows of bench/run.lua: 5,000 operations per run
    {"msg_rt_5000", 3, function()
      rc:view{ids[1], ids[2]}:apply(function(peers, n)
        local other = peers[1] == engine.id and peers[2] or peers[1]
        for j = 1, n do
          if engine.id == peers[1] then
            engine.send(other, j)
            engine.recv(other)
          else
            engine.send(other, (engine.recv(other)))
          end
        end
      end, {ids[1], ids[2]}, 5000)
    end},
    {"ts_pairs_5000", 3, function() proc.ts_pairs(rc, 5000) end},
    {"decode_table", 5, function() return core.decode(encoded) end},
    -- bench/run.lua's MapReduce word count, and the same count serially
    {"mr_wordcount", 3, function()
      return all:mapreduce{input = {files = corpus()}, map = words, combine = sum,
        reduce = sum}
    end},
    {"mr_serial", 3, function() return wc.count(corpus()) end},
  }
  io.write(("%-16s %6s %11s %11s %11s %11s %11s\n"):format("per operation", "n",
    "wall", "client", "controller", "engine 1", "engine 2"))
  local me = core.getpid()
  local function ms(x) return ("%9.3f ms"):format(x * 1e3) end
  for _, o in ipairs(ops) do
    local name, n, fn, setup = o[1], o[2], o[3], o[4]
    if next(only) == nil or only[name] then
      if setup then setup() end
      fn()
      collectgarbage()
      local s0 = {switches(pid), switches(engines[1]), switches(engines[2])}
      local c0, k0, a0, b0 = cpu(me), cpu(pid), cpu(engines[1]), cpu(engines[2])
      local t = core.now()
      for _ = 1, n do fn() end
      local w = core.now() - t
      local c1, k1, a1, b1 = cpu(me), cpu(pid), cpu(engines[1]), cpu(engines[2])
      io.write(("%-16s %6d %11s %11s %11s %11s %11s\n"):format(name, n, ms(w / n),
        ms((c1 - c0) / n), ms((k1 - k0) / n), ms((a1 - a0) / n), ms((b1 - b0) / n)))
      local s1 = {switches(pid), switches(engines[1]), switches(engines[2])}
      io.write(("%-16s %6s %11s %11s %11.2f %11.2f %11.2f\n"):format("  switches/op", "",
        "", "", (s1[1] - s0[1]) / n, (s1[2] - s0[2]) / n, (s1[3] - s0[3]) / n))
      io.stdout:flush()
      -- the next operation starts from engines that hold nothing of this
      -- one's (as in bench/run.lua): a 10^6 table left in a namespace makes
      -- every garbage collection cycle there longer
      all:execute("x, t, p = nil, nil, nil collectgarbage()")
      collectgarbage()
    end
  end
  io.write(("(CPU times come in ticks of %g ms: averages over n operations)\n"):format(1000 / TICK))
  rc:close()
end, debug.traceback)

core.kill(pid, "TERM")
if core.wait(pid, 5) == nil then
  core.kill(pid, "KILL")
  core.wait(pid, 5)
end
for _, e in ipairs(engines) do
  local deadline = core.now() + 5
  while core.alive(e) and core.now() < deadline do core.sleep(0.01) end
  if core.alive(e) then core.kill(e, "KILL") end
end
os.execute("rm -rf '" .. dir .. "'")
if not ok then
  io.stderr:write("bench --cpu: ", tostring(err), "\n")
  os.exit(1)
end
