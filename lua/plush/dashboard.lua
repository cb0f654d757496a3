-- plush.dashboard: `plush dashboard` and `plush timeline`
-- (share/doc/dashboard.md).
--
-- `plush dashboard` is a client of the profile's controller like any
-- other: twice a second it asks for the finished tasks since the last time
-- (control op `feed`, core/ctl_feed.c), the engines, the status; it hears
-- engine deaths as events; it keeps the picture (plush.dash_state) and
-- writes it as one JSON line to plush-dashboard (dashboard/dashboard.c),
-- the web server it starts with its stdin as a pipe, which passes it to
-- every open page. So the browser, HTTP and WebSocket never touch the
-- controller, and either process dying leaves the cluster as it was.
--
-- `plush timeline` draws the stored tasks (control op `records`) with the
-- same drawing code (plush.taskstream).
local cjson = require "cjson"
local core = require "plush.core"
local errors = require "plush.errors"
local plush = require "plush"
local dash_state = require "plush.dash_state"
local taskstream = require "plush.taskstream"

local dashboard = {}

-- Seconds a lost controller is waited for before the dashboard gives up.
dashboard.LOST_WAIT = 30

dashboard.help = {
  dashboard = [[
usage: plush dashboard [--profile P | --file CONN.json] [--port N] [--bind ADDR] [--open]

Serves a live web dashboard of the profile's running cluster and prints its
URL, which carries a random token: without it (or with a wrong one) the
server answers 403. Views: engines, task stream, progress of farms,
throughput and latency, clients, logs; they update twice a second.
Runs until Ctrl-C; the cluster is not affected by its stopping.

  --file F      the cluster of connection file F rather than a profile's
  --port N      the port (default: any free one)
  --bind ADDR   listen on ADDR instead of 127.0.0.1 (0.0.0.0: every
                interface). The connection is plain HTTP, NOT encrypted:
                anyone who can see the traffic sees the token and the state
  --open        open the URL in a browser (xdg-open)]],
  timeline = [[
usage: plush timeline [--profile P] [--since T] [--svg FILE | --html FILE]

Draws the task stream of the result store -- each stored task a bar on its
engine's lane, failures in red -- as SVG (on stdout, or to FILE) or as an
HTML page whose red bars show their traceback when clicked.

  --since T   only tasks that finished in the last T (seconds, or 90s,
              5m, 2h), or after T when T is an epoch time]],
}

-------------------------------------------------------------------------------
-- Helpers
-------------------------------------------------------------------------------

local function find_file(rel, dirs)
  for _, d in ipairs(dirs) do
    local p = d .. "/" .. rel
    local f = io.open(p, "rb")
    if f then
      f:close()
      return p, d
    end
  end
end

