-- End to end: the C side of mapreduce's engine task (engines/engine_mr.c,
-- registry plush.mr.new / group / add / own), called on a real engine.
local plush, file = require("real_cluster")("e2e mr accum")
if not plush then return end

describe("e2e mapreduce accumulator", function()
  local rc, e

  setup(function()
    rc = plush.connect{file = file, timeout = 20}
    e = rc[rc:ids()[1]]
  end)
  teardown(function() rc:close() end)

  -- runs f(new, group3, ...) on the engine: the registry's new, and its
  -- group followed by own (-> mine, vals, lists); the global MR holds the
  -- registry's group, add and own
  local function on_engine(f, ...)
    return e:apply(function(g, ...)
      local reg = debug.getregistry()
      local group, own = reg["plush.mr.group"], reg["plush.mr.own"]
      MR = {group = group, add = reg["plush.mr.add"], own = own} -- luacheck: ignore MR
      local function group3(acc, ...)
        local vals, lists = group(acc, ...)
        return own(acc), vals, lists
      end
      return g(reg["plush.mr.new"], group3, ...)
    end, f, ...)
  end

  it("keeps each key's values in emit order; groups own keys as lists", function()
    local r = on_engine(function(new, group)
      local emit, acc = new(nil, 64)
      emit("a", 1) emit("b", {x = 1}) emit("a", 2) emit(3, "i") emit(3.0, "f")
      emit(true, false) emit("c", nil) emit("c") emit(2.5, 7)
      local sent = {}
      local mine, vals, lists = group(acc, 1, 1, 1, function(...) sent[#sent + 1] = {...} end, {})
      return {mine = mine, vals = vals, lists = lists, sent = #sent}
    end)
    assert.same({a = {1, 2}, b = {{x = 1}}, [3] = {"i", "f"}, [true] = {false}, [2.5] = {7}},
      r.mine)
    assert.same({{}}, r.vals)
    assert.same({{}}, r.lists)
    assert.equal(0, r.sent)
  end)

  it("keeps numbers exactly (integer or float), and any other value as it is", function()
    local r = on_engine(function(new, group)
      local emit, acc = new(nil, 64)
      local t = {1}
      local xs = {1, 2.0, -0.0, 1 / 0, -1 / 0, 0 / 0, math.mininteger, math.maxinteger,
        2 ^ 53 + 1, 0.1, "s", t, true, false, print}
      for _, x in ipairs(xs) do emit("k", x) end
      local got = group(acc, 1, 1, 1, function() end, {}).k
      local out = {n = #got}
      for i, x in ipairs(got) do
        out[i] = math.type(x) and (math.type(x) .. " " .. string.format("%q", x)) or type(x)
        if type(x) ~= "number" then out[i] = out[i] .. " " .. tostring(x == xs[i]) end
      end
      return out
    end)
    assert.same({n = 15, "integer 1", "float 0x1p+1", "float -0x0p+0", "float 1e9999",
      "float -1e9999", "float (0/0)", "integer 0x8000000000000000",
      "integer 9223372036854775807", "float 0x1p+53", "float 0x1.999999999999ap-4",
      "string true", "table true", "boolean true", "boolean true", "function true"}, r)
  end)

  it("folds a key's values with combine at fold, keeping every non-nil result", function()
    local r = on_engine(function(new, group)
      local calls = {}
      local emit, acc = new(function(k, xs)
        calls[#calls + 1] = k .. ":" .. table.concat(xs, ",")
        if k == "nil" then return nil end
        if k == "two" then return xs[1], nil, xs[#xs] end
        local n = 0
        for i = 1, #xs do n = n + xs[i] end
        return n
      end, 3)
      for i = 1, 7 do emit("sum", i) emit("nil", i) emit("two", i) end
      local mine = group(acc, 1, 1, 1, function() end, {})
      return {mine = mine, calls = calls}
    end)
    assert.same({sum = {28}, ["nil"] = {7}, two = {1, 7}}, r.mine)
    assert.same({"sum:1,2,3", "nil:1,2,3", "two:1,2,3", "two:1,3,4", "sum:6,4,5",
      "two:1,4,5", "nil:4,5,6", "two:1,5,6", "sum:15,6,7", "two:1,6,7"}, r.calls)
  end)

  it("keeps every value of a combine that returns thousands of them", function()
    local r = on_engine(function(new, group)
      -- combine gives back 5,000 values: more than a C function's stack
      -- holds by default; each becomes one of the key's values
      local emit, acc = new(function(_, xs)
        local out = {}
        for i = 1, 5000 do out[i] = xs[1] * 10000 + i end
        return table.unpack(out)
      end, 2)
      emit("k", 1) emit("k", 2)
      local got = group(acc, 1, 1, 1, function() end, {}).k
      return {n = #got, first = got[1], last = got[#got]}
    end)
    assert.same({n = 5000, first = 10001, last = 15000}, r)
  end)

  it("adds other engines' values before or after a key's own, lists in their order", function()
    local r = on_engine(function(new)
      local group, add, own = MR.group, MR.add, MR.own -- luacheck: ignore MR
      local emit, acc = new(nil, 64)
      emit("a", 1) emit("a", 2) emit("b", {"t"}) emit("c", 3)
      local vals, lists = group(acc, 1, 1, 1, print, {})
      -- engine 2 of 4 (own = 2): engine 1 before, engines 3 and 4 after;
      -- several before-engines would come nearest first
      add(acc, {a = 0, n = "new"}, {b = {"x", "y"}, c = {}}, true)
      add(acc, {a = -1}, nil, true)
      add(acc, nil, {a = {5, 6}, m = {7, 8}}, false)
      add(acc, {a = 9, b = 2.5}, {}, false)
      return {mine = own(acc), vals = vals, lists = lists}
    end)
    assert.same({a = {-1, 0, 1, 2, 5, 6, 9}, b = {"x", "y", {"t"}, 2.5}, c = {3},
      n = {"new"}, m = {7, 8}}, r.mine)
    assert.same({{}}, r.vals)
    assert.same({{}}, r.lists)
  end)

  -- mapreduce.lua's owner before engine_mr.c: the partitions must not move
  local function owner(k, nparts, n)
    local byte, t = string.byte, type(k)
    local h
    if t == "string" then
      local len = #k
      local a, b, c, d, x, f, g, i = byte(k, 1, 8)
      h = ((((((((len * 31 + (a or 0)) * 31 + (b or 0)) * 31 + (c or 0)) * 31 + (d or 0))
        * 31 + (x or 0)) * 31 + (f or 0)) * 31 + (g or 0)) * 31 + (i or 0))
      if len > 8 then
        a, b, c, d, x, f, g, i = byte(k, len > 16 and len - 7 or 9, len)
        h = ((((((((h * 31 + a) * 31 + (b or 0)) * 31 + (c or 0)) * 31 + (d or 0))
          * 31 + (x or 0)) * 31 + (f or 0)) * 31 + (g or 0)) * 31 + (i or 0))
      end
      h = h & 0x7fffffff
    elseif math.type(k) == "integer" then
      h = k
    elseif t == "number" then
      h = math.tointeger(k) or string.unpack("<i8", string.pack("<d", k))
    else
      h = k and 1 or 0
    end
    return (h % nparts) % n + 1
  end

  it("sends each key to its owner: own keys as lists, others' as values or lists", function()
    local keys = {"", "a", "ab", "abcdefgh", "abcdefghi", "abcdefghijklmnop",
      "abcdefghijklmnopq", "\255\254\253\252\251\250\249\248\247\246\245\244\243\242\241\240\239",
      ("x"):rep(1000), 0, 1, -1, -7, 12345678901, math.mininteger, math.maxinteger,
      0.5, -2.25, 1e300, -1e300, math.huge, -math.huge, true, false}
    for _, nparts in ipairs{3, 7, 1} do
      for _, combine in ipairs{false, true} do
        local r = on_engine(function(new, group, ks, np, comb)
          local emit, acc = new(comb and function(_, xs)
            if xs[1] == "none" then return nil end
            return {"c", table.unpack(xs)}
          end or nil, 64)
          for i, k in ipairs(ks) do
            emit(k, i) -- once
            if i % 2 == 0 then emit(k, -i) end -- twice
            if i % 5 == 0 then emit(k, "none") end
          end
          local mine, vals, lists = group(acc, np, 3, 2,
            function() error("no chunk is full") end, {})
          return {mine = mine, vals = vals, lists = lists}
        end, keys, nparts, combine)
        for i, k in ipairs(keys) do
          local o = owner(k, nparts, 3)
          local xs = {i}
          if i % 2 == 0 then xs[2] = -i end
          if i % 5 == 0 then xs[#xs + 1] = "none" end
          for p = 1, 3 do
            local want_v, want_m, want_mine
            if p == o then
              if o == 2 then
                want_mine = xs
              elseif #xs == 1 then
                want_v = xs[1]
              elseif not combine then
                want_m = xs
              elseif xs[1] ~= "none" then
                want_v = {"c", table.unpack(xs)}
              end
            end
            local where = ("key %s, partitions %d, combine %s, engine %d"):format(
              tostring(k), nparts, tostring(combine), p)
            assert.same(want_v, r.vals[p][k], where)
            assert.same(want_m, r.lists[p][k], where)
            if p == 2 then assert.same(want_mine, r.mine[k], where) end
          end
        end
      end
    end
  end)

  it("hands full chunks of 8192 keys to full(o, vals, lists), the rest returned", function()
    local r = on_engine(function(new, group)
      local emit, acc = new(nil, 64)
      for i = 1, 20000 do
        emit(i * 2, i)      -- even keys: engine 1 of 2, one partition each
        emit(i * 2 + 1, i)  -- odd keys: engine 2 (own)
        if i % 3 == 0 then emit(i * 2, -i) end
      end
      local calls = {}
      local mine, vals, lists = group(acc, 2, 2, 2, function(o, v, m)
        local nv, nm = 0, 0
        for _ in pairs(v) do nv = nv + 1 end
        for _ in pairs(m) do nm = nm + 1 end
        calls[#calls + 1] = {o, nv + nm}
      end, {})
      local nmine, nv, nm, ok = 0, 0, 0, true
      for k, xs in pairs(mine) do
        nmine = nmine + 1
        ok = ok and k % 2 == 1 and #xs == 1 and xs[1] == (k - 1) // 2
      end
      for _ in pairs(vals[1]) do nv = nv + 1 end
      for k, xs in pairs(lists[1]) do
        nm = nm + 1
        ok = ok and #xs == 2 and xs[1] == k // 2 and xs[2] == -(k // 2)
      end
      return {calls = calls, nmine = nmine, rest = nv + nm, ok = ok}
    end)
    assert.same({{1, 8192}, {1, 8192}}, r.calls)
    assert.equal(20000, r.nmine)
    assert.equal(20000 - 2 * 8192, r.rest)
    assert.is_true(r.ok)
  end)

  it("raises as a table would for nil and NaN keys; a bad key type at grouping", function()
    local r = on_engine(function(new, group)
      local emit, acc = new(nil, 64)
      local out = {}
      out[1] = select(2, pcall(emit, nil, 1))
      out[2] = select(2, pcall(emit, 0 / 0, 1))
      out[3] = select(2, pcall(emit, nil, nil))
      out[4] = pcall(emit, {}, nil) -- dropped: no key made
      out[5] = select(2, pcall(group, acc, 1, 1, 1, print, {})) -- mine (group, then own)
      out[6] = select(2, pcall(emit, "late", 1))
      emit, acc = new(nil, 64)
      emit({}, 1)
      out[7] = select(2, pcall(group, acc, 1, 1, 1, print, {}))
      emit, acc = new(nil, 64)
      emit(print, 1)
      out[8] = select(2, pcall(group, acc, 1, 1, 1, print, {})).message
      out[9] = select(2, pcall(group, {}, 1, 1, 1, print, {}))
      out[10] = select(2, pcall(group, acc, 0, 1, 1, print, {}))
      -- combine raising while grouping: ctx[1] is the key it was called for
      local ctx = {}
      emit, acc = new(function(k) error("bad " .. k, 0) end, 64)
      emit("k", 1) emit("k", 2)
      out[11] = select(2, pcall(group, acc, 1, 2, 2, print, ctx))
      out[12] = ctx[1]
      return out
    end)
    assert.equal("index is nil", r[1])
    assert.equal("index is NaN", r[2])
    assert.equal("index is nil", r[3])
    assert.is_true(r[4])
    assert.same({}, r[5]) -- {} emitted with nil only: no key
    assert.equal("mapreduce: emit called after the map ended", r[6])
    assert.same({["plush.spmd"] = "error", what = "emit", traceback = "",
      message = "a key is a string, a number or a boolean, not a table"}, r[7])
    assert.equal("a key is a string, a number or a boolean, not a function", r[8])
    assert.matches("bad argument #1 to .*plush.mr expected", r[9])
    assert.matches("bad argument #2 to .*bad sizes", r[10])
    assert.equal("bad k", r[11])
    assert.equal("k", r[12])
  end)
end)
