-- plush.cli: the `plush` command line. The C main creates a Lua state with
-- plush.core preloaded, calls require("plush.cli").main(arg) and exits
-- with what it returns. Failures print one line, "plush: REASON", on
-- stderr: 1 for a failure, 2 for a usage error.
--
-- Over 600 lines: one parser and one help table for every command
-- (run, -e, cluster, results, kernel) keep their options and usage
-- messages alike; the work itself is in plush.cluster, plush.shell,
-- plush.kernel.
local plush = require "plush"
local core = require "plush.core"
local errors = require "plush.errors"
local magic = require "plush.magic"
local pretty = require "plush.pretty"
local shell = require "plush.shell"
local util = require "plush.util"

local cli = {}

local help = {
  main = [[
usage: plush [--profile P]                  interactive shell
       plush -e CODE [-e CODE ...]          run Lua (or a %magic) and exit
       plush run FILE.lua [ARGS...]         run a script with `plush` and `rc`
       plush cluster start|stop|status      manage a background cluster
       plush results history|show|export|prune  the cluster's result store
       plush kernel install [--user|--prefix P]  the Jupyter kernelspec
       plush dashboard [--port N] [--open]  a live web dashboard of the cluster
       plush timeline [--svg F | --html F]  the stored tasks drawn as a task stream

plush connects to the profile's running cluster; when none runs it starts
an embedded one (one engine per core) and stops it when it exits.

options:
  --profile P     the cluster profile (default: $PLUSH_PROFILE, else "default")
  --threads N     no cluster: N engines as threads of plush itself (models.md)
  -e CODE         Lua code or a %magic, run in order; may be repeated
  -h, --help      this help (also after any command)
  -V, --version   the version]],
  run = [[
usage: plush run [--profile P] FILE.lua [ARGS...]

Runs FILE.lua with the globals `plush` (the module), `rc` (connected on
first use) and `arg` (arg[0] = FILE, arg[1..] = ARGS). An integer the
script returns is the exit status. A remote error escaping the script is
printed and the status is 1.]],
  cluster = [[
usage: plush cluster start [-n N] [--profile P] [--ip IP] [--port PORT]
                           [--mpi] [--hosts FILE] [--timeout S]
                           [--memory-limit BYTES] [--hwm N] [--stall-timeout S]
                           [--slurm] [--partition P] [--time T] [--account A]
                           [--threads N]
       plush cluster stop [--profile P]
       plush cluster status [--profile P] [--json]
       plush cluster add [-n K] [--profile P]
       plush cluster logs [-n LINES] [--profile P]

start   starts a controller and N engines (default: one per core) in the
        background, writes the connection file, returns once all N are up;
        --mpi starts them with mpiexec, --hosts FILE over ssh ("HOST [COUNT]"
        a line), --slurm as a Slurm batch job (share/doc/scale-out.md);
        --threads N runs the N engines as threads of the controller's
        process instead (share/doc/models.md, "Engines as threads")
stop    stops the profile's cluster
status  shows its engines, queues and addresses
add     launches K more engines (ids are never reused)
logs    the last lines of the controller's and engines' log]],
  results = [[
usage: plush results history [--profile P] [--limit N]
       plush results show ID [--profile P]
       plush results export [--json] [-o FILE] [--profile P]
       plush results prune [--keep N] [--profile P]

history  the ids of the stored tasks, oldest first
show     one task's result (or its error)
prune    removes the stored results, all but the newest N with --keep N
         (the store also evicts its oldest past its bound on its own:
         plush-controller --db-max)
export   every stored task as JSON: id, client, engine, status, the
         submitted/started/completed times, and the result values or the
         error (values JSON cannot carry are written as their tostring)]],
}

-- A usage error: the message, and exit status 2.
local Usage = {__name = "plush.usage"}

local function usage_error(msg)
  error(setmetatable({message = msg}, Usage), 0)
end

--[[
  Options of one command level. `spec` maps an option to "flag", "value"
  or "list"; parsing stops at the first word that is not an option (the
  command, the script). Accepts --opt=value too.
]]
local function parse(argv, i, spec, opts)
  while i <= #argv do
    local a = argv[i]
    local name, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    local kind = spec[name]
    if a == "--" then
      return i + 1
    elseif kind == "flag" then
      opts[name] = true
    elseif kind == "value" or kind == "list" then
      local v = inline
      if v == nil then
        i = i + 1
        v = argv[i]
        if v == nil then usage_error(name .. " needs a value") end
      end
      if kind == "list" then
        opts[name] = opts[name] or {}
        table.insert(opts[name], v)
      else
        opts[name] = v
      end
    elseif a:match("^%-") and a ~= "-" then
      usage_error(("unknown option %s"):format(a))
    else
      return i
    end
    i = i + 1
  end
  return i