-- plush-dashboard: next to plush or in the build tree, else on $PATH.
function dashboard.find_server()
  local dirs = {}
  for _, d in ipairs(core.bindirs() or {}) do dirs[#dirs + 1] = d end
  for d in (os.getenv("PATH") or ""):gmatch("[^:]+") do dirs[#dirs + 1] = d end
  local p = find_file("plush-dashboard", dirs)
  if not p then
    error("plush-dashboard is not installed (it is built when libwebsockets-dev is there)", 0)
  end
  return p
end

-- share/plush/dashboard: $PLUSH_DATA_DIR, the install, the source tree.
function dashboard.find_static()
  local dirs = {}
  local data = os.getenv("PLUSH_DATA_DIR")
  if data and data ~= "" then dirs[#dirs + 1] = data .. "/dashboard" end
  for _, d in ipairs(core.bindirs() or {}) do dirs[#dirs + 1] = d .. "/../share/plush/dashboard" end
  local src = package.searchpath("plush.dashboard", package.path)
  local root = src and src:match("^(.*)[/\\]lua[/\\]plush[/\\]dashboard%.lua$")
  if root then dirs[#dirs + 1] = root .. "/share/plush/dashboard" end
  local _, d = find_file("index.html", dirs)
  if not d then error("cannot find the dashboard's page (share/plush/dashboard/index.html)", 0) end
  return d
end

function dashboard.token()
  local f = assert(io.open("/dev/urandom", "rb"))
  local b = f:read(24)
  f:close()
  return (b:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- Memory and CPU of a local process from /proc: rss bytes, cpu seconds.
local ticks = 100
local pagesize = 4096
function dashboard.proc(pid)
  local f = io.open("/proc/" .. tostring(pid) .. "/stat")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  local rest = s:match("%) (.*)$")
  if not rest then return nil end
  local fields = {}
  for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
  -- after "(comm) ": state is 1, utime 12, stime 13, rss 22
  local ut, st, rss = tonumber(fields[12]), tonumber(fields[13]), tonumber(fields[22])
  if not (ut and st and rss) then return nil end
  return {cpu = (ut + st) / ticks, rss = rss * pagesize}
end

-- The last n lines of a file (reads at most its last 16 KiB).
local function tail(path, n)
  local f = io.open(path, "rb")
  if not f then return {} end
  local size = f:seek("end")
  f:seek("set", math.max(0, size - 16384))
  local text = f:read("a") or ""
  f:close()
  local lines = {}
  for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
  local out = {}
  for k = math.max(1, #lines - n + 1), #lines do out[#out + 1] = lines[k] end
  return out
end

-------------------------------------------------------------------------------
-- plush dashboard
-------------------------------------------------------------------------------

-- One round: what changed since the last, into st.
-- Returns the controller's clock (the tasks' times are on it).
local function poll(rc, st, log)
  local now
  repeat
    local a = rc:_ask{op = "feed", since = st.seq}
    now = a.now
    st:feed(a, now)
  until #(a.id or {}) < 4096 -- the most one call gives (core/ctl_feed.c)
  st:engines(rc:engines(), now)
  st.status = rc:status()
  for _, id in ipairs(st:take_detail_wanted(20)) do
    local ok, e = pcall(rc.result, rc, id)
    if not ok then
      st:error_detail(id, {message = errors.is_error(e) and tostring(e.message) or tostring(e),
        traceback = type(e) == "table" and e.traceback or nil,
        kind = type(e) == "table" and e.kind or nil})
    end
  end
  if log then st.logs = tail(log, 40) end
  return now
end

function dashboard.run(opts)
  local port = opts["--port"] or "0"
  if not (math.tointeger(tonumber(port)) and tonumber(port) >= 0 and tonumber(port) < 65536) then
    error({usage = "--port wants a port number (0-65535)"}, 0)
  end
  local bind = opts["--bind"] or "127.0.0.1"
  if not bind:match("^[%w%.:%-]+$") then error({usage = "--bind wants an address"}, 0) end
  local server = dashboard.find_server()
  local static = dashboard.find_static()
  local rc, profile, logpath
  if opts["--file"] then -- a connection file rather than a profile
    rc = plush.connect{file = opts["--file"]}
    profile = opts["--file"]
  else
    rc = plush.connect{profile = opts["--profile"], embedded = false}
    profile = plush.cluster.profile(opts["--profile"])
    logpath = plush.cluster.log_path(profile)
  end
  local host = core.hostname()
  -- memory and CPU: read from /proc for the engines on this host
  local st = dash_state.new{proc = function(pid, on)
    if on == host then return dashboard.proc(pid) end
  end}
  rc.on_event = function(ev)
    if ev.event == "engine_down" then st:engine_down(ev.id, ev.reason, core.time()) end
  end
  local token = dashboard.token()
  local cmd = ("exec env PLUSH_DASHBOARD_TOKEN=%s '%s' --dir '%s' --port %s --bind %s%s")
    :format(token, server:gsub("'", "'\\''"), static:gsub("'", "'\\''"), port, bind,
      opts["--open"] and " --open" or "")
  local pipe = assert(io.popen(cmd, "w"))
  pipe:setvbuf("full")
  local width = 1100
  local was = core.catch_sigint(true)
  -- A lost controller (killed, restarted): the page says so and the
  -- dashboard dials again each second (rc._redial re-reads the connection
  -- file); after LOST_WAIT seconds it gives up with the error.
  local lost_since
  local function lost(e)
    if errors.is(e, "Interrupted") or not (rc.lost and rc._redial) then error(e, 0) end
    lost_since = lost_since or core.now()
    if core.now() - lost_since > dashboard.LOST_WAIT then error(e, 0) end
    st.controller_lost = errors.is_error(e) and tostring(e.message) or tostring(e)
  end
  local ok, err = pcall(function()
    while true do
      local began = core.now()
      local rok, now = pcall(poll, rc, st, logpath)
      if rok then
        lost_since, st.controller_lost = nil, nil
      else
        lost(now)
        now = core.time()
      end
      local snap = st:snapshot(now, width)
      snap.profile = profile
      snap.host = host
      local cok, cid = pcall(rc.conn.cid, rc.conn)
      snap.self = cok and cid or nil -- its own client row says so
      snap.controller_lost = st.controller_lost
      local line = cjson.encode(snap)
      local wok = pipe:write(line, "\n")
      if not wok or not pipe:flush() then
        -- it said why on stderr (a port in use...)
        error("the dashboard's web server stopped", 0)
      end
      -- a round each half second (whatever the round took, at least a
      -- twentieth of one between two), hearing events (deaths) meanwhile;
      -- a second between tries while the controller is lost
      local until_ = math.max(began + (lost_since and 1 or 0.5), core.now() + 0.05)
      repeat
        if lost_since then
          core.sleep(math.max(0, until_ - core.now()))
        else
          local pok, e = pcall(rc.pump, rc, math.max(0, until_ - core.now()))
          if not pok then lost(e) end
        end
        if core.sigint() then error(errors.Interrupted{}, 0) end
      until core.now() >= until_
    end
  end)
  core.catch_sigint(was)
  pcall(pipe.close, pipe)
  rc:close()
  if not ok and not errors.is(err, "Interrupted") then error(err, 0) end
  return 0
end

-------------------------------------------------------------------------------
-- plush timeline
-------------------------------------------------------------------------------

-- --since: "300", "90s", "5m", "2h" ago, or an epoch time.
function dashboard.parse_since(s, now)
  local n, unit = s:match("^(%d+%.?%d*)([smh]?)$")
  n = tonumber(n)
  if not n then return nil end
  if unit == "" and n > 1e9 then return n end
  local mult = ({[""] = 1, s = 1, m = 60, h = 3600})[unit]
  return now - n * mult
end

local page_head = [[<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>plush timeline</title>
<style>body{font-family:sans-serif;margin:1em}
#detail{white-space:pre-wrap;font-family:monospace;background:#fff4f4;
border:1px solid #d62728;padding:.5em;display:none}
.task-error{cursor:pointer}</style></head><body>
<h1>plush timeline</h1>
]]

function dashboard.timeline(opts)
  if opts["--svg"] and opts["--html"] then error({usage = "--svg or --html, not both"}, 0) end
  local since
  if opts["--since"] then
    since = dashboard.parse_since(opts["--since"], core.time())
    if not since then
      error({usage = "--since wants seconds (300, 90s, 5m, 2h) or an epoch time"}, 0)
    end
  end
  local rc = plush.connect{profile = opts["--profile"], embedded = false}
  local records = rc:_ask{op = "records"}
  rc:close()
  local tasks, details = {}, {}
  for _, r in ipairs(records) do
    local t1 = r.completed
    local v
    if r.reply and (not t1 or r.status ~= 0) then
      local ok, x = pcall(core.decode, r.reply)
      if ok and type(x) == "table" then v = x end
    end
    t1 = t1 or (v and v.completed)
    local t0 = (r.started and r.started > 0 and r.started) or (v and v.started) or r.submitted or t1
    if t1 and (not since or t1 >= since) and r.engine then
      local t = {id = r.id, engine = r.engine, client = r.client, status = r.status,
        t0 = t0, t1 = t1}
      if r.status ~= 0 and v then
        t.message = tostring(v.message)
        details[tostring(r.id)] = {message = tostring(v.message), traceback = v.traceback}
      end
      tasks[#tasks + 1] = t
    end
  end
  local title = ("%d tasks"):format(#tasks)
  local text = taskstream.svg{tasks = tasks, width = 1100, title = title,
    inline = opts["--html"] ~= nil}
  local out, path = text, opts["--svg"]
  if opts["--html"] then
    path = opts["--html"]
    out = table.concat{page_head, text,
      '\n<pre id="detail"></pre>\n<script>\nconst details = ',
      cjson.encode(next(details) and details or cjson.empty_array), ';\n',
      [[document.querySelectorAll('.task-error').forEach(g => g.addEventListener('click', () => {
  const d = details[g.dataset.id] || {}, el = document.getElementById('detail');
  el.textContent = 'task ' + g.dataset.id + '\n' + (d.message || '') + '\n' + (d.traceback || '');
  el.style.display = 'block';
}));
</script></body></html>
]]}
  end
  if path then
    local f, err = io.open(path, "wb")
    if not f then error(err, 0) end
    f:write(out)
    f:close()
    io.stderr:write(("%s: %d tasks\n"):format(path, #tasks))
  else
    io.stdout:write(out)
  end
  return 0
end

-------------------------------------------------------------------------------
-- The command line (called from plush.cli)
-------------------------------------------------------------------------------

dashboard.options = {
  dashboard = {["--port"] = "value", ["--bind"] = "value", ["--open"] = "flag",
    ["--file"] = "value"},
  timeline = {["--since"] = "value", ["--svg"] = "value", ["--html"] = "value"},
}

-- Runs a parsed command; a {usage = msg} error is a usage mistake.
function dashboard.main(cmd, opts)
  local ok, r = pcall(cmd == "dashboard" and dashboard.run or dashboard.timeline, opts)
  if ok then return r end
  if type(r) == "table" and r.usage then return nil, r.usage end
  error(r, 0)
end

return dashboard
