-- End to end: view:bsp (share/doc/models.md, "BSP") on a real cluster
-- (PLUSH_TEST_FILE; at least 3 engines).
-- luacheck: read globals bsp_block
local plush, file = require("real_cluster")("e2e bsp")
if not plush then return end

describe("e2e bsp", function()
  local rc, ids, v, killed

  setup(function()
    rc = plush.connect{file = file, timeout = 20}
    local all = rc:ids()
    assert(#all >= 3, "the bsp specs need at least 3 engines")
    ids = {all[1], all[2], all[3]}
    v = rc:view(ids)
  end)
  teardown(function()
    -- an engine this spec killed is gone already; should the kill have
    -- been skipped by a failure, it is ended here, by its PID
    if killed then os.execute(("kill -KILL %d 2>/dev/null"):format(killed)) end
    rc:close()
  end)

  -- the engine posts {"bsp-at", id, step} to the default tuple space and
  -- blocks; waits (bounded) for that post
  local ts
  local function reached(id)
    ts = ts or plush.tuplespace(rc)
    local t = ts:take({"bsp-at", id, plush.ANY}):get(30)
    assert.is_table(t)
    return t[3]
  end

  it("runs supersteps: ctx fields, messages in sender order, state kept, halt values", function()
    local init = {count = 0, seen = {}}
    local r = v:bsp(function(ctx)
      local st = ctx.state
      st.count = st.count + 1
      st.seen[#st.seen + 1] = ctx.step
      if ctx.step == 1 then
        -- to every peer, last first, two messages each
        for i = #ctx.peers, 1, -1 do
          ctx:send(ctx.peers[i], ctx.id * 10 + 1)
          ctx:send(ctx.peers[i], ctx.id * 10 + 2)
        end
        return
      end
      local m, from = ctx:messages()
      if ctx.step == 2 then
        st.got, st.from = {table.unpack(m, 1, m.n)}, {table.unpack(from, 1, from.n)}
        st.peers = ctx.peers
        ctx:send(ctx.peers[1], ctx.id) -- nothing is read after the last superstep
        -- only the first engine votes: the run goes on
        if ctx.id == ctx.peers[1] then ctx:halt("early") end
        return
      end
      st.third = m.n
      ctx:halt({id = ctx.id, steps = st.seen, count = st.count, got = st.got,
        from = st.from, peers = st.peers, third = st.third})
    end, init)
    assert.same({count = 0, seen = {}}, init) -- the client's init is the engines' copy
    assert.equal(3, #r)
    local a, b, c = ids[1], ids[2], ids[3]
    for i, id in ipairs(ids) do
      -- the third superstep gets what the second sent: to the first engine
      assert.same({id = id, steps = {1, 2, 3}, count = 3, peers = ids, third = i == 1 and 3 or 0,
        got = {a * 10 + 1, a * 10 + 2, b * 10 + 1, b * 10 + 2, c * 10 + 1, c * 10 + 2},
        from = {a, a, b, b, c, c}}, r[i])
    end
    -- messages of the superstep where every engine halted are not read
    r = v:bsp(function(ctx)
      if ctx.step == 1 then ctx:send(ctx.peers[1], {ctx.id, 0.1, 1 << 62}) return end
      local m = ctx:messages()
      ctx:halt(m.n)
    end)
    assert.same({3, 0, 0}, r)
  end)

  it("returns a Deferred on a non-blocking view; a one-engine view gives an array", function()
    local d = v:async():bsp(function(ctx) ctx:halt(ctx.id * 2) end)
    assert.is_true(require("plush.deferred").is(d))
    assert.same({ids[1] * 2, ids[2] * 2, ids[3] * 2}, d:get(30))
    assert.same({ids[2]}, rc:view(ids[2]):bsp(function(ctx) ctx:halt(ctx.peers[1]) end))
  end)

  it("a prefix sum over the engines equals the serial one", function()
    local numbers = {}
    for i = 1, 1000 do numbers[i] = (i * 7919) % 1000 - 500 end
    v:scatter("bsp_block", numbers)
    local blocks = v:bsp(function(ctx)
      local st, p, me = ctx.state, #ctx.peers, 0
      for i, id in ipairs(ctx.peers) do if id == ctx.id then me = i end end
      if ctx.step == 1 then
        local s = 0
        for _, x in ipairs(bsp_block) do s = s + x end
        st.block, st.total = s, s
      else
        for _, m in ipairs(ctx:messages()) do st.total = st.total + m end
      end
      local d = 1 << (ctx.step - 1)
      if d < p then
        if me + d <= p then ctx:send(ctx.peers[me + d], st.total) end
      else
        local out, run = {}, st.total - st.block
        for i, x in ipairs(bsp_block) do run = run + x; out[i] = run end
        ctx:halt(out)
      end
    end, {})
    local got, serial, run = {}, {}, 0
    for _, b in ipairs(blocks) do table.move(b, 1, #b, #got + 1, got) end
    for i = 1, #numbers do run = run + numbers[i]; serial[i] = run end
    assert.same(serial, got)
  end)

  it("an error in step fails the call with the remote traceback; the engines serve on", function()
    local ok, e = pcall(v.bsp, v, function(ctx)
      ctx:send(ctx.peers[1], 1)
      if ctx.step == 2 and ctx.id == ctx.peers[2] then
        local t = nil
        return t.field -- line of the error
      end
    end)
    assert.is_false(ok)
    assert.is_true(plush.errors.is(e, "RemoteError"))
    assert.equal(ids[2], e.engine)
    assert.matches("attempt to index a nil value %(local 't'%) %(bsp superstep 2%)$", e.message)
    assert.matches("e2e_bsp_spec.lua:%d+: in function", e.traceback)
    assert.not_matches("spmd.lua", e.traceback)
    -- the aborted run left nothing behind: a plain recv finds no message
    -- of it, and the next run works
    assert.same({0, 0, 0}, v:apply(function()
      local n = 0
      while engine.recv(nil, nil, 0) ~= nil do n = n + 1 end
      return n
    end))
    assert.same({1, 1, 1}, v:bsp(function(ctx) ctx:halt(ctx.step) end))
  end)

  it("refuses bad input with one line, sending nothing", function()
    local ok, e = pcall(v.bsp, v, 5)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'bsp' %(function expected, got number%)", e)
    local lb = rc:balanced()
    e = select(2, pcall(lb.bsp, lb, function() end))
    assert.matches("bsp: needs a DirectView %(rc:view%(ids%)%), not a balanced view", e)
    local twice = rc:view{ids[1], ids[1]}
    e = select(2, pcall(twice.bsp, twice, function() end))
    assert.matches("bsp: engine " .. ids[1] .. " is twice in the view", e, 1, true)
    ok, e = pcall(v.bsp, v, function() end, {co = coroutine.create(print)})
    assert.is_false(ok)
    assert.matches("cannot serialise .*co: thread", tostring(e))
    ok, e = pcall(v.bsp, v, function(ctx) ctx:send(4000000, 1) end)
    assert.is_false(ok)
    assert.matches("ctx:send: engine 4000000 is not in this bsp's view (bsp superstep 1)",
      e.message, 1, true)
  end)

  it("an engine killed mid-superstep fails the call with EngineError naming it", function()
    local victim = rc:add(1, 60)[1]
    killed = rc[victim]:execute("return engine.pid")
    local d = rc:view{ids[1], victim, ids[2]}:async():bsp(function(ctx)
      for _, p in ipairs(ctx.peers) do ctx:send(p, ctx.step) end
      if ctx.step == 3 and ctx.id == ctx.state then
        engine.tuplespace():out{"bsp-at", ctx.id, ctx.step}
        engine.recv(nil, "never")
      end
    end, victim)
    assert.equal(3, reached(victim))
    assert.is_true(os.execute(("kill -KILL %d"):format(killed)))
    local ok, e = pcall(d.get, d, 60)
    assert.is_false(ok)
    assert.is_true(plush.errors.is(e, "EngineError"))
    assert.equal(victim, e.engine)
    assert.equal(("bsp: engine %d died or left during the run"):format(victim), e.message)
    -- the others serve on
    assert.same({1, 1}, rc:view{ids[1], ids[2]}:bsp(function(ctx) ctx:halt(ctx.step) end))
  end)

  it("an interrupt ends a run blocked in a superstep; the engines serve on", function()
    local d = v:async():bsp(function(ctx)
      if ctx.step == 2 and ctx.id == ctx.peers[3] then
        engine.tuplespace():out{"bsp-at", ctx.id, ctx.step}
        engine.recv(nil, "never")
      end
    end)
    assert.equal(2, reached(ids[3]))
    rc:interrupt(ids[3])
    local ok, e = pcall(d.get, d, 60)
    assert.is_false(ok)
    assert.equal(ids[3], e.engine)
    assert.matches("interrupted", e.message)
    assert.same({2, 2, 2}, v:bsp(function(ctx) if ctx.step == 2 then ctx:halt(2) end end))
  end)
end)