end

local common = {
  ["--profile"] = "value", ["-h"] = "flag", ["--help"] = "flag",
  ["-V"] = "flag", ["--version"] = "flag",
}

local function spec_with(extra)
  local s = util.copy(common)
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

local function report(e)
  if errors.is_error(e) then return tostring(e) end
  if type(e) == "string" then return e end
  return ("(error object is a %s value)"):format(type(e))
end

local function die(e)
  if errors.is(e, "Interrupted") then
    io.stderr:write("interrupted\n")
    return 130
  end
  if errors.is_error(e) then
    io.stderr:write(tostring(e), "\n")
    return 1
  end
  io.stderr:write("plush: ", util.first_line(report(e)), "\n")
  if os.getenv("PLUSH_TRACEBACK") and type(e) == "string" then
    io.stderr:write(debug.traceback(), "\n")
  end
  return 1
end

-------------------------------------------------------------------------------
-- A session: the globals `plush` and `rc` (connected on first use, so that
-- `plush -e 'print(1)'` needs no cluster), and the magics' shell table.
-------------------------------------------------------------------------------

local function session(opts)
  local s = {}
  local function get_rc()
    if not s.rc then
      if opts["--threads"] then -- plush --threads N: engines as threads of plush
        s.rc = plush.connect{threads = math.tointeger(tonumber(opts["--threads"]))}
      else
        s.rc = plush.connect{profile = opts["--profile"]}
      end
      rawset(_G, "rc", s.rc)
    end
    return s.rc
  end
  s.old_mt = getmetatable(_G)
  local old_index = s.old_mt and s.old_mt.__index
  setmetatable(_G, {__index = function(t, k)
    if k == "rc" then return get_rc() end
    if type(old_index) == "function" then return old_index(t, k) end
    if type(old_index) == "table" then return old_index[k] end
  end})
  rawset(_G, "plush", plush)
  s.shell = setmetatable({
    targets = "all",
    block = true,
    out = function(text)
      io.stdout:write(text)
      io.stdout:flush()
    end,
    env = _G,
    paint = shell.painter(shell.colors_on(1)),
    -- the Client when one is connected (%help asks the engines only then)
    connected = function() return s.rc end,
  }, {__index = function(_, k)
    if k == "rc" then return get_rc() end
  end})
  s.get_rc = get_rc
  function s.close()
    setmetatable(_G, s.old_mt)
    if s.rc then
      if rawget(_G, "rc") == s.rc then rawset(_G, "rc", nil) end
      s.rc:close()
    end
  end
  pcall(magic.load_defaults)
  return s
end

