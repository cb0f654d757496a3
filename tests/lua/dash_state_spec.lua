-- plush.dash_state and plush.taskstream: what the dashboard makes of the
-- controller's answers, with made-up feeds (no cluster): progress of a
-- batch, engines dying, errors, and the bound on what the page gets with
-- 256 engines and 100,000 tasks.
local cjson = require "cjson"
local dash_state = require "plush.dash_state"
local taskstream = require "plush.taskstream"

-- A feed answer: tasks {id, engine, status, t0, t1} of client cid.
local function answer(seq, tasks, clients, now)
  local a = {seq = seq, lost = 0, id = {}, engine = {}, status = {}, bytes = {},
    submitted = {}, started = {}, completed = {}, clients = clients or {}, running = {},
    now = now}
  for i, t in ipairs(tasks) do
    a.id[i], a.engine[i], a.status[i], a.bytes[i] = t[1], t[2], t[3], 10
    a.submitted[i], a.started[i], a.completed[i] = t[4] - 0.001, t[4], t[5]
  end
  return a
end

local C = 7 << 32 -- task ids of client 7

describe("dash_state", function()
  it("follows a batch to 100% and keeps it as finished", function()
    local st = dash_state.new{}
    local tasks = {}
    for i = 1, 40 do tasks[i] = {C + i, i % 2, 0, 100 + i * 0.01, 100 + i * 0.01 + 0.005} end
    st:feed(answer(40, tasks, {{id = 7, addr = "x", pending = 60}}, 101), 101)
    local s = st:snapshot(101)
    assert.are.equal(1, #s.progress)
    local p = s.progress[1]
    assert.are.same({7, 40, 100, 40, false}, {p.client, p.done, p.total, p.percent, p.finished})
    tasks = {}
    for i = 41, 100 do
      tasks[#tasks + 1] = {C + i, i % 2, i == 50 and 1 or 0, 100 + i * 0.01, 100 + i * 0.01 + 0.005}
    end
    -- nothing in flight for a moment while the client is still there: the
    -- same batch, until it has finished nothing for a second
    st:feed(answer(100, tasks, {{id = 7, addr = "x", pending = 0}}, 102), 101.5)
    s = st:snapshot(101.5)
    assert.are.same({100, 100, false}, {s.progress[1].done, s.progress[1].total,
      s.progress[1].finished})
    st:feed(answer(100, {}, {{id = 7, addr = "x", pending = 0}}, 102.5), 102.5)
    s = st:snapshot(102.5)
    p = s.progress[1]
    assert.are.same({7, 100, 100, 100, true, 1}, {p.client, p.done, p.total, p.percent,
      p.finished, p.failed})
    assert.are.equal(0, p.eta)
    assert.are.equal(100, s.stream.tasks)
    assert.are.equal(100, s.total)
    assert.are.equal(1, s.failed)
    assert.are.same({C + 50}, st:take_detail_wanted(20))
    assert.are.same({}, st:take_detail_wanted(20))
    -- a client that left ends its batch at once
    st:feed(answer(101, {{(8 << 32) + 1, 0, 0, 102, 102.1}}, {}, 102.6), 102.6)
    s = st:snapshot(102.6)
    assert.are.same({8, 1, true}, {s.progress[1].client, s.progress[1].done,
      s.progress[1].finished})
  end)

  it("greys an engine that died, with how, and one that vanished", function()
    local st = dash_state.new{}
    st:engines({{id = 0, pid = 10, host = "h", state = "idle", queue = 0},
      {id = 1, pid = 11, host = "h", state = "busy", queue = 2},
      {id = 2, pid = 12, host = "h", state = "idle", queue = 0}}, 50)
    st:engine_down(1, "connection closed by peer", 51)
    st:engines({{id = 0, pid = 10, host = "h", state = "idle", queue = 0}}, 52)
    local s = st:snapshot(53)
    assert.are.same({0, 1, 2}, {s.engines[1].id, s.engines[2].id, s.engines[3].id})
    assert.is_nil(s.engines[1].dead)
    assert.are.equal("idle", s.engines[1].state)
    assert.are.equal(3, s.engines[1].uptime)
    assert.are.equal("connection closed by peer", s.engines[2].dead)
    assert.are.equal("dead", s.engines[2].state)
    assert.are.equal(1, s.engines[2].uptime)
    assert.are.equal("left the cluster", s.engines[3].dead)
  end)

  it("says what each client runs, and where", function()
    local st = dash_state.new{}
    local a = answer(0, {}, {{id = 7, addr = "127.0.0.1:5", pending = 3}}, 20)
    a.running = {[0] = {id = C + 1, started = 19, label = "apply"},
      [3] = {id = C + 2, started = 19.5, label = "apply"},
      [1] = {id = C + 3, started = 19.9, label = "local x = 1"}}
    st:feed(a, 20)
    local s = st:snapshot(20)
    assert.are.same({id = 7, addr = "127.0.0.1:5", pending = 3, done = 0,
      running = "apply on engines 0, 3; local x = 1 on engine 1"}, s.clients[1])
    assert.are.equal(3, s.stream.running)
  end)

  it("shows a failure's message on its bar, as a red bar of its own", function()
    local st = dash_state.new{}
    st:feed(answer(2, {{C + 1, 0, 0, 10, 11}, {C + 2, 0, 1, 11, 11.5}}, {}, 12), 12)
    st:error_detail(C + 2, {message = "execute:1: boom", traceback = "stack traceback:\n..."})
    local s = st:snapshot(12)
    assert.are.equal("execute:1: boom", s.errors[tostring(C + 2)].message)
    assert.truthy(s.stream.svg:find('class="task-error" data-id="' .. (C + 2) .. '"', 1, true))
    assert.truthy(s.stream.svg:find("execute:1: boom", 1, true))
    assert.truthy(s.stream.svg:find('fill="#d62728"', 1, true))
  end)

  it("stays bounded with 256 engines and 100,000 tasks", function()
    local st = dash_state.new{}
    local list = {}
    for e = 0, 255 do
      list[#list + 1] = {id = e, pid = 1000 + e, host = "h", state = "busy", queue = 2}
    end
    st:engines(list, 1000)
    local seq = 0
    for batch = 0, 4 do
      local tasks = {}
      for i = 1, 20000 do
        local k = batch * 20000 + i
        local t0 = 1000 + k * 0.0005
        tasks[i] = {C + k, k % 256, k % 5000 == 0 and 1 or 0, t0, t0 + 0.1}
      end
      seq = seq + #tasks
      st:feed(answer(seq, tasks, {{id = 7, addr = "x", pending = 100000 - seq}}, 1051), 1051)
    end
    local s = st:snapshot(1051)
    assert.are.equal(100000, s.total)
    assert.are.equal(256, #s.engines)
    local text = cjson.encode(s)
    local rects = select(2, s.stream.svg:gsub("<rect", ""))
    -- one rectangle a pixel a lane at most, whatever the number of tasks
    assert.is_true(rects <= 256 * 1000 + 300, "rects: " .. rects)
    assert.is_true(#text < 4 * 1024 * 1024, "snapshot bytes: " .. #text)
    assert.are.equal(20, select(2, s.stream.svg:gsub('class="task%-error"', "")))
  end)
end)

describe("taskstream", function()
  it("merges a lane's bars closer than a pixel, and counts them", function()
    local tasks = {}
    for i = 1, 1000 do tasks[i] = {id = i, engine = 0, client = 1, status = 0,
      t0 = i * 0.001, t1 = i * 0.001 + 0.001} end
    local text, n = taskstream.svg{tasks = tasks, from = 0, to = 1.001, width = 200}
    assert.are.equal(1000, n)
    assert.are.equal(1, select(2, text:gsub("<title>1000 tasks</title>", "")))
  end)

  it("labels its axis in time before now with ago", function()
    local text = taskstream.svg{tasks = {}, from = 0, to = 60, width = 400, ago = true,
      lanes = {0}}
    assert.truthy(text:find(">now</text>", 1, true))
    assert.truthy(text:find(">-30 s</text>", 1, true))
  end)
end)
