-- plush.cluster: profiles, connection files, starting and stopping a
-- controller with its engines, and plush.connect.
--
-- A running cluster is known by its connection file, dir()/PROFILE.json,
-- written by plush-controller (host, port, key, pid, profile, n). The file
-- alone proves nothing: a controller that was killed leaves it behind, so
-- "running" also means "its pid is alive" (for a controller on this host).
local core = require "plush.core"
local client = require "plush.client"
local util = require "plush.util"

local cluster = {}

-- pids we spawned: those we can (and must) reap with core.wait
local spawned = {}

local function json()
  return require "cjson"
end

local function exists(path)
  return os.rename(path, path) ~= nil
end

-- The profile name: the argument, else $PLUSH_PROFILE, else "default".
function cluster.profile(p)
  if p == nil then
    p = os.getenv("PLUSH_PROFILE")
    if p == "" then p = nil end
  end
  p = p or "default"
  if type(p) ~= "string" or not p:match("^[%w_.%-]+$") or p:match("^%.") then
    util.raise(("bad profile name '%s' (letters, digits, '_', '-', '.')"):format(tostring(p)))
  end
  return p
end

-- $XDG_RUNTIME_DIR/plush, else ~/.local/state/plush; created with mode 0700.
function cluster.dir()
  local base = os.getenv("XDG_RUNTIME_DIR")
  local dir
  if base and base ~= "" then
    dir = base .. "/plush"
  else
    dir = (os.getenv("HOME") or "/tmp") .. "/.local/state/plush"
  end
  if not exists(dir) then
    os.execute("mkdir -p -m 700 " .. util.shquote(dir) .. " 2>/dev/null")
    if not exists(dir) then util.raise("cannot create " .. dir) end
  end
  return dir
end

function cluster.path(profile)
  return cluster.dir() .. "/" .. cluster.profile(profile) .. ".json"
end

function cluster.log_path(profile)
  return cluster.dir() .. "/" .. cluster.profile(profile) .. ".log"
end

local function is_file_arg(s)
  return s:find("/", 1, true) ~= nil or s:match("%.json$") ~= nil
end

--[[
  read(profile or file) -> info, or nil and a reason. A string with a "/"
  or ending in ".json" is a file. info.file is where it was read; integer
  fields come back as integers (lua-cjson reads every number as a float).
]]
function cluster.read(what)
  local file
  if type(what) == "string" and is_file_arg(what) then
    file = what
  else
    file = cluster.path(what)
  end
  local f = io.open(file, "rb")
  if not f then return nil, "no connection file " .. file end
  -- its key is the cluster: a file others may read or write is refused,
  -- as plush-engine refuses it (core/connfile.c)
  local mode = core.filemode(file)
  if mode and mode & 0x3f ~= 0 then
    f:close()
    return nil, ("connection file %s is %s by others (mode %04o); chmod 600 it")
      :format(file, mode & 0x24 ~= 0 and "readable" or "writable", mode)
  end
  local text = f:read("a")
  f:close()
  local ok, info = pcall(json().decode, text)
  if not ok or type(info) ~= "table" then
    return nil, "bad connection file " .. file
  end
  for _, k in ipairs{"host", "port", "key"} do
    if info[k] == nil then
      return nil, ("bad connection file %s: no '%s'"):format(file, k)
    end
  end
  for _, k in ipairs{"port", "pid", "n"} do
    if type(info[k]) == "number" then info[k] = math.tointeger(info[k]) or info[k] end
  end
  info.file = file
  return info
end

-- Whether the controller of `info` runs on this host, so that its pid
-- means something here.
local function is_local(info)
  if info.hostname ~= nil then return info.hostname == core.hostname() end
  local h = info.host
  return h == "localhost" or h == "::1" or h == "0.0.0.0" or h == "::"
    or (type(h) == "string" and h:match("^127%.") ~= nil)
    or h == core.hostname()
