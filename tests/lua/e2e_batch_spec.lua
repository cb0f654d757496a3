-- End to end: a client's single small requests leave several per write
-- (shell/lua_batch.c). A request that waits in a batch goes out by
-- itself soon while the program computes without polling; order is kept
-- across batched requests, requests to many engines, big requests and
-- control requests. Runs against the cluster of PLUSH_TEST_FILE
-- (real_cluster.lua), skipped otherwise.
local plush, file = require("real_cluster")("e2e batch")
-- luacheck: globals seen batch_count
if not plush then return end

-- computes for s seconds without a call into the client
local function busy(s)
  local t = plush.now()
  while plush.now() - t < s do end
end

describe("e2e batch", function()
  local rc

  setup(function() rc = plush.connect{file = file, timeout = 20} end)
  teardown(function() rc:close() end)

  it("a lone request leaves while the client computes without polling", function()
    local lb = rc:balanced():async()
    assert.equal(1, lb:apply(function() return 1 end):get()) -- warm
    for _ = 1, 3 do
      local d = lb:apply(function() return true end)
      busy(2.0) -- no poll: only the flusher can send it
      assert.is_true(d:get())
      local md = d.metadata
      -- within the flusher's bound (200 µs), give or take a loaded
      -- machine's scheduling (a second of room); without it, after the
      -- two seconds of busy()
      assert.is_true(md.started - md.submitted < 1.0,
        ("started %.3f s after submitted"):format(md.started - md.submitted))
    end
  end)

  it("so does the last of a burst, and every one before it", function()
    local lb = rc:balanced():async()
    local ds = {}
    for i = 1, 45 do ds[i] = lb:apply(function(x) return x end, i) end -- 32 + 13
    busy(2.0)
    for i = 1, 45 do
      assert.equal(i, ds[i]:get())
      local md = ds[i].metadata
      assert.is_true(md.started - md.submitted < 1.0)
    end
  end)

  it("what the socket would not take leaves before submit returns", function()
    -- the controller stops reading for a moment (SIGSTOP, as a loaded
    -- machine would deschedule it) while a loop submits: the requests
    -- the socket refuses wait in libuv's queue, which only the client's
    -- own loop sends on. submit waits for them, so once the loop is
    -- over every request reaches the engines while the client computes
    -- without polling (before, ~50k of 10^5 did, the rest at the next
    -- poll; and the loop grew the queue without bound)
    local watcher = plush.connect{file = file, timeout = 20}
    local pid = math.tointeger(watcher:status().pid)
    local ids = watcher:ids()
    watcher:view(ids):execute("batch_count = 0")
    local lb = rc:balanced():async()
    local count = function() batch_count = batch_count + 1 end
    local n = 100000
    local ok, err = pcall(function()
      -- the controller is woken by a process of its own: submit waits
      assert(os.execute(("kill -STOP %d; (sleep 0.5; kill -CONT %d) &"):format(pid, pid)))
      for _ = 1, n do lb:apply(count) end
      local got, deadline = 0, plush.now() + 60
      while got < n and plush.now() < deadline do
        busy(0.2) -- no poll of rc: only the watcher's loop runs
        got = 0
        for _, c in ipairs(watcher:view(ids):execute("return batch_count")) do
          got = got + c
        end
      end
      assert.equal(n, got)
    end)
    os.execute(("kill -CONT %d"):format(pid)) -- never left stopped
    rc:wait()
    watcher:close()
    assert(ok, err)
  end)

  it("keeps order across batched, many-engine, big and control requests", function()
    local ids = rc:ids()
    local id = ids[1]
    local e = rc[id]
    e:execute("seen = {}")
    local one = e:async()
    local all = rc:view(ids):async()
    local note = function(i) seen[#seen + 1] = i end
    local ds = {}
    for i = 1, 300 do
      if i % 50 == 0 then -- a control request in between
        assert.equal(#ids, #rc:ids())
      end
      if i % 11 == 0 then     -- to every engine, one writev
        local fan = all:apply(function(k)
          if seen then seen[#seen + 1] = k end
        end, i)
        ds[#ds + 1] = fan
      elseif i % 13 == 0 then -- big: not batched, what waits goes first
        ds[#ds + 1] = one:apply(function(k, pad) seen[#seen + 1] = k; return #pad end,
          i, string.rep("x", 100000))
      else
        ds[#ds + 1] = one:apply(note, i)
      end
    end
    for _, d in ipairs(ds) do d:get() end
    local got = e:execute("return seen")
    assert.equal(300, #got)
    for i = 1, 300 do assert.equal(i, got[i]) end
  end)

  it("a request the client closes on still reaches its engine", function()
    local rc2 = plush.connect{file = file, timeout = 20}
    local id = rc2:ids()[1]
    local tag = ("batch-close-%d"):format(math.random(1 << 30))
    -- detached: it runs on once its client has left (farms.md)
    local d = rc2:view(id, {detached = true, block = false})
      :execute(("closed_with = %q"):format(tag))
    local t = plush.now()
    rc2:close() -- sends what waits; a live controller takes it at once
    -- (what a flusher sent and the client did not take off would hold
    -- it for the whole 5 s grace)
    assert.is_true(plush.now() - t < 4, "close waited for its own batch")
    assert.equal("the client was closed", select(2, pcall(d.get, d)).message)
    local got
    local deadline = plush.now() + 20
    repeat
      got = rc[id]:execute("return closed_with")
    until got == tag or plush.now() > deadline
    assert.equal(tag, got)
  end)
end)
