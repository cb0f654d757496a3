-- plush.dash_state: what the dashboard shows, kept by `plush dashboard`
-- (plush.dashboard) from what it reads of the controller, and turned into
-- one JSON-ready table a second for the page. The aggregation is here, on
-- the dashboard's side: the page gets pictures and summaries, never every
-- task, so 256 engines and 100,000 tasks stay as light for it as 2 and 10.
--
--   local st = dash_state.new{window = 60, keep = 100000}
--   st:feed(answer_of_the_feed_op)          -- finished tasks, clients, running
--   st:engines(answer_of_the_engines_op, now)
--   st:engine_down(id, reason, now)         -- from the engine_down event
--   st:error_detail(id, {message =, traceback =})
--   st:snapshot(now) -> table (cjson-encodable)
local taskstream = require "plush.taskstream"

local dash_state = {}
local State = {}
State.__index = State

function dash_state.new(opts)
  opts = opts or {}
  return setmetatable({
    window = opts.window or 60,       -- seconds of task stream shown
    keep = opts.keep or 100000,       -- finished tasks kept for it
    tasks = {}, first = 1, last = 0,  -- a queue of finished tasks
    total = 0, failed = 0, lost = 0,
    seq = 0,
    known = {},                       -- engine id -> row
    running = {},
    clients = {},
    runs = {},                        -- client id -> progress of its batch
    done_runs = {},                   -- finished batches, newest last
    buckets = {},                     -- second -> {n, bytes, lat}
    errors = {},                      -- task id -> {message, traceback}
    error_order = {},
    want_detail = {},                 -- failed task ids to look up
    logs = {},
    status = {},
    proc = opts.proc,                 -- function(pid, host) -> {rss, cpu} or nil
  }, State)
end

-------------------------------------------------------------------------------
-- Input
-------------------------------------------------------------------------------

local function run_for(self, cid, now)
  local r = self.runs[cid]
  if not r then
    r = {client = cid, started = now, done = 0, failed = 0, pending = 0}
    self.runs[cid] = r
  end
  return r
end