end

-- True when the cluster of `info` is up (for a controller on another host,
-- assumed: only connecting can tell).
function cluster.running(info)
  if type(info) ~= "table" then return false end
  if not is_local(info) or math.type(info.pid) ~= "integer" then return true end
  return core.alive(info.pid) == true
end

-- core.connect, its error blamed on our caller rather than on this file
local function dial(info, timeout)
  local h = info.host
  if h == "0.0.0.0" or h == "*" or h == "" then h = "127.0.0.1" end
  if h == "::" then h = "::1" end
  return util.ok(core.connect(h, info.port, info.key, timeout, info.encrypt == true))
end

-- plush-controller: next to us or in the build tree (core.bindirs), else
-- on $PATH.
local function find_binary(name)
  local tried = {}
  local dirs = {}
  for _, d in ipairs(core.bindirs() or {}) do dirs[#dirs + 1] = d end
  for d in (os.getenv("PATH") or ""):gmatch("[^:]+") do dirs[#dirs + 1] = d end
  for _, d in ipairs(dirs) do
    local p = d .. "/" .. name
    tried[#tried + 1] = d
    local f = io.open(p, "rb")
    if f then
      f:close()
      return p
    end
  end
  util.raise(("cannot find %s (looked in %s)"):format(name, table.concat(tried, ":")))
end

-- Wait until pid is gone: true when it went within `secs`.
local function gone(pid, secs)
  return require("plush.launch").gone(pid, secs, spawned)
end

-- Wait for pid to exit; after `secs`, TERM, then KILL.
local function reap(pid, secs)
  if gone(pid, secs) then return true end
  core.kill(pid, "TERM")
  if gone(pid, 2) then return true end
  core.kill(pid, "KILL")
  return gone(pid, 2)
end

--[[
  Count engines until `n` are up: engine_up/engine_down events say when,
  and an "ids" request every half second covers the ones that registered
  before we connected (and any event we would otherwise miss).
]]
local function wait_engines(conn, n, deadline, log, pid, launched)
  local up, count = {}, 0
  local function set(id, on)
    if on and not up[id] then count = count + 1 elseif not on and up[id] then count = count - 1 end
    up[id] = on or nil
  end
  local rid, again = util.ok(conn:ctrl{op = "ids"}), core.now() + 0.5
  while count < n do
    local now = core.now()
    if now >= deadline then
      -- a batch job still queued: its engines join when it runs
      if launched and launched.patient() then return false end
      util.raise(("only %d of %d engines registered in time: see %s"):format(count, n, log))
    end
    if not core.alive(pid) then util.raise("controller exited: see " .. log) end
    local why = launched and launched.check()
    if why then
      util.raise(("%s with %d of %d engines registered: see %s"):format(why, count, n, log))
    end
    for _, ev in ipairs(conn:poll(math.min(deadline - now, 0.1))) do
      if ev.kind == "ctrl" and ev.id == rid and ev.status == "ok" then
        for _, id in ipairs(ev.value) do set(id, true) end
      elseif ev.kind == "event" and type(ev.value) == "table" then
        set(ev.value.id, ev.value.event == "engine_up")
      elseif ev.kind == "closed" then
        util.raise("controller closed the connection: see " .. log)
      end
    end
    if core.now() >= again then
      rid, again = util.ok(conn:ctrl{op = "ids"}), core.now() + 0.5
    end
  end
  return true
end

-- The engine ids registered now (a ctrl round trip).
local function ids_now(conn, limit)
  local rid = conn:ctrl{op = "ids"}
  local stop = core.now() + limit
  while core.now() < stop do
    for _, ev in ipairs(conn:poll(0.1)) do
      if ev.kind == "ctrl" and ev.id == rid then return ev.value or {} end
      if ev.kind == "closed" then util.raise("controller closed the connection") end
    end
  end
  return {}
end

--[[
  Restarting a profile whose controller died: its engines come back by
  themselves (they retry with a back-off of up to ~6 s, for a minute), so
  the new controller (started with -n 0) adopts up to n of them, stops
  any beyond n, and launches only the missing ones: `cluster start -n 4`
  gives 4 engines, namespaces kept where they came back.
]]
local function adopt_orphans(conn, n, deadline, log)
  local stop, ids = math.min(core.now() + 7, deadline), {}
  while core.now() < stop do
    ids = ids_now(conn, 1)
    if #ids >= n then break end
    core.sleep(0.25)
  end
  if #ids > n then
    local extra = {}
    for i = n + 1, #ids do extra[#extra + 1] = ids[i] end
    conn:ctrl{op = "shutdown", targets = extra}
  elseif #ids < n then
    conn:ctrl{op = "add", n = n - #ids}
  end
  if #ids > 0 then
    local f = io.open(log, "a")
    if f then
      f:write(("plush cluster start: %d engine(s) of the previous controller rejoined\n")
        :format(math.min(#ids, n)))
      f:close()
    end
  end
end

--[[
  Engines started by a launcher (plush.launch): mpi, hosts or slurm. The
  controller starts with -n 0 and, for engines on other hosts, on an
  address they can reach; the launcher starts once its connection file
  is there. Returns the launcher's kind and what it needs.
]]
local function launcher(opts, n)
  local launch = require "plush.launch"
  local kind = launch.kind(opts)
  if not kind then return nil end
  local c = {n = n, mpi = opts.mpi, partition = opts.partition, time = opts.time,
    account = opts.account, find = find_binary, spawned = spawned, args = {}}
  if opts.memory_limit then c.args = {"--memory-limit", tostring(opts.memory_limit)} end
  if opts.hosts then
    local f = io.open(opts.hosts, "r")
    if not f then util.raise("cannot read the hosts file " .. opts.hosts) end
    local total
    c.hosts, total = launch.parse_hosts(f:read("a"), opts.hosts)
    f:close()
    if opts.n and opts.n ~= total then
      util.raise(("-n %d does not match the hosts file's %d engines"):format(opts.n, total))
    end
    c.n = total
  end
  if (kind == "hosts" or kind == "slurm" or c.hosts) and not opts.ip then
    c.ip = launch.address()
    if not c.ip then
      util.raise("no address other hosts can reach: give the controller's with --ip")
    end
  end
  return kind, c
end

--[[
  start{n =, profile =, ip =, port =, embedded =, timeout =, mpi =, hosts =,
  slurm =, partition =, time =, account =, threads =} -> info, conn. Spawns
  plush-controller detached (its output in dir()/PROFILE.log), waits for
  its connection file and for n engines, and returns the file's contents
  and the open connection (close it if unused). An embedded cluster gets
  --parent: it goes away with us. With mpi / hosts / slurm the engines
  come from mpiexec / ssh / a Slurm job (plush.launch, share/doc/
  scale-out.md); a job still queued when the timeout comes leaves the
  cluster up, info.pending set. threads = true: the n engines are threads
  of the controller's process (plush-controller --threads n).
]]
function cluster.start(opts)
  opts = opts or {}
  local profile = cluster.profile(opts.profile)
  local n = opts.n or core.ncpu()
  if math.type(n) ~= "integer" or n < 0 then
    util.raise("bad number of engines: " .. tostring(n))
  end
  local timeout = opts.timeout or 60
  local file, log = cluster.path(profile), cluster.log_path(profile)
  local old = cluster.read(file)
  if old and cluster.running(old) then
    util.raise(("cluster '%s' is already running (pid %s)"):format(profile, tostring(old.pid)))
  end
  os.remove(file)
  local kind, lc = launcher(opts, n)
  if lc then n = lc.n end
  -- a controller that died (killed) leaves its engines reconnecting for a
  -- minute: they join the new one, which then launches only the rest
  local adopt = old ~= nil and not kind and n > 0
  local argv = {find_binary("plush-controller"), "--profile", profile,
    "-n", tostring((kind or adopt) and 0 or n)}
  if opts.threads then -- engines as threads of the controller's process
    if kind then
      util.raise("--threads runs the engines in the controller: no --mpi, --hosts or --slurm")
    end
    if n < 1 then util.raise("--threads needs a number of engines from 1") end
    argv[#argv - 1], argv[#argv], adopt = "--threads", tostring(n), false
  end
  local function add(...) for _, a in ipairs{...} do argv[#argv + 1] = a end end
  if opts.ip or (lc and lc.ip) then add("--ip", opts.ip or lc.ip) end
  if opts.port then add("--port", tostring(opts.port)) end
  if opts.memory_limit then add("--memory-limit", tostring(opts.memory_limit)) end
  if opts.hwm then add("--hwm", tostring(opts.hwm)) end
  if opts.stall_timeout then add("--stall-timeout", tostring(opts.stall_timeout)) end
  if opts.embedded then add("--parent", tostring(core.getpid())) end
  add("--file", file)
  local pid = core.spawn(argv, {detach = true, stdout = log, stderr = log})
  spawned[pid] = true
  local deadline = core.now() + timeout
  local launched, pending
  local ok, info, conn = pcall(function()
    local info
    while true do
      info = cluster.read(file)
      if info then break end
      if not core.alive(pid) or core.now() >= deadline then
        -- the controller's own last word (a bad option, say) says why
        local f, last = io.open(log, "rb"), nil
        if f then
          for line in f:lines() do if line:match("%S") then last = line end end
          f:close()
        end
        util.raise("controller did not start" .. (last and ": " .. last or "")
          .. " (see " .. log .. ")")
      end
      core.sleep(0.01)
    end
    if kind then
      local launch = require "plush.launch"
      lc.profile, lc.dir, lc.file, lc.log = profile, cluster.dir(), file, log
      local st = launch.start(kind, lc)
      launched = {state = st,
        check = function() return launch.check(st) end,
        patient = function() return launch.patient(st) end}
    end
    local conn = dial(info, math.max(deadline - core.now(), 1))
    if adopt then adopt_orphans(conn, n, deadline, log) end
    local ok, all = pcall(wait_engines, conn, n, deadline, log, pid, launched)
    if not ok then
      conn:close()
      error(all, 0)
    end
    pending = not all
    return info, conn
  end)
  if not ok then
    reap(pid, 0)
    if launched then
      require("plush.launch").stop(launched.state, 0)
    elseif kind then -- the launch itself failed part way: its sidecar knows
      require("plush.launch").stop_profile(cluster.dir(), profile, 0)
    end
    os.remove(file)
    error(info, 0)
  end
  if launched then
    info.launcher, info.job, info.pending = kind, launched.state.job, pending or nil
    info.n = n
  end
  info.profile = info.profile or profile
  info.log = log
  return info, conn
end

-- Ask the controller behind `conn` to shut down; wait a little for its
-- answer (it may just close the connection, which is as good).
local function ask_shutdown(conn)
  local rid = conn:ctrl{op = "shutdown"}
  if not rid then return end -- gone already
  local deadline = core.now() + 5
  while core.now() < deadline do
    for _, ev in ipairs(conn:poll(0.1)) do
      if (ev.kind == "ctrl" and ev.id == rid) or ev.kind == "closed" then return end
    end
  end
end

--[[
  stop{profile =, file =, timeout =} -> true, or nil and a reason.
  Shuts the controller down (it stops its engines), waits for its pid to
  go (TERM, then KILL, after `timeout` seconds) and removes its file.
]]
function cluster.stop(opts)
  opts = opts or {}
  local profile = cluster.profile(opts.profile)
  local info = cluster.read(opts.file or profile)
  if not info then
    return nil, ("no cluster running for profile '%s'"):format(profile)
  end
  if not cluster.running(info) then
    os.remove(info.file)
    require("plush.launch").stop_profile(cluster.dir(), info.profile or profile, 0)
    return nil, ("no cluster running for profile '%s' (removed a stale %s)")
      :format(profile, info.file)
  end
  local ok, conn = pcall(dial, info, opts.timeout or 5)
  if ok then
    pcall(ask_shutdown, conn)
    pcall(conn.close, conn)
  end
  if math.type(info.pid) == "integer" and is_local(info) then
    if not reap(info.pid, opts.timeout or 10) then
      return nil, ("controller %d did not exit"):format(info.pid)
    end
  end
  -- engines from mpiexec, ssh or a batch job: end what is left of them
  require("plush.launch").stop_profile(cluster.dir(), info.profile or profile, opts.timeout)
  os.remove(info.file)
  return true
end

-- Stop the embedded cluster of a Client that owns it (rc:close()).
function cluster.stop_owned(rc)
  local owned = rc.owned
  if owned.threads then return require("plush.threads").stop_owned(rc) end
  rc.owned = nil
  pcall(ask_shutdown, rc.conn)
  pcall(rc.conn.close, rc.conn)
  local clean = reap(owned.pid, 10)
  if owned.file then os.remove(owned.file) end
  if clean and owned.log then os.remove(owned.log) end
end

--[[
  status{profile =, file =} -> {profile, file, address, host, port, pid,
  status = <ctrl status>, engines = <ctrl engines>, queues = <ctrl
  queue_status>}, or nil and a reason.
]]
function cluster.status(opts)
  opts = opts or {}
  local profile = cluster.profile(opts.profile)
  local info = cluster.read(opts.file or profile)
  if not info or not cluster.running(info) then
    return nil, ("no cluster running for profile '%s'"):format(profile)
  end
  local rc = client.new(dial(info, opts.timeout or 5), {timeout = opts.timeout or 5})
  local ok, out = pcall(function()
    return {
      profile = info.profile or profile,
      file = info.file,
      host = info.host,
      port = info.port,
      pid = info.pid,
      address = ("%s:%s"):format(info.host, info.port),
      status = rc:status(),
      engines = rc:engines(),
      queues = rc:queue_status(),
    }
  end)
  rc:close()
  if not ok then error(out, 0) end
  return out
end

--[[
  connect{file =, profile =, timeout =, n =, embedded =} -> Client.
  With `file`: that cluster. Else the profile's running cluster; when none
  runs, an embedded one (profile "embedded-<pid>", n engines, default one
  per core) that the Client owns and stops when closed. embedded = false
  refuses to start one.
]]
function cluster.connect(opts)
  opts = opts or {}
  local timeout = opts.timeout or 10
  local info, err
  if opts.file then
    info, err = cluster.read(opts.file)
    if not info then util.raise(err) end
  else
    local profile = cluster.profile(opts.profile)
    info = cluster.read(profile)
    if not (info and cluster.running(info)) then
      if opts.embedded == false then
        util.raise(("no cluster running for profile '%s'"):format(profile))
      end
      local name = "embedded-" .. core.getpid()
      local conn
      info, conn = cluster.start{profile = name, n = opts.n or core.ncpu(),
        embedded = true, timeout = opts.start_timeout or 60}
      local rc = client.new(conn, {timeout = timeout, output = opts.output,
        owned = {profile = name, pid = info.pid, file = info.file, log = info.log}})
      rc.info = info
      return rc
    end
  end
  local rc = client.new(dial(info, timeout), {timeout = timeout, output = opts.output})
  rc.info = info
  local where = opts.file or cluster.profile(opts.profile)
  rc._redial = function()
    local now = cluster.read(where)
    if not (now and cluster.running(now)) then return nil end
    rc.info = now
    return dial(now, timeout)
  end
  return rc
end

return cluster