-- Print what a chunk returned, like the Lua REPL does (strings as they
-- are, tables rendered with pretty).
local function print_values(r, from)
  if r.n < from then return end
  local parts = {}
  for k = from, r.n do
    local v = r[k]
    parts[#parts + 1] = type(v) == "string" and v or pretty(v)
  end
  io.stdout:write(table.concat(parts, "\t"), "\n")
end

-- Run one line of Lua in the client state: as an expression first (so its
-- value is printed), else as a statement. Returns false and the error
-- message when the line is an incomplete statement.
local function eval(code, chunkname)
  local f = load("return " .. code, chunkname)
  local err
  if not f then
    f, err = load(code, chunkname)
    if not f then
      if err:match("<eof>$") then return false, err end
      error(err, 0)
    end
  end
  print_values(table.pack(f()), 1)
  return true
end

-- Each -e: a magic, a Lua statement (run as `lua -e` runs it: a call's
-- values are not printed, so `-e 'io.write(x)'` writes x alone), or, as
-- in the shell, an expression that is no statement (`1+1`, `x`) or
-- `= EXPR`, whose values are printed. The first error (raised, or
-- reported by a magic: sh.failed) ends the run with status 1.
local function run_e(codes, opts)
  local s = session(opts)
  s.shell.eval = function(code) eval(code, "=(command line)") end
  local ok, err = pcall(function()
    for _, code in ipairs(codes) do
      if not magic.handle(code, s.shell) then
        local f, lerr = load(code, "=(command line)", "t", _G)
        if not f or code:match("^%s*=") then
          f, lerr = shell.compile(code, "=(command line)", _G)
        end
        if not f then
          if lerr == "incomplete" then _, lerr = load(code, "=(command line)", "t", _G) end
          error(lerr, 0)
        end
        print_values(table.pack(f()), 1)
      end
      if s.shell.failed then return false end
    end
    return true
  end)
  s.close()
  if not ok then return die(err) end
  return err and 0 or 1
end

local function run_file(argv, i, opts)
  local file = argv[i]
  if not file then usage_error("run needs a FILE (see plush run --help)") end
  local f, lerr = loadfile(file)
  if not f then
    io.stderr:write("plush: ", lerr, "\n")
    return 1
  end
  local args = {[0] = file}
  for k = i + 1, #argv do args[#args + 1] = argv[k] end
  local s = session(opts)
  rawset(_G, "arg", args)
  local r = table.pack(pcall(f, table.unpack(args, 1, #args)))
  s.close()
  if not r[1] then return die(r[2]) end
  if math.type(r[2]) == "integer" then return r[2] end
  if r[2] == false then return 1 end
  return 0
end

-- `plush`: the interactive shell (plush.shell). Starting an embedded
-- cluster takes a moment: say so first.
local function interactive(opts)
  local s = session(opts)
  for _, why in ipairs(magic.broken) do io.stderr:write("plush: ", why, "\n") end
  local ok, r = pcall(function()
    if core.isatty(1) and not opts["--threads"] then
      local profile = plush.cluster.profile(opts["--profile"])
      local info = plush.cluster.read(profile)
      if not (info and plush.cluster.running(info)) then
        io.stderr:write(("plush: no cluster '%s' is running; starting an embedded one"
          .. " (%d engines)...\n"):format(profile, core.ncpu()))
      end
    end
    return require("plush.shell").run(s.get_rc(), s.shell)
  end)
  s.close()
  if not ok then return die(r) end
  return math.type(r) == "integer" and r or 0
end

-------------------------------------------------------------------------------
-- plush cluster ...
-------------------------------------------------------------------------------

-- lua-cjson writes a table with integer keys that are not 1..n (engine ids
-- from 0) inconsistently; give it string keys.
local function jsonable(v)
  if type(v) ~= "table" then return v end
  local n, count = #v, 0
  for _ in pairs(v) do count = count + 1 end
  local out = {}
  if count == n then
    for i = 1, n do out[i] = jsonable(v[i]) end
    if n == 0 then return require("cjson").empty_array or out end
  else
    for k, x in pairs(v) do out[tostring(k)] = jsonable(x) end
  end
  return out
end

local function cluster_start(opts)
  local n
  if opts["--threads"] then
    if opts["-n"] then usage_error("--threads N replaces -n N: give one of them") end
    n = math.tointeger(tonumber(opts["--threads"]))
    if not n or n < 1 then usage_error("--threads needs a number of engines from 1") end
  elseif opts["-n"] then
    n = math.tointeger(tonumber(opts["-n"]))
    if not n or n < 0 then usage_error("-n needs a number of engines (0: the controller alone)") end
  end
  local timeout = opts["--timeout"] and tonumber(opts["--timeout"])
  local port = opts["--port"] and math.tointeger(tonumber(opts["--port"]))
  if opts["--port"] and not port then usage_error("--port needs a port number") end
  local info, conn = plush.cluster.start{
    n = n, profile = opts["--profile"], ip = opts["--ip"], port = port,
    mpi = opts["--mpi"], hosts = opts["--hosts"], timeout = timeout,
    slurm = opts["--slurm"], partition = opts["--partition"], time = opts["--time"],
    account = opts["--account"], memory_limit = opts["--memory-limit"],
    hwm = opts["--hwm"], stall_timeout = opts["--stall-timeout"],
    threads = opts["--threads"] and true or nil,
  }
  conn:close()
  if info.pending then
    io.stdout:write(("cluster '%s' started at %s:%s (pid %s); Slurm job %s is queued: "
      .. "its %s engines join when it runs (plush cluster status)\n"):format(
      info.profile, tostring(info.host), tostring(info.port), tostring(info.pid),
      tostring(info.job), tostring(info.n)))
    return 0
  end
  if n == 0 then
    -- not an empty cluster by mistake: the controller alone, said so
    io.stdout:write(("cluster '%s' started: the controller alone at %s:%s (pid %s), no engines;"
      .. " start them with plush-engine --file %s, or plush cluster add\n"):format(
      info.profile, tostring(info.host), tostring(info.port), tostring(info.pid),
      tostring(info.file or "the connection file")))
    return 0
  end
  io.stdout:write(("cluster '%s' started: %s engine%s at %s:%s (pid %s)%s\n"):format(
    info.profile, tostring(n or info.n or core.ncpu()),
    opts["--threads"] and " threads" or "s", tostring(info.host),
    tostring(info.port), tostring(info.pid),
    info.job and (" in Slurm job " .. tostring(info.job)) or ""))
  return 0
end

local function cluster_stop(opts)
  local profile = plush.cluster.profile(opts["--profile"])
  local ok, err = plush.cluster.stop{profile = profile}
  if not ok then error(err, 0) end
  io.stdout:write(("cluster '%s' stopped\n"):format(profile))
  return 0
end

local function cluster_status(opts)
  local st, err = plush.cluster.status{profile = opts["--profile"]}
  if not st then error(err, 0) end
  if opts["--json"] then
    io.stdout:write(require("cjson").encode(jsonable(st)), "\n")
    return 0
  end
  local s = st.status or {}
  local w = function(...) io.stdout:write(string.format(...), "\n") end
  w("cluster '%s' at %s (controller pid %s, up %s s)", st.profile, st.address,
    tostring(st.pid), tostring(s.uptime and math.floor(s.uptime) or "?"))
  w("file     %s", tostring(st.file))
  w("engines  %s   clients %s   pending %s   stored %s", tostring(s.engines or #st.engines),
    tostring(s.clients or "?"), tostring(s.pending or "?"), tostring(s.stored or "?"))
  local q = st.queues or {}
  local qe = q.engines or {}
  local list = st.engines or {}
  table.sort(list, function(a, b) return a.id < b.id end)
  for _, e in ipairs(list) do
    local eq = qe[e.id] or {}
    w("engine %-3s %-5s queue %-3s %s pid %s%s", tostring(e.id), tostring(e.state or "?"),
      tostring(eq.queue or e.queue or 0), tostring(e.host or "?"), tostring(e.pid or "?"),
      eq.running and (" running task " .. tostring(eq.running)) or "")
  end
  w("unassigned tasks %s", tostring(q.unassigned or 0))
  return 0
end

local function cluster_add(opts)
  local n = math.tointeger(tonumber(opts["-n"] or "1"))
  if not n or n < 1 then usage_error("-n needs a number of engines") end
  local rc = plush.connect{profile = opts["--profile"], embedded = false}
  local ids = rc:add(n)
  rc:close()
  table.sort(ids)
  local strs = {}
  for i, id in ipairs(ids) do strs[i] = tostring(id) end
  io.stdout:write(("added engines %s\n"):format(table.concat(strs, ", ")))
  return 0
end

-- The log of the profile's cluster (controller and the engines it
-- launched): the last -n lines (default 50).
local function cluster_logs(opts)
  local profile = plush.cluster.profile(opts["--profile"])
  local path = plush.cluster.dir() .. "/" .. profile .. ".log"
  local f = io.open(path)
  if not f then die(("no log for profile '%s' (%s)"):format(profile, path)) end
  local lines = {}
  for line in f:lines() do lines[#lines + 1] = line end
  f:close()
  local n = math.tointeger(tonumber(opts["-n"] or "50")) or 50
  for i = math.max(1, #lines - n + 1), #lines do io.stdout:write(lines[i], "\n") end
  return 0
end

local cluster_cmds = {
  start = {cluster_start, {["-n"] = "value", ["--ip"] = "value", ["--port"] = "value",
    ["--mpi"] = "flag", ["--hosts"] = "value", ["--timeout"] = "value",
    ["--slurm"] = "flag", ["--partition"] = "value", ["--time"] = "value",
    ["--account"] = "value", ["--memory-limit"] = "value", ["--hwm"] = "value",
    ["--stall-timeout"] = "value", ["--threads"] = "value"}},
  stop = {cluster_stop, {}},
  add = {cluster_add, {["-n"] = "value"}},
  logs = {cluster_logs, {["-n"] = "value"}},
  status = {cluster_status, {["--json"] = "flag"}},
}

-------------------------------------------------------------------------------

-------------------------------------------------------------------------------
-- plush results ...
-------------------------------------------------------------------------------

local status_names = {[0] = "ok", "error", "engine", "timeout", "badreq"}

-- A value as JSON can carry it: non-finite numbers, functions and the
-- like become their tostring; cycles are cut.
local function plain(v, seen)
  local t = type(v)
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return tostring(v) end
    return v
  elseif t == "string" or t == "boolean" then
    return v
  elseif t == "table" then
    seen = seen or {}
    if seen[v] then return "<cycle>" end
    seen[v] = true
    local out = {}
    for k, x in pairs(v) do
      out[type(k) == "string" and k or tostring(k)] = plain(x, seen)
    end
    seen[v] = nil
    return out
  elseif t == "nil" then
    return nil
  end
  return tostring(v)
end

local function results_rc(opts)
  return plush.connect{profile = opts["--profile"], embedded = false}
end

local function results_export(opts)
  local rc = results_rc(opts)
  local records = rc:_ask{op = "records"}
  rc:close()
  local out = {}
  for i, r in ipairs(records) do
    local e = {id = r.id, client = r.client, engine = r.engine,
      status = status_names[r.status] or tostring(r.status),
      submitted = r.submitted, started = r.started, completed = r.completed}
    local ok, v = pcall(core.decode, r.reply or "")
    if not ok then
      e.error = "undecodable: " .. tostring(v)
    elseif r.status == 0 and type(v) == "table" and type(v.r) == "table" then
      local vals = {}
      for k = 1, v.r.n or #v.r do vals[k] = plain(v.r[k]) end
      e.result = vals
      e.started = e.started or v.started
      e.completed = e.completed or v.completed
    elseif type(v) == "table" then
      e.error = {kind = v.kind, message = plain(v.message), traceback = v.traceback}
    end
    out[i] = e
  end
  local cjson = require "cjson"
  local text = cjson.encode(#out == 0 and cjson.empty_array or out)
  if opts["-o"] then
    local f, err = io.open(opts["-o"], "w")
    if not f then return die(err) end
    f:write(text, "\n")
    f:close()
  else
    io.stdout:write(text, "\n")
  end
  return 0
end

local function results_history(opts)
  local limit
  if opts["--limit"] then
    limit = math.tointeger(tonumber(opts["--limit"]))
    if not limit or limit < 0 then usage_error("--limit wants a count") end
  end
  local rc = results_rc(opts)
  for _, id in ipairs(rc:history(limit)) do io.stdout:write(tostring(id), "\n") end
  rc:close()
  return 0
end

local function results_show(opts, id)
  id = math.tointeger(tonumber(id or ""))
  if not id then usage_error("results show needs a task id") end
  local rc = results_rc(opts)
  local r = table.pack(pcall(rc.result, rc, id))
  rc:close()
  if not r[1] then
    io.stderr:write(tostring(r[2]), "\n")
    return 1
  end
  for k = 2, r.n do io.stdout:write(pretty(r[k]), "\n") end
  return 0
end

local function results_prune(opts)
  local keep = 0
  if opts["--keep"] then
    keep = math.tointeger(tonumber(opts["--keep"]))
    if not keep or keep < 0 then usage_error("--keep wants a count") end
  end
  local rc = results_rc(opts)
  local r = rc:_ask{op = "prune", keep = keep}
  rc:close()
  io.stdout:write(("%d results removed\n"):format(r.removed))
  return 0
end

-------------------------------------------------------------------------------
-- plush kernel ... (plush.kernel)
-------------------------------------------------------------------------------

local function kernel_cmd(argv, i, opts, wants)
  local spec = spec_with{["--user"] = "flag", ["--prefix"] = "value", ["--name"] = "value",
    ["--display-name"] = "value", ["--connection-file"] = "value", ["-f"] = "value"}
  i = parse(argv, i + 1, spec, opts)
  local sub = argv[i]
  if sub == "install" then i = parse(argv, i + 1, spec, opts) end
  local kernel = require "plush.kernel"
  help.kernel = kernel.help
  if wants("kernel") then return 0 end
  if argv[i] ~= nil then
    usage_error(("unexpected argument '%s' (see plush kernel --help)"):format(argv[i]))
  end
  if sub == "install" then
    if opts["--user"] and opts["--prefix"] then usage_error("--user or --prefix, not both") end
    local dir = kernel.install{user = opts["--user"], prefix = opts["--prefix"],
      name = opts["--name"], display_name = opts["--display-name"], profile = opts["--profile"],
      program = (os.getenv("PLUSH_BIN_DIR") or ".") .. "/plush"}
    io.stdout:write(("installed the kernelspec %s in %s\n"):format(opts["--name"] or "plush", dir))
    return 0
  end
  local file = opts["--connection-file"] or opts["-f"]
  if not file then
    usage_error("kernel needs --connection-file FILE, or install (see plush kernel --help)")
  end
  local s = session(opts)
  local ok, r = pcall(kernel.run, file, s)
  s.close()
  if not ok then return die(r) end
  return r
end

local function version()
  io.stdout:write(("plush %s (%s)\n"):format(plush.version, _VERSION))
  return 0
end

local function main(argv)
  local opts = {}
  local i = parse(argv, 1, spec_with{["-e"] = "list", ["--threads"] = "value"}, opts)
  local cmd = argv[i]
  if opts["--threads"] then -- plush [-e CODE | run FILE] --threads N
    local n = math.tointeger(tonumber(opts["--threads"]))
    if not n or n < 1 then usage_error("--threads needs a number of engines from 1") end
    if opts["--profile"] then usage_error("--threads does not go with --profile") end
  end
  local function wants(name)
    if opts["-h"] or opts["--help"] then
      io.stdout:write(help[name], "\n")
      return true
    end
    if opts["-V"] or opts["--version"] then
      version()
      return true
    end
  end
  if cmd == nil then
    if wants("main") then return 0 end
    if opts["-e"] then return run_e(opts["-e"], opts) end
    return interactive(opts)
  end
  if opts["-e"] then usage_error("-e does not go with a command") end
  if opts["--threads"] and cmd ~= "run" then
    usage_error("--threads goes with the shell, -e or run (plush cluster start --threads N)")
  end
  if cmd == "run" then
    i = parse(argv, i + 1, common, opts)
    if wants("run") then return 0 end
    return run_file(argv, i, opts)
  elseif cmd == "cluster" then
    i = parse(argv, i + 1, common, opts)
    local sub = argv[i]
    if sub == nil then
      if wants("cluster") then return 0 end
      usage_error("cluster needs start, stop, status, add or logs (see plush cluster --help)")
    end
    local c = cluster_cmds[sub]
    if not c then usage_error(("unknown cluster command '%s'"):format(sub)) end
    i = parse(argv, i + 1, spec_with(c[2]), opts)
    if wants("cluster") then return 0 end
    if argv[i] ~= nil then usage_error(("unexpected argument '%s'"):format(argv[i])) end
    return c[1](opts)
  end
  if cmd == "results" then
    local spec = spec_with{["--json"] = "flag", ["-o"] = "value", ["--limit"] = "value",
      ["--keep"] = "value"}
    i = parse(argv, i + 1, spec, opts)
    local sub, id = argv[i], nil
    if sub == "show" then
      id = argv[i + 1]
      -- `results show --help`: the option, not an id
      if id and id:match("^%-") then id = nil else i = i + 1 end
    end
    i = parse(argv, i + 1, spec, opts)
    if wants("results") then return 0 end
    if argv[i] ~= nil then usage_error(("unexpected argument '%s'"):format(argv[i])) end
    if sub == "export" then return results_export(opts)
    elseif sub == "history" then return results_history(opts)
    elseif sub == "show" then return results_show(opts, id)
    elseif sub == "prune" then return results_prune(opts)
    end
    usage_error("results needs history, show, export or prune (see plush results --help)")
  end
  if cmd == "kernel" then return kernel_cmd(argv, i, opts, wants) end
  if cmd == "dashboard" or cmd == "timeline" then
    -- plush.dashboard: the commands' options, help and work
    local dashboard = require "plush.dashboard"
    help[cmd] = dashboard.help[cmd]
    i = parse(argv, i + 1, spec_with(dashboard.options[cmd]), opts)
    if wants(cmd) then return 0 end
    if argv[i] ~= nil then usage_error(("unexpected argument '%s'"):format(argv[i])) end
    local r, usage = dashboard.main(cmd, opts)
    if usage then usage_error(usage) end
    return r
  end
  usage_error(("unknown command '%s' (see plush --help)"):format(cmd))
end

-- main(argv) -> exit status. argv is the C main's `arg` table.
function cli.main(argv)
  argv = argv or {}
  local ok, r = pcall(main, argv)
  if ok then return r or 0 end
  if getmetatable(r) == Usage then
    io.stderr:write("plush: ", r.message, "\n")
    return 2
  end
  return die(r)
end

return cli