-- The answer of control op `feed`.
function State:feed(a, now)
  self.seq = a.seq or self.seq
  self.lost = self.lost + (a.lost or 0)
  local ids = a.id or {}
  for i = 1, #ids do
    local t0 = a.started[i]
    if not t0 or t0 <= 0 then t0 = a.submitted[i] end
    if not t0 or t0 <= 0 then t0 = a.completed[i] end
    local t = {id = ids[i], engine = a.engine[i], client = ids[i] >> 32,
      status = a.status[i], t0 = t0, t1 = a.completed[i], bytes = a.bytes[i],
      submitted = a.submitted[i]}
    self.last = self.last + 1
    self.tasks[self.last] = t
    self.total = self.total + 1
    if t.status ~= 0 then
      self.failed = self.failed + 1
      if #self.want_detail < 50 then self.want_detail[#self.want_detail + 1] = t.id end
    end
    local r = run_for(self, t.client, t.submitted and t.submitted > 0 and t.submitted or t.t0)
    r.done = r.done + 1
    if t.status ~= 0 then r.failed = r.failed + 1 end
    r.last = t.t1
    local sec = math.floor(t.t1)
    local b = self.buckets[sec]
    if not b then b = {n = 0, bytes = 0, lat = 0} self.buckets[sec] = b end
    b.n = b.n + 1
    b.bytes = b.bytes + (t.bytes or 0)
    if t.submitted and t.submitted > 0 then b.lat = b.lat + (t.t1 - t.submitted) end
  end
  while self.last - self.first + 1 > self.keep do
    self.tasks[self.first] = nil
    self.first = self.first + 1
  end
  -- clients and their batches: a batch ends when nothing of it is
  -- pending and its client has left or finished nothing for a second (a
  -- client still submitting may have nothing in flight for a moment)
  self.clients = {}
  local connected = {}
  for _, c in ipairs(a.clients or {}) do
    self.clients[#self.clients + 1] = c
    connected[c.id] = c
    if c.pending > 0 then run_for(self, c.id, now).pending = c.pending end
  end
  for cid, r in pairs(self.runs) do
    local c = connected[cid]
    local pending = c and c.pending or 0
    r.pending = pending
    if pending == 0 and (not c or now - (r.last or r.started) >= 1) then
      r.finished = r.last or now
      self.done_runs[#self.done_runs + 1] = r
      if #self.done_runs > 10 then table.remove(self.done_runs, 1) end
      self.runs[cid] = nil
    end
  end
  self.running = a.running or {}
  for sec in pairs(self.buckets) do
    if sec < now - 600 then self.buckets[sec] = nil end
  end
end

-- The answer of control op `engines`: the live ones; an engine known
-- before and missing now has left (its reason from engine_down, if any).
function State:engines(list, now)
  local live = {}
  for _, e in ipairs(list) do
    live[e.id] = true
    local row = self.known[e.id]
    if not row or row.dead then
      row = {id = e.id, since = now}
      self.known[e.id] = row
    end
    row.pid, row.host, row.state, row.queue = e.pid, e.host, e.state, e.queue
    row.running = e.running
  end
  for id, row in pairs(self.known) do
    if not live[id] and not row.dead then
      row.dead = "left the cluster"
      row.died = now
    end
  end
end

function State:engine_down(id, reason, now)
  local row = self.known[id]
  if not row then
    row = {id = id, since = now}
    self.known[id] = row
  end
  row.dead = reason or "left the cluster"
  row.died = row.died or now
  row.state = "dead"
end

function State:error_detail(id, e)
  if not self.errors[id] then
    self.error_order[#self.error_order + 1] = id
    if #self.error_order > 200 then
      self.errors[table.remove(self.error_order, 1)] = nil
    end
  end
  self.errors[id] = e
end

-- Failed tasks whose message to look up (at most n), taken.
function State:take_detail_wanted(n)
  local out = {}
  while #out < n and #self.want_detail > 0 do
    out[#out + 1] = table.remove(self.want_detail, 1)
  end
  return out
end

-------------------------------------------------------------------------------
-- Output
-------------------------------------------------------------------------------

local function rate_of(r, now)
  local span = (r.last or now) - r.started
  if span <= 0 or r.done == 0 then return nil end
  return r.done / span
end

local function progress_row(r, now)
  local total = r.done + r.pending
  local rate = rate_of(r, now)
  return {client = r.client, done = r.done, failed = r.failed, total = total,
    percent = total > 0 and math.floor(100 * r.done / total) or 100,
    rate = rate, eta = rate and r.pending > 0 and r.pending / rate or (r.pending == 0 and 0 or nil),
    finished = r.finished ~= nil, elapsed = (r.finished or now) - r.started}
end

function State:snapshot(now, width)
  local snap = {now = now, status = self.status, total = self.total,
    failed = self.failed, lost = self.lost}
  -- engines: live first by id, then the dead, newest death first
  local rows, lanes, dead = {}, {}, {}
  for _, row in pairs(self.known) do rows[#rows + 1] = row end
  table.sort(rows, function(a, b)
    if (a.dead ~= nil) ~= (b.dead ~= nil) then return a.dead == nil end
    return a.id < b.id
  end)
  snap.engines = {}
  for _, row in ipairs(rows) do
    local run = self.running[row.id]
    local r = {id = row.id, pid = row.pid, host = row.host,
      state = row.dead and "dead" or row.state, queue = row.queue or 0,
      uptime = (row.died or now) - row.since, dead = row.dead,
      task = run and run.label, task_id = run and run.id,
      task_for = run and run.started and now - run.started}
    if not row.dead and self.proc and row.pid then
      local p = self.proc(row.pid, row.host)
      if p then r.rss, r.cpu = p.rss, p.cpu end
    end
    snap.engines[#snap.engines + 1] = r
    lanes[#lanes + 1] = row.id
    if row.dead then dead[row.id] = true end
  end
  -- the task stream: the last `window` seconds that saw tasks
  local to = now
  local last = self.tasks[self.last]
  if last and last.t1 < now - self.window then to = last.t1 + 1 end
  local from = to - self.window
  local shown = {}
  -- the window starts at its first task when that is later (a farm that
  -- began 2 s ago fills the picture rather than its last thirtieth)
  local earliest
  for k = self.last, self.first, -1 do
    local t = self.tasks[k]
    if t.t1 < from - 600 then break end -- finished long before the window
    if t.t1 >= from then
      local e = self.errors[t.id]
      if e then t.message = e.message end
      shown[#shown + 1] = t
      earliest = math.min(earliest or t.t0, t.t0)
    end
  end
  for id, run in pairs(self.running) do
    shown[#shown + 1] = {id = run.id, engine = id, client = run.id >> 32, status = 0,
      t0 = run.started, t1 = now, label = run.label}
    earliest = math.min(earliest or run.started, run.started)
  end
  if earliest and earliest > from then
    from = math.max(from, earliest - math.max((to - earliest) * 0.05, 0.01))
  end
  local text, drawn = taskstream.svg{tasks = shown, from = from, to = to, width = width or 1000,
    lanes = lanes, dead = dead, inline = true, ago = true,
    title = ("the last %s"):format(taskstream.fmt_secs(to - from))}
  local nrun = 0
  for _ in pairs(self.running) do nrun = nrun + 1 end
  snap.stream = {svg = text, tasks = drawn - nrun, running = nrun, from = from, to = to}
  snap.errors = {}
  for _, id in ipairs(self.error_order) do
    snap.errors[tostring(id)] = self.errors[id]
  end
  -- progress: running batches, then the last finished
  snap.progress = {}
  for _, r in pairs(self.runs) do snap.progress[#snap.progress + 1] = progress_row(r, now) end
  table.sort(snap.progress, function(a, b) return a.client < b.client end)
  for k = #self.done_runs, 1, -1 do
    snap.progress[#snap.progress + 1] = progress_row(self.done_runs[k], now)
  end
  -- throughput and latency over the last 5 minutes, by second
  local tp, bp, lp = {}, {}, {}
  local n10, b10, l10, c10 = 0, 0, 0, 0
  local nowsec = math.floor(now)
  for sec = nowsec - 300, nowsec do
    local b = self.buckets[sec]
    tp[#tp + 1] = {sec, b and b.n or 0}
    bp[#bp + 1] = {sec, b and b.bytes or 0}
    if b and b.n > 0 then lp[#lp + 1] = {sec, b.lat / b.n} end
    if sec > nowsec - 10 and b then
      n10, b10, l10, c10 = n10 + b.n, b10 + b.bytes, l10 + b.lat, c10 + b.n
    end
  end
  snap.rates = {tasks = n10 / 10, bytes = b10 / 10, latency = c10 > 0 and l10 / c10 or nil}
  snap.charts = {
    tasks = taskstream.line_chart{points = tp, from = nowsec - 300, to = nowsec,
      title = "tasks / s"},
    bytes = taskstream.line_chart{points = bp, from = nowsec - 300, to = nowsec,
      title = "reply bytes / s", color = "#59a14f"},
    latency = taskstream.line_chart{points = lp, from = nowsec - 300, to = nowsec,
      title = "latency (submitted to done), s", color = "#e15759"},
  }
  -- clients: what each runs now ("apply on engines 0, 3")
  local runs_of = {}
  for eid, run in pairs(self.running) do
    local cid = run.id >> 32
    local by = runs_of[cid] or {}
    runs_of[cid] = by
    local label = run.label or "task"
    by[label] = by[label] or {}
    table.insert(by[label], eid)
  end
  snap.clients = {}
  for _, c in ipairs(self.clients) do
    local r = self.runs[c.id]
    local what = {}
    for label, engines in pairs(runs_of[c.id] or {}) do
      table.sort(engines)
      local ids = {}
      for k = 1, math.min(#engines, 8) do ids[k] = tostring(engines[k]) end
      what[#what + 1] = ("%s on engine%s %s%s"):format(label, #engines > 1 and "s" or "",
        table.concat(ids, ", "), #engines > 8 and (" and %d more"):format(#engines - 8) or "")
    end
    table.sort(what)
    snap.clients[#snap.clients + 1] = {id = c.id, addr = c.addr, pending = c.pending,
      done = r and r.done or 0, running = table.concat(what, "; ")}
  end
  snap.logs = self.logs
  return snap
end

return dash_state
