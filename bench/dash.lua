-- bench/dash.lua: a dashboard open on a cluster, for the workload
-- exec_rt_dash (bench/run.lua): `plush dashboard --file F` and a reader
-- of its WebSocket (bench/dash_reader.py, standing for a page), both
-- spawned here and ended by PID.
--
--   local dash = dofile(ROOT .. "/bench/dash.lua")
--   local samples = dash.with(ROOT, TMP, file, function() ... end)
local core = require "plush.core"

local dash = {}

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local function stop(pid)
  core.kill(pid, "TERM")
  if core.wait(pid, 5) == nil then
    core.kill(pid, "KILL")
    core.wait(pid, 5)
  end
end

-- Runs fn() while a dashboard is open on the cluster of connection file
-- `file`; fn's values.
function dash.with(root, tmp, file, fn)
  local out = tmp .. "/dashboard.out"
  local rout = tmp .. "/dash_reader.out"
  local plush_bin = root .. "/build/bin/plush"
  local pid = core.spawn({plush_bin, "dashboard", "--file", file}, {stdout = out, stderr = out})
  local rpid
  local ok, r = pcall(function()
    local url
    local deadline = core.now() + 30
    repeat
      url = read(out):match("(http://%S+)")
      if not url then
        if core.now() > deadline or not core.alive(pid) then
          error("plush dashboard gave no URL: " .. read(out), 0)
        end
        core.sleep(0.05)
      end
    until url
    rpid = core.spawn({"/usr/bin/python3", root .. "/bench/dash_reader.py", url},
      {stdout = rout, stderr = rout})
    -- the reader says when it has its first state
    deadline = core.now() + 30
    while not read(rout):find("state", 1, true) do
      if core.now() > deadline or not core.alive(rpid) then
        error("the dashboard's WebSocket gave no state: " .. read(rout), 0)
      end
      core.sleep(0.05)
    end
    return fn()
  end)
  if rpid then stop(rpid) end
  stop(pid)
  if not ok then error(r, 0) end
  return r
end

return dash
