-- plush.launch: engines started by the tools a computing centre runs —
-- mpiexec, ssh, Slurm — for `plush cluster start --mpi / --hosts /
-- --slurm` (share/doc/scale-out.md).
--
-- cluster.start starts the controller with -n 0 and hands over here: a
-- launcher starts the engines, and what it started (PIDs, a batch job
-- id, copies of the connection file on other hosts) goes in a sidecar
-- file, dir()/PROFILE.launch.json, so that `plush cluster stop`, from
-- another process, can end exactly those by PID or job id.
--
-- The pure parts (command lines, batch scripts, the hosts file) are
-- separate functions so that tests/lua/launch_spec.lua can check them
-- without starting anything.
local core = require "plush.core"
local util = require "plush.util"

local launch = {}

local function json()
  return require "cjson"
end

local sh = util.shquote

-- Words of a command given as one string ("ssh -p 2222"), for argv.
local function words(s)
  local t = {}
  for w in s:gmatch("%S+") do t[#t + 1] = w end
  return t
end

local function append(t, ...)
  for _, v in ipairs{...} do t[#t + 1] = v end
  return t
end

-- The one launcher among opts.mpi / opts.hosts / opts.slurm: "mpi",
-- "hosts", "slurm" or nil. --mpi goes with --hosts (mpiexec runs on
-- those hosts) and with --slurm (srun starts MPI engines).
function launch.kind(opts)
  if opts.slurm and opts.hosts then
    util.raise("--slurm and --hosts do not go together: Slurm picks the hosts")
  end
  if opts.slurm then return "slurm" end
  if opts.mpi then return "mpi" end
  if opts.hosts then return "hosts" end
  return nil
end

-------------------------------------------------------------------------------
-- Pure parts: hosts files, command lines, scripts
-------------------------------------------------------------------------------

--[[
  parse_hosts(text [, name]) -> {{host =, n =}, ...}, total. One host a
  line, "HOST [COUNT]" (COUNT engines, default 1); "#" starts a comment,
  blank lines are skipped. `name` is the file's, for errors ("hosts:3:
  bad engine count 'x'").
]]
function launch.parse_hosts(text, name)
  name = name or "hosts"
  local list, total, lineno = {}, 0, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    lineno = lineno + 1
    line = line:gsub("#.*", "")
    local w = words(line)
    if #w > 0 then
      local host, count = w[1], w[2]
      local n = 1
      if count ~= nil then
        n = math.tointeger(tonumber(count))
        if not n or n < 1 then
          util.raise(("%s:%d: bad engine count '%s'"):format(name, lineno, count))
        end
      end
      if #w > 2 then
        util.raise(("%s:%d: want 'HOST [COUNT]', got '%s'"):format(name, lineno, line))
      end
      if not host:match("^[%w%.%-_:@%[%]]+$") then
        util.raise(("%s:%d: bad host name '%s'"):format(name, lineno, host))
      end
      list[#list + 1] = {host = host, n = n}
      total = total + n
    end
  end
  if #list == 0 then util.raise(name .. ": no hosts") end
  return list, total
end

-- Whether mpiexec is Open MPI's (it wants --allow-run-as-root and
-- --oversubscribe, which other MPIs refuse).
function launch.openmpi(mpiexec)
  local f = io.popen(sh(mpiexec or "mpiexec") .. " --version 2>&1", "r")
  if not f then return false end
  local out = f:read("a") or ""
  f:close()
  return out:find("Open MPI", 1, true) ~= nil or out:find("OpenRTE", 1, true) ~= nil
end

--[[
  mpi_argv{n =, engine =, file =, mpiexec = "mpiexec", openmpi =, root =,
  hosts = {{host, n}...}, args = {more engine arguments}} -> argv.
  `mpiexec` may carry arguments of its own ($PLUSH_MPIEXEC, "mpirun --mca
  btl self,vader"). Open MPI refuses root without --allow-run-as-root and
  more ranks than cores without --oversubscribe: both are given when it
  is Open MPI.
]]
function launch.mpi_argv(o)
  local argv = words(o.mpiexec or "mpiexec")
  if o.openmpi then
    if o.root then append(argv, "--allow-run-as-root") end
    append(argv, "--oversubscribe")
  end
  if o.hosts then
    local hs = {}
    for i, h in ipairs(o.hosts) do hs[i] = h.host .. ":" .. h.n end
    append(argv, "--host", table.concat(hs, ","))
  end
  append(argv, "-n", tostring(o.n), o.engine, "--file", o.file)
  for _, a in ipairs(o.args or {}) do argv[#argv + 1] = a end
  return argv
end

-- The command standing in for ssh: $PLUSH_SSH, else ssh that never asks
-- for a password (it would hang a background start). Like ssh it is
-- given the host, then the remote command as one shell string.
function launch.ssh()
  local s = os.getenv("PLUSH_SSH")
  if s and s:match("%S") then return s end
  return "ssh -o BatchMode=yes -o ConnectTimeout=10"
end

-- Where a host keeps its copy of the connection file: ~/.plush/PROFILE.json
-- there (not the local runtime directory, which a host with a shared
-- home would then overwrite with itself). As shell text: $HOME expands
-- on the host.
function launch.remote_file(profile)
  return '"$HOME"/.plush/' .. sh(profile .. ".json")
end

--[[
  copy_command(ssh, host, profile) -> a shell command that copies stdin
  to the host's connection file with mode 0600: through a private
  temporary (install -m 600, under umask 077, so that it is never
  readable by others) renamed into place, since hosts sharing a home
  write the same file.
]]
function launch.copy_command(ssh, host, profile)
  local dir = '"$HOME"/.plush'
  local tmp = dir .. "/." .. sh(profile) .. ".json.$$"
  local remote = ("umask 077 && mkdir -p %s && install -m 600 /dev/stdin %s && mv -f %s %s")
    :format(dir, tmp, tmp, launch.remote_file(profile))
  return ssh .. " " .. sh(host) .. " " .. sh(remote)
end

-- remove_command(ssh, host, profile): removes the host's copy.
function launch.remove_command(ssh, host, profile)
  return ssh .. " " .. sh(host) .. " " .. sh("rm -f " .. launch.remote_file(profile))
end

-- engine_command(ssh, host, engine, profile [, args]) -> argv that runs
-- one engine on the host, in the foreground of that ssh (whose PID we
-- keep); args: more arguments for the engine.
function launch.engine_command(ssh, host, engine, profile, args)
  local remote = ("exec %s --file %s"):format(sh(engine),
    launch.remote_file(profile))
  for _, a in ipairs(args or {}) do remote = remote .. " " .. sh(a) end
  return {"/bin/sh", "-c", "exec " .. ssh .. " " .. sh(host) .. " " .. sh(remote)}
end

--[[
  slurm_script{profile =, n =, engine =, file =, log =, partition =,
  time =, account =, mpi =, args =} -> the batch script's text. The engines are
  one job step, `srun ENGINE --file FILE`; --kill-on-bad-exit=0 keeps
  the others up when one engine fails. The connection file must be on a
  filesystem the nodes share (the caller copies it to ~/.plush).
]]
function launch.slurm_script(o)
  local lines = {
    "#!/bin/sh",
    "# plush engines for cluster '" .. o.profile .. "' (written by plush cluster start --slurm)",
    "#SBATCH --job-name=plush-" .. o.profile,
    "#SBATCH --ntasks=" .. o.n,
    "#SBATCH --output=" .. o.log,
  }
  if o.partition then lines[#lines + 1] = "#SBATCH --partition=" .. o.partition end
  if o.time then lines[#lines + 1] = "#SBATCH --time=" .. o.time end
  if o.account then lines[#lines + 1] = "#SBATCH --account=" .. o.account end
  local srun = "srun --kill-on-bad-exit=0"
  if o.mpi then srun = srun .. " --mpi=" .. (o.mpi == true and "pmix" or o.mpi) end
  local line = ("exec %s %s --file %s"):format(srun, sh(o.engine), sh(o.file))
  for _, a in ipairs(o.args or {}) do line = line .. " " .. sh(a) end
  lines[#lines + 1] = line
  return table.concat(lines, "\n") .. "\n"
end

-- The job id in sbatch's answer ("Submitted batch job 42", or "42" with
-- --parsable, maybe "42;cluster").
function launch.job_id(out)
  return out:match("Submitted batch job (%d+)") or out:match("^%s*(%d+)")
end

-------------------------------------------------------------------------------
-- The sidecar
-------------------------------------------------------------------------------

function launch.sidecar(dir, profile)
  return dir .. "/" .. profile .. ".launch.json"
end

local function save(state)
  local f = assert(io.open(state.sidecar, "w"))
  f:write(json().encode(state), "\n")
  f:close()
end

-- read(dir, profile) -> the sidecar's state, or nil.
function launch.read(dir, profile)
  local f = io.open(launch.sidecar(dir, profile), "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local ok, state = pcall(json().decode, text)
  if not ok or type(state) ~= "table" then return nil end
  for i, p in ipairs(state.pids or {}) do state.pids[i] = math.tointeger(p) or p end
  return state
end

-------------------------------------------------------------------------------
-- Starting
-------------------------------------------------------------------------------

-- Runs a shell command, it and its output in the log; true or nil and
-- a reason.
local function run(cmd, log)
  local f = io.open(log, "a")
  if f then
    f:write("plush: running ", cmd, "\n")
    f:close()
  end
  local ok, _, code = os.execute(cmd .. " >>" .. sh(log) .. " 2>&1")
  if ok then return true end
  return nil, ("status %s: see %s"):format(tostring(code), log)
end

local function capture(cmd)
  local f = io.popen(cmd .. " 2>&1", "r")
  if not f then return nil, "cannot run " .. cmd end
  local out = f:read("a") or ""
  local ok, _, code = f:close()
  if not ok then return nil, out, code end
  return out
end

local starters = {}

-- Copies the connection file to each host of c.hosts (see copy_command).
local function copy_to_hosts(c, st)
  st.ssh, st.hosts = launch.ssh(), {}
  for _, h in ipairs(c.hosts) do
    local ok, err = run(launch.copy_command(st.ssh, h.host, c.profile) .. " <" .. sh(c.file), c.log)
    if not ok then
      util.raise(("cannot copy the connection file to %s (%s)"):format(h.host, err))
    end
    st.hosts[#st.hosts + 1] = h.host
    save(st)
  end
end

function starters.mpi(c, st)
  local mpiexec = os.getenv("PLUSH_MPIEXEC") or "mpiexec"
  st.engine = c.find("plush-engine-mpi")
  local file = c.file
  if c.hosts then
    -- every rank gets the same --file: the copy in the (same) home of each host
    copy_to_hosts(c, st)
    file = (os.getenv("HOME") or "") .. "/.plush/" .. c.profile .. ".json"
  end
  local argv = launch.mpi_argv{n = c.n, engine = st.engine, file = file,
    mpiexec = mpiexec, openmpi = launch.openmpi(words(mpiexec)[1]),
    root = launch.euid() == 0,
    hosts = c.hosts, args = c.args}
  st.argv = argv
  local pid = core.spawn(argv, {detach = true, stdout = c.log, stderr = c.log})
  c.spawned[pid] = true
  st.pids = {pid}
end

function starters.hosts(c, st)
  st.engine = os.getenv("PLUSH_REMOTE_ENGINE") or c.find("plush-engine")
  st.pids = {}
  copy_to_hosts(c, st)
  for _, h in ipairs(c.hosts) do
    for _ = 1, h.n do
      local argv = launch.engine_command(st.ssh, h.host, st.engine, c.profile, c.args)
      local pid = core.spawn(argv, {detach = true, stdout = c.log, stderr = c.log})
      c.spawned[pid] = true
      st.pids[#st.pids + 1] = pid
    end
    save(st)
  end
end

function starters.slurm(c, st)
  -- The nodes read the connection file from the (shared) home.
  local home = os.getenv("HOME") or util.raise("--slurm needs $HOME (a directory the nodes share)")
  local remote = home .. "/.plush/" .. c.profile .. ".json"
  local ok, err = run(("umask 077 && mkdir -p %s && install -m 600 %s %s"):format(
    sh(home .. "/.plush"), sh(c.file), sh(remote)), c.log)
  if not ok then util.raise("cannot copy the connection file (" .. err .. ")") end
  st.copy = remote
  st.engine = os.getenv("PLUSH_REMOTE_ENGINE")
    or c.find(c.mpi and "plush-engine-mpi" or "plush-engine")
  st.script = c.dir .. "/" .. c.profile .. ".sbatch"
  local f = assert(io.open(st.script, "w"))
  f:write(launch.slurm_script{profile = c.profile, n = c.n, engine = st.engine,
    file = remote, log = c.dir .. "/" .. c.profile .. ".slurm.log",
    partition = c.partition, time = c.time, account = c.account, mpi = c.mpi,
    args = c.args})
  f:close()
  save(st)
  local out, why = capture("sbatch " .. sh(st.script))
  local job = out and launch.job_id(out)
  if not job then
    util.raise("sbatch refused the job: " .. util.first_line(tostring(out or why)))
  end
  st.job = job
  save(st)
end

-- The effective uid, for mpiexec as root (core has no getuid).
function launch.euid()
  local f = io.popen("id -u", "r")
  local id = f and tonumber(f:read("l"))
  if f then f:close() end
  return id
end

--[[
  start(kind, c) -> state. c = {profile, dir, file (the connection file),
  log, n, find (name -> path of a plush binary), spawned (pids we must
  reap), hosts (parsed, for "hosts"/"mpi"), partition, time, account,
  mpi, args (more arguments for every engine)}. Writes the sidecar as it
  goes, so that whatever was started can be stopped even if a later step
  fails.
]]
function launch.start(kind, c)
  local st = {kind = kind, profile = c.profile, sidecar = launch.sidecar(c.dir, c.profile)}
  save(st)
  starters[kind](c, st)
  save(st)
  st.spawned = c.spawned
  return st
end

-- The Slurm job's state ("PENDING", "RUNNING", ...), or nil once it is gone.
function launch.job_state(job)
  local out = capture("squeue -h -j " .. sh(job) .. " -o %T")
  if not out then return nil end
  local s = out:match("^%s*(%u[%u_]*)")
  return s
end

--[[
  check(state) -> nil while the launch may still bring its engines, else
  why not. Called while waiting for engines to register: mpiexec that
  exited, every ssh gone, a job that left the queue. Slurm is asked at
  most once a second.
]]
function launch.check(st)
  if st.kind == "mpi" then
    if not core.alive(st.pids[1]) then return "mpiexec exited" end
  elseif st.kind == "hosts" then
    local live = 0
    for _, p in ipairs(st.pids) do
      if core.alive(p) then live = live + 1 end
    end
    if live == 0 then return "every ssh exited" end
  elseif st.kind == "slurm" then
    local now = core.now()
    if st.asked and now - st.asked < 1 then return nil end
    st.asked = now
    st.state = launch.job_state(st.job)
    if st.state == nil then return ("job %s is no longer queued"):format(st.job) end
  end
  return nil
end

-- Whether a launch may take longer than cluster start waits: a batch job
-- still in the queue. cluster start then returns with the job pending.
function launch.patient(st)
  if st.kind ~= "slurm" then return false end
  st.asked = nil
  launch.check(st)
  return st.state == "PENDING" or st.state == "CONFIGURING"
end

-------------------------------------------------------------------------------
-- Stopping
-------------------------------------------------------------------------------

-- launch.gone(pid, secs [, spawned]): true once pid has exited, within
-- `secs`; a child of ours (in `spawned`) is reaped.
function launch.gone(pid, secs, spawned)
  if spawned and spawned[pid] then
    if core.wait(pid, secs) ~= nil then
      spawned[pid] = nil
      return true
    end
    return false
  end
  local deadline = core.now() + secs
  while core.alive(pid) do
    if core.now() >= deadline then return false end
    core.sleep(0.02)
  end
  return true
end

--[[
  stop(state [, grace]) — after the controller has told the engines to
  shut down: waits up to `grace` seconds for what the launcher started to
  end by itself (mpiexec once every rank has finalised MPI; ssh once its
  engine exits), then TERM, then KILL, by PID; cancels the Slurm job;
  removes the copies of the connection file and the sidecar.
]]
function launch.stop(st, grace)
  grace = grace or 10
  local deadline = core.now() + grace
  for _, pid in ipairs(st.pids or {}) do
    if not launch.gone(pid, math.max(deadline - core.now(), 0), st.spawned) then
      core.kill(pid, "TERM")
      if not launch.gone(pid, 3, st.spawned) then
        core.kill(pid, "KILL")
        launch.gone(pid, 2, st.spawned)
      end
    end
  end
  if st.job then
    local state = launch.job_state(st.job)
    if state ~= nil then os.execute("scancel " .. sh(st.job) .. " >/dev/null 2>&1") end
  end
  for _, h in ipairs(st.hosts or {}) do
    os.execute(launch.remove_command(st.ssh, h, st.profile) .. " >/dev/null 2>&1")
  end
  if st.copy then os.remove(st.copy) end
  if st.sidecar then os.remove(st.sidecar) end
  return true
end

-- stop_profile(dir, profile [, grace]) — launch.stop on the profile's
-- sidecar, when there is one. True when there was.
function launch.stop_profile(dir, profile, grace)
  local st = launch.read(dir, profile)
  if not st then return false end
  st.sidecar = launch.sidecar(dir, profile)
  launch.stop(st, grace)
  return true
end

--[[
  address() -> this host's first non-loopback address (`hostname -I`),
  for a controller that engines on other hosts must reach; nil when
  there is none.
]]
function launch.address()
  local out = capture("hostname -I")
  if not out then return nil end
  for a in out:gmatch("%S+") do
    if not a:match("^127%.") and a ~= "::1" and not a:match("^fe80:") then return a end
  end
  return nil
end

return launch
