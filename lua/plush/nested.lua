-- plush.nested: engine.client() -- on an engine, a client on the engine's
-- own cluster, so that tasks submit tasks (share/doc/models.md,
-- "Hierarchies").
--
-- The client is an ordinary plush.client on a connection of its own,
-- made with the engine's own controller address and key (on an engine
-- that is a thread, over a new socketpair its host links to the
-- controller; its Ctrl-C is not this client's). What differs is
-- how its Deferreds wait: a task that waits (d:get(), d:wait(),
-- wait_all, ...) parks -- its coroutine yields to the engine's loop
-- (engines/engine_co.c), which runs other tasks meanwhile -- and is
-- resumed when its Deferred fired (or its timeout passed). The engine's
-- loop drives this client's connection through `poll`, `waitfor` and
-- `close` below. Where the wait cannot yield (inside a C call, a map op,
-- a coroutine of the user's) it blocks on the connection as a client's
-- wait does.
local client = require "plush.client"
local core = require "plush.core"

local nested = {}

local reg = debug.getregistry()
local park = reg["plush.co.park"]

local rc            -- the engine's client, made once per namespace
local waiting = {}  -- task id -> {d = Deferred or false, deadline = t or false}
local ready = {}    -- ids whose wait is over, for the next poll
local nany, ntimed = 0, 0 -- waits on any event / with a deadline

local function unwait(id)
  local w = waiting[id]
  if not w then return end
  waiting[id] = nil
  if not w.d then nany = nany - 1 end
  if w.deadline then ntimed = ntimed - 1 end
end

-- The pump of this client's Deferreds: (timeout, the Deferred that waits
-- or nil for "any event").
local SLICE = 0.05

-- A wait that fails (the task was interrupted) gives up d's request when
-- it can: a tuple-space take left waiting would take a tuple nobody sees.
local function pump(timeout, d)
  local id = park(false)
  if not id then
    -- a wait that cannot park blocks, in slices: between them the
    -- interrupt hook gets its Lua instruction (a wait loops on pump)
    local ok, n = pcall(rc.pump, rc, (timeout and timeout < SLICE) and timeout or SLICE)
    if not ok then
      if d then rc:_cancel(d) end
      error(n, 0)
    end
    return n
  end
  local w = {d = d or false, deadline = timeout and core.now() + timeout}
  waiting[id] = w
  if not d then nany = nany + 1 end
  if w.deadline then ntimed = ntimed + 1 end
  if d then
    d:_observe(function()
      if waiting[id] == w then ready[#ready + 1] = id end
    end)
  end
  local ok, err = pcall(park, true)
  unwait(id)
  if not ok then
    if d then rc:_cancel(d) end
    error(err, 0)
  end
end

-- Called by the engine's loop: one turn of the connection's loop, no
-- waiting; the ids of the parked tasks to resume.
local function poll()
  local evs = rc.conn:poll(0)
  local any = false
  for _, ev in ipairs(evs) do
    if ev.kind ~= "readable" and ev.kind ~= "sigint" then
      any = true
      rc:_dispatch(ev)
    end
  end
  local out = ready
  ready = {}
  if (any and nany > 0) or ntimed > 0 then
    local now = core.now()
    for id, w in pairs(waiting) do
      if (any and not w.d) or (w.deadline and w.deadline <= now) then
        out[#out + 1] = id
      end
    end
  end
  return out
end

-- Called by the engine's loop before it waits: the connection's fd to
-- wait on (-1: none) and the ms until the nearest deadline (-1: none).
local function waitfor()
  local fd, ms = rc.conn:waitfd()
  if ntimed > 0 then
    local now = core.now()
    for _, w in pairs(waiting) do
      if w.deadline then
        local left = math.ceil(math.max(w.deadline - now, 0) * 1000)
        if ms < 0 or left < ms then ms = left end
      end
    end
  end
  return fd, ms
end

-- Called when an embedder's state is given back: the connection goes.
-- The Deferreds still pending stay so, silently: the tasks that waited
-- on them have ended with the engine.
local function close()
  if rc then
    rc.closed = true
    pcall(rc.conn.close, rc.conn)
  end
  rc = nil
end

-- engine.client() -> the client (the same one for every task of this
-- namespace; a new one after its connection was lost).
function nested.client()
  if rc and not rc.closed and not rc.lost then return rc end
  -- host, port: the engine's controller; or an fd, nil (an engine thread)
  local ok, host, port, key, encrypt = pcall(reg["plush.co.link"])
  if not ok then error(host, 2) end
  local conn, err = core.connect(host, port, key, 10, encrypt)
  if not conn then error("engine.client(): " .. tostring(err), 2) end
  -- a Ctrl-C is for the client of this process, not this one's
  conn:nosigint()
  rc = client.new(conn, {output = false, catch_sigint = false})
  rc._pump = pump
  reg["plush.co.setpoll"](poll, waitfor, close)
  return rc
end

return nested
