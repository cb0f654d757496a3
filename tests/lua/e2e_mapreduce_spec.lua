-- End to end: view:mapreduce (share/doc/models.md, "MapReduce") on a real
-- cluster (PLUSH_TEST_FILE; at least 3 engines).
local plush, file = require("real_cluster")("e2e mapreduce")
if not plush then return end

describe("e2e mapreduce", function()
  local rc, ids, v

  setup(function()
    rc = plush.connect{file = file, timeout = 20}
    local all = rc:ids()
    assert(#all >= 3, "the mapreduce specs need at least 3 engines")
    ids = {all[1], all[2], all[3]}
    v = rc:view(ids)
  end)
  local killed = {}
  teardown(function()
    -- an engine this spec killed is gone already; should the kill have
    -- been skipped by a failure, it is ended here, by its PID
    for _, pid in ipairs(killed) do os.execute(("kill -KILL %d 2>/dev/null"):format(pid)) end
    rc:close()
  end)

  local function words(s, emit)
    for w in s:gmatch("%a+") do emit(w, 1) end
  end
  local function sum(_, xs)
    local n = 0
    for _, x in ipairs(xs) do n = n + x end
    return n
  end
  -- no message of a run is left in any mailbox
  local function mailboxes_empty()
    assert.same({0, 0, 0}, v:apply(function()
      local n = 0
      while engine.recv(nil, nil, 0) ~= nil do n = n + 1 end
      return n
    end))
  end

  -- the map of input item 3 ("x", on the second engine) raised: its
  -- remote traceback and the item come back, no message is left behind
  local function item3_failed(ok, e)
    assert.is_false(ok)
    assert.is_true(plush.errors.is(e, "RemoteError"))
    assert.equal(ids[2], e.engine)
    assert.equal("x", e.item)
    assert.matches("attempt to %w+ a 'string' with a 'number' "
      .. "%(mapreduce map of input item 3 %(\"x\"%)%)$", e.message)
    assert.matches("e2e_mapreduce_spec.lua:%d+: in function", e.traceback)
    mailboxes_empty()
  end

  it("counts words of a sequence, with and without combine, any partitions", function()
    local input = {"a b c", "b c", "c", "a a", "", "d"}
    local want = {a = 3, b = 2, c = 3, d = 1}
    assert.same(want, v:mapreduce{input = input, map = words, reduce = sum})
    assert.same(want, v:mapreduce{input = input, map = words, reduce = sum, combine = sum})
    for _, p in ipairs{1, 2, 5, 64} do
      assert.same(want, v:mapreduce{input = input, map = words, reduce = sum, partitions = p})
    end
    assert.same({}, v:mapreduce{input = {}, map = words, reduce = sum})
    -- keys of every kind; values that are tables; an async view
    local d = v:async():mapreduce{input = {1, 2, 3, 4, 5, 6, 7.5},
      map = function(x, emit)
        emit(x % 2 == 0, x)
        emit(math.type(x), {x})
        emit(x * 1.0, x)
      end,
      reduce = function(_, xs) return #xs end}
    assert.is_true(require("plush.deferred").is(d))
    local r = d:get(60)
    assert.equal(4, r[false]) -- 1, 3, 5, 7.5
    assert.equal(3, r[true])
    assert.equal(6, r.integer)
    assert.equal(1, r.float)
    assert.equal(1, r[2]) -- 2.0 is the key 2
    assert.equal(1, r[7.5])
  end)

  it("shuffles engine to engine: a key's values meet at one engine, in target order", function()
    local r = v:mapreduce{input = {1, 2, 3, 4, 5, 6},
      map = function(x, emit) emit("k" .. (x % 2), {x = x, at = engine.id}) end,
      reduce = function(_, xs)
        local xsv, at = {}, {}
        for i, e in ipairs(xs) do xsv[i], at[i] = e.x, e.at end
        return {by = engine.id, xs = xsv, at = at}
      end}
    -- items 1,2 on the first engine, 3,4 on the second, 5,6 on the third
    assert.same({1, 3, 5}, r.k1.xs)
    assert.same({ids[1], ids[2], ids[3]}, r.k1.at)
    assert.same({2, 4, 6}, r.k0.xs)
    assert.same({ids[1], ids[2], ids[3]}, r.k0.at)
    -- reduced on an engine of the view (not in the client)
    assert.is_truthy(({[ids[1]] = 1, [ids[2]] = 1, [ids[3]] = 1})[r.k1.by])
  end)

  it("gives reduce each key's values in target order, then emit order, whoever owns it", function()
    -- items 1-3 on the first engine, 4-6 on the second, 7-9 on the third:
    -- keys a..l get every item (a list from each engine), keys q1..q12
    -- one value from the first engine and one from the third, and o<x>
    -- one value; the keys' owners are spread over the three engines
    local function map(x, emit)
      for c in ("abcdefghijkl"):gmatch(".") do emit(c, x) end
      if x == 1 or x == 9 then
        for j = 1, 12 do emit("q" .. j, x) end
      end
      emit("o" .. x, x)
      emit("twice", x)
      emit("twice", -x)
    end
    local function list(_, xs) return {table.unpack(xs)} end
    -- values and lists of values (what combine made) as one list
    local function flat(xs)
      local out = {}
      for _, x in ipairs(xs) do
        if type(x) == "table" then
          table.move(x, 1, #x, #out + 1, out)
        else
          out[#out + 1] = x
        end
      end
      return out
    end
    for _, p in ipairs{3, 7} do
      for _, combine in ipairs{false, true} do
        local r = v:mapreduce{input = {1, 2, 3, 4, 5, 6, 7, 8, 9}, map = map, reduce = list,
          partitions = p, combine = combine and function(_, xs) return flat(xs) end or nil}
        for c in ("abcdefghijkl"):gmatch(".") do
          assert.same({1, 2, 3, 4, 5, 6, 7, 8, 9}, flat(r[c]))
        end
        for j = 1, 12 do assert.same({1, 9}, flat(r["q" .. j])) end
        for x = 1, 9 do assert.same({x}, flat(r["o" .. x])) end
        assert.same({1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8, -8, 9, -9},
          flat(r.twice))
      end
    end
    mailboxes_empty()
  end)

  it("counts the words of every copyright and license file exactly as a serial count", function()
    local files = {}
    local p = io.popen([[for f in /usr/share/doc/*/copyright /usr/share/common-licenses/*; do
      [ -f "$f" ] && [ -r "$f" ] && printf '%s\n' "$f"; done]])
    for name in p:lines() do files[#files + 1] = name end
    p:close()
    assert.is_true(#files > 10, "a corpus of " .. #files .. " files")
    local function map(text, emit)
      local c = {}
      for w in text:lower():gmatch("%a+") do c[w] = (c[w] or 0) + 1 end
      for w, n in pairs(c) do emit(w, n) end
    end
    local counts = v:with{timeout = 600}:mapreduce{input = {files = files}, map = map,
      combine = sum, reduce = sum, partitions = 7}
    local serial = {}
    for _, name in ipairs(files) do
      local f = assert(io.open(name, "rb"))
      for w in f:read("a"):lower():gmatch("%a+") do serial[w] = (serial[w] or 0) + 1 end
      f:close()
    end
    assert.is_true(next(serial) ~= nil)
    assert.same(serial, counts)
    -- with a map that emits every word (no in-mapper counting)
    local few = {}
    for i = 1, math.min(40, #files) do few[i] = files[i] end
    serial = {}
    for _, name in ipairs(few) do
      local f = assert(io.open(name, "rb"))
      for w in f:read("a"):gmatch("%a+") do serial[w] = (serial[w] or 0) + 1 end
      f:close()
    end
    assert.same(serial, v:mapreduce{input = {files = few}, map = words, combine = sum,
      reduce = sum})
  end)

  it("deals files to the engines as they become free: each mapped once, errors name it", function()
    -- 90 files of 1 to 90 lines, in a directory of this test's own
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    local files = {}
    for i = 1, 90 do
      files[i] = ("%s/f%02d"):format(dir, i)
      local f = assert(io.open(files[i], "wb"))
      f:write(("w%d x\n"):format(i):rep(i))
      f:close()
    end
    local ok, r = pcall(function()
      return v:mapreduce{input = {files = files},
        map = function(text, emit, name)
          emit(name, 1)
          emit("engine " .. engine.id, 1)
          for w in text:gmatch("%w+") do emit(w, 1) end
        end, combine = sum, reduce = sum}
    end)
    -- an engine that maps slowly (0.2 s a file, the others 0.02 s) gets
    -- fewer files (a static share would give each a third of the bytes)
    local slow = ids[3]
    local ok3, r3 = pcall(function()
      return v:mapreduce{input = {files = files},
        map = function(_, emit)
          engine.recv(nil, "plush-never", engine.id == slow and 0.2 or 0.02)
          emit(engine.id, 1)
        end, reduce = sum}
    end)
    local ok2, e = pcall(v.mapreduce, v, {input = {files = files},
      map = function(_, _, name) if name:match("f57$") then error("bad file") end end,
      reduce = sum})
    os.execute("rm -r " .. dir)
    assert.is_true(ok, r)
    local engines = 0
    for i = 1, 90 do
      assert.equal(1, r[files[i]])
      assert.equal(i, r["w" .. i])
    end
    assert.equal(90 * 91 / 2, r.x)
    for _, id in ipairs(ids) do
      assert.is_true((r["engine " .. id] or 0) >= 1, "engine " .. id .. " mapped no file")
      engines = engines + r["engine " .. id]
    end
    assert.equal(90, engines)
    assert.is_true(ok3, r3)
    assert.equal(90, r3[ids[1]] + r3[ids[2]] + r3[slow])
    assert.is_true(r3[slow] < r3[ids[2]], ("the slow engine mapped %d files, another %d")
      :format(r3[slow], r3[ids[2]]))
    assert.is_false(ok2)
    assert.matches("bad file %(mapreduce map of input file 57 %(" .. dir:gsub("%p", "%%%0")
      .. "/f57%)%)$", e.message)
    assert.equal(dir .. "/f57", e.item)
    mailboxes_empty()
  end)

  it("a map that raises fails with the remote traceback and the input item", function()
    local ok, e = pcall(v.mapreduce, v, {input = {1, 2, "x", 4},
      map = function(x, emit) emit("k", x + 1) end, reduce = sum})
    item3_failed(ok, e)
    -- a file that cannot be read, a reduce that raises, a key that is a table
    e = select(2, pcall(v.mapreduce, v, {input = {files = {"/nonexistent/plush"}}, map = words,
      reduce = sum}))
    assert.equal("cannot read input file: /nonexistent/plush: No such file or directory "
      .. "(mapreduce map of input file 1 (/nonexistent/plush))", e.message)
    ok, e = pcall(v.mapreduce, v, {input = {"a"}, map = words,
      reduce = function(k) error("no " .. k) end})
    assert.is_false(ok)
    assert.matches("no a %(mapreduce reduce of key \"a\"%)$", e.message)
    assert.equal("a", e.item)
    e = select(2, pcall(v.mapreduce, v, {input = {1}, map = function(_, emit) emit({}, 1) end,
      reduce = sum}))
    assert.equal("a key is a string, a number or a boolean, not a table (mapreduce emit)",
      e.message)
    mailboxes_empty()
    assert.same({a = 1}, v:mapreduce{input = {"a"}, map = words, reduce = sum})
  end)

  it("folds a key's values at 64 with combine; its errors name the item or the key", function()
    -- 100 values a key an engine: folded at the 64th, the rest in the
    -- grouping pass (or by reduce on the owner); a nil from combine
    -- drops the values folded
    local function map(x, emit)
      for i = 1, 100 do
        emit("kept", x)
        emit("half", i)
        emit("t", {x})
      end
    end
    local function comb(k, xs)
      if k == "half" then return nil end
      if k == "t" then
        local n = 0
        for _, t in ipairs(xs) do n = n + t[1] end
        return {n}
      end
      local n = 0
      for _, x in ipairs(xs) do n = n + x end
      return n
    end
    local r = v:mapreduce{input = {1, 2, 3}, map = map, combine = comb,
      reduce = function(k, xs)
        if k == "t" then return comb(k, xs)[1] end
        if k == "half" then return #xs end
        return comb(k, xs)
      end}
    assert.equal(600, r.kept)
    assert.equal(600, r.t)
    -- the owner's 36 values left after its fold go to reduce as they are
    assert.equal(36, r.half)
    -- combine raising at the 64th value: an error of the item's map
    local ok, e = pcall(v.mapreduce, v, {input = {1, 2, "x", 4}, map = function(x, emit)
      for _ = 1, 64 do emit("k", x) end
    end, combine = function(_, xs) return xs[1] + 1 end, reduce = sum})
    item3_failed(ok, e)
    -- combine raising in the grouping pass names the key
    ok, e = pcall(v.mapreduce, v, {input = {"a a b", "b b"}, map = words, partitions = 1,
      combine = function(k) error("no " .. k, 0) end, reduce = sum})
    assert.is_false(ok)
    assert.equal("no b (mapreduce combine of key \"b\")", e.message)
    assert.equal("b", e.item)
    mailboxes_empty()
  end)

  it("an engine killed while mapping fails the call with EngineError naming it", function()
    local victim = rc:add(1, 60)[1]
    local pid = rc[victim]:execute("return engine.pid")
    killed[#killed + 1] = pid
    local d = rc:view{ids[1], victim, ids[2]}:async():mapreduce{input = {1, 2, 3},
      map = function(x, emit)
        if x == 2 then
          engine.tuplespace():out{"mr-at", engine.id}
          engine.recv(nil, "never")
        end
        emit("k", x)
      end, reduce = sum}
    local ts = plush.tuplespace(rc)
    assert.same({"mr-at", victim}, ts:take({"mr-at", plush.ANY}):get(30))
    assert.is_true(os.execute(("kill -KILL %d"):format(pid)))
    local ok, e = pcall(d.get, d, 60)
    assert.is_false(ok)
    assert.is_true(plush.errors.is(e, "EngineError"))
    assert.equal(victim, e.engine)
    assert.equal(("mapreduce: engine %d died or left during the run"):format(victim), e.message)
    mailboxes_empty()
  end)

  it("the engine dealing the files killed while mapping: EngineError naming it", function()
    local victim = rc:add(1, 60)[1]
    local pid = rc[victim]:execute("return engine.pid")
    killed[#killed + 1] = pid
    local files = {}
    for i = 1, 30 do files[i] = "/etc/passwd" end
    local d = rc:view{victim, ids[1], ids[2]}:async():mapreduce{input = {files = files},
      map = function(_, emit)
        if engine.id == victim then
          engine.tuplespace():out{"mr-deal-at", engine.id}
          engine.recv(nil, "never")
        end
        emit("k", 1)
      end, reduce = sum}
    local ts = plush.tuplespace(rc)
    assert.same({"mr-deal-at", victim}, ts:take({"mr-deal-at", plush.ANY}):get(30))
    assert.is_true(os.execute(("kill -KILL %d"):format(pid)))
    local ok, e = pcall(d.get, d, 60)
    assert.is_false(ok)
    assert.is_true(plush.errors.is(e, "EngineError"))
    assert.equal(victim, e.engine)
    assert.equal(("mapreduce: engine %d died or left during the run"):format(victim), e.message)
    mailboxes_empty()
  end)

  it("refuses bad input with one line, sending nothing", function()
    local function err(spec, target)
      local ok, e = pcall((target or v).mapreduce, target or v, spec)
      assert.is_false(ok)
      return e
    end
    assert.matches("bad argument #1 to 'mapreduce' %(table expected, got number%)", err(5))
    assert.matches("mapreduce: 'map' must be a function, got nil", err{input = {}, reduce = sum})
    assert.matches("mapreduce: 'reduce' must be a function, got string",
      err{input = {}, map = words, reduce = "sum"})
    assert.matches("mapreduce: 'combine' must be a function or nil, got number",
      err{input = {}, map = words, reduce = sum, combine = 1})
    assert.matches("mapreduce: 'partitions' must be a positive integer",
      err{input = {}, map = words, reduce = sum, partitions = 0})
    assert.matches("mapreduce: unknown field 'reducer'",
      err{input = {}, map = words, reduce = sum, reducer = sum})
    assert.matches("mapreduce: 'input' must be a sequence of values or {files = {names}}, "
      .. "got string", err{input = "/etc/passwd", map = words, reduce = sum})
    assert.matches("mapreduce: 'input.files[2]' must be a file name, got number",
      err{input = {files = {"/etc/passwd", 3}}, map = words, reduce = sum}, 1, true)
    assert.matches("mapreduce: needs a DirectView",
      err({input = {}, map = words, reduce = sum}, rc:balanced()))
    assert.matches("cannot serialise .*thread",
      tostring(err{input = {coroutine.create(print)}, map = words, reduce = sum}))
    mailboxes_empty()
    -- the part of the last engine cannot travel, those of the others could
    assert.matches("cannot serialise .*thread",
      tostring(err{input = {"a", "b", coroutine.create(print)}, map = words, reduce = sum}))
    -- the engines that had started stopped; the next run works
    assert.same({0, 0, 0}, v:apply(function()
      local n = 0
      while engine.recv(nil, nil, 0) ~= nil do n = n + 1 end
      return n
    end))
    assert.same({a = 1, b = 1}, v:mapreduce{input = {"a", "b"}, map = words, reduce = sum})
  end)
end)
