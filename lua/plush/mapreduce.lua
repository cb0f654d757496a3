--[[
  plush.mapreduce: view:mapreduce{input, map, reduce, combine, partitions}
  on every engine of a DirectView (share/doc/models.md, "MapReduce").

  One task per engine: map its share of the input (values, or files it
  reads itself: on up to DEAL_MAX engines, in batches the first engine
  deals as the others become free), group what map emitted by key
  (combine folding each group as it grows), send every other engine the
  groups of the partitions it owns (engine.send: the shuffle goes engine
  to engine), receive its own from every engine in target order, reduce
  them, and return key -> value for its partitions. The client sends the
  input and merges the engines' tables; nothing else passes through it.
]]
-- luacheck: read globals engine
local spmd = require "plush.spmd"
local util = require "plush.util"

local guard, recv, catch = spmd.guard, spmd.recv, spmd.catch

local mapreduce = {}

-- A key's group is folded by combine when it reaches this many values.
local FOLD = 64

-- At most this many engines share files dynamically (one of them deals);
-- more get a static share each.
local DEAL_MAX = 8
-- Files dealt dynamically go in batches of a quarter of what is left
-- for each engine, down to 1/BATCHES of its bytes: few requests, and
-- small batches at the end, where the maps should end together.
local BATCHES = 256

-- The task of every engine (travels to the engines, with its upvalues).
-- With `cuts`, items are every engine's files, largest first, in batches
-- (batch b ends at item cuts[b]): the engine at position p in peers maps
-- batch p, then asks the first engine (the dealer) for the next one
-- until none is left.
local function task(items, index, files, map, reduce, combine, nparts, peers, tag, cuts)
  local stop <close> = guard(peers, tag) -- luacheck: ignore stop
  local me, n = engine.id, #peers

  -- what the handlers say about the item or key they failed on
  local cur, stage
  local function item_what(i)
    local x = items[i]
    if files then return ("map of input file %d (%s)"):format(index[i], x), x end
    local s = type(x) == "string" and ("%q"):format(x) or tostring(x)
    if #s > 60 then s = s:sub(1, 57) .. "..." end
    return ("map of input item %d (%s)"):format(index + i - 1, s), x
  end
  local on_map = catch(function() return item_what(cur) end)
  local ctx = {} -- ctx[1]: the key the grouping pass calls combine for
  local on_key = catch(function()
    if stage == "combine" then cur = ctx[1] end
    local s = type(cur) == "string" and ("%q"):format(cur) or tostring(cur)
    if #s > 60 then s = s:sub(1, 57) .. "..." end
    return ("%s of key %s"):format(stage, s), cur
  end)
  -- the same, letting plush's own errors (a bad key) through as they are
  local function pass_on_key(e)
    if type(e) == "table" and e["plush.spmd"] then return e end
    return on_key(e)
  end

  -- What map emitted, by key (engines/engine_mr.c): each key's values
  -- in emit order, folded by combine when a key has FOLD values.
  local reg = debug.getregistry()
  local emit, acc = reg["plush.mr.new"](combine, FOLD)

  -- map
  local function map_item(i)
    cur = i
    local item, name = items[i], nil
    if files then
      name = item
      local f, err = io.open(name, "rb")
      if not f then
        error({["plush.spmd"] = "error", message = "cannot read input file: " .. err,
          what = (item_what(i)), item = name, traceback = ""}, 0)
      end
      item = f:read("a")
      f:close()
    end
    local ok, e = xpcall(map, on_map, item, emit, name)
    if not ok then error(e, 0) end
  end

  -- a message from `from` that is not a request for a batch (the dealer
  -- may find one left over after it told `from` that none is left)
  local function recv_data(from)
    local m
    repeat m = recv(from, tag) until not m.want
    return m
  end

  if not cuts then
    for i = 1, #items do map_item(i) end
  elseif me == peers[1] then
    -- the dealer: between two files, answers the requests of the engines
    -- it has not told yet that every batch is gone
    local open, nextb, nb = {}, n + 1, #cuts
    for p = 2, n do open[p] = peers[p] end
    local function serve()
      for p, id in pairs(open) do
        if recv(id, tag, 0) ~= nil then
          if nextb <= nb then
            engine.send(id, {batch = nextb}, tag)
            nextb = nextb + 1
          else
            engine.send(id, {done = true}, tag)
            open[p] = nil
          end
        end
      end
    end
    local b = 1
    while b <= nb do
      for i = (cuts[b - 1] or 0) + 1, cuts[b] do
        serve()
        map_item(i)
      end
      b, nextb = nextb, nextb + 1
    end
    for _, id in pairs(open) do engine.send(id, {done = true}, tag) end
  else
    -- the others: a batch, asking for the next one before mapping it
    local dealer, b = peers[1], nil
    for p = 2, n do if peers[p] == me then b = p end end
    while true do
      if b ~= nil and b > #cuts then b = nil end
      engine.send(dealer, {want = true}, tag)
      if b ~= nil then
        for i = (cuts[b - 1] or 0) + 1, cuts[b] do map_item(i) end
      end
      local m = recv(dealer, tag)
      if m.done then break end
      b = m.batch
    end
  end

  -- the shuffle (engines/engine_mr.c): partition p belongs to engine
  -- p % n + 1 (a string's partition hashes its length and first and
  -- last 8 bytes). A key emitted once travels as its value (in v), the
  -- others as lists (in m) or what combine made of them (in v), 8,192
  -- keys a message at most, sent as they fill. The keys this engine owns
  -- do not travel: their values stay in acc, the other engines' values
  -- are put before or after them in target order as they come (those
  -- of the engines before this one nearest first, each put first), and
  -- each key's list is made once, for reduce (no combine).
  local own
  for i = 1, n do if peers[i] == me then own = i end end
  local function full(o, v, m)
    engine.send(peers[o], {v = v, m = m, more = true}, tag)
  end
  stage = "combine"
  local ok, vals, lists_of = xpcall(reg["plush.mr.group"], pass_on_key, acc, nparts, n,
    own, full, ctx)
  if not ok then error(vals, 0) end
  emit = nil
  for i, id in ipairs(peers) do
    if id ~= me then
      engine.send(id, {v = vals[i], m = lists_of[i], more = false}, tag)
      vals[i], lists_of[i] = nil, nil
    end
  end

  local add = reg["plush.mr.add"]
  local function receive(i)
    local m
    repeat
      m = recv_data(peers[i])
      add(acc, m.v, m.m, i < own)
    until not m.more
  end
  for i = own - 1, 1, -1 do receive(i) end
  for i = own + 1, n do receive(i) end
  local mine = reg["plush.mr.own"](acc)
  acc = nil -- luacheck: ignore acc (what map emitted can go now)

  stage = "reduce"
  local err
  ok, err = xpcall(function()
    -- the results replace the lists in mine (a key reduced to nil goes)
    for k, g in pairs(mine) do
      cur = k
      mine[k] = reduce(k, g)
    end
  end, on_key)
  if not ok then error(err, 0) end
  return mine
end

-------------------------------------------------------------------------------
-- Client side
-------------------------------------------------------------------------------

local KNOWN = {input = true, map = true, reduce = true, combine = true, partitions = true}

local function bad(msg) util.raise("mapreduce: " .. msg) end

local function check(spec)
  if type(spec) ~= "table" then
    util.argerror(1, "mapreduce", "table expected, got " .. type(spec))
  end
  for k in pairs(spec) do
    if not KNOWN[k] then bad(("unknown field '%s'"):format(tostring(k))) end
  end
  if type(spec.map) ~= "function" then bad("'map' must be a function, got " .. type(spec.map)) end
  if type(spec.reduce) ~= "function" then
    bad("'reduce' must be a function, got " .. type(spec.reduce))
  end
  if spec.combine ~= nil and type(spec.combine) ~= "function" then
    bad("'combine' must be a function or nil, got " .. type(spec.combine))
  end
  local p = spec.partitions
  if p ~= nil and (math.type(p) ~= "integer" or p < 1) then
    bad("'partitions' must be a positive integer")
  end
  local input = spec.input
  if type(input) ~= "table" then
    bad("'input' must be a sequence of values or {files = {names}}, got " .. type(input))
  end
  if input.files ~= nil then
    if type(input.files) ~= "table" then bad("'input.files' must be a sequence of file names") end
    for i = 1, util.len(input.files) do
      if type(input.files[i]) ~= "string" then
        bad(("'input.files[%d]' must be a file name, got %s"):format(i, type(input.files[i])))
      end
    end
  end
end

-- The sizes of the files as the client sees them (0 for one it cannot
-- see: the engine reading it will say why): one stat a file with
-- plush.core (an open, a seek and a close each cost 3 times as much).
local function sizes_of(files, n)
  local ok, core = pcall(require, "plush.core")
  if ok and type(core) == "table" and core.filesizes then return core.filesizes(files) end
  local sizes = {}
  for i = 1, n do
    local f = io.open(files[i], "rb")
    sizes[i] = f and f:seek("end") or 0
    if f then f:close() end
  end
  return sizes
end

--[[
  Up to DEAL_MAX engines, every engine gets every file name, largest
  first, cut in batches (of what is left / (4 * n) bytes, at least
  total / (n * BATCHES)): engine p maps batch p, then the batches the
  first engine deals it as it becomes free (see task). More engines:
  files go to the engine with the fewest bytes so far, largest first;
  each engine reads its files in input order. Values are split in
  contiguous parts.
]]
-- The indices 1..len of sizes, largest first (equal sizes in index order).
local function largest_first(sizes, len)
  local order = {}
  for i = 1, len do order[i] = i end
  table.sort(order, function(a, b)
    if sizes[a] ~= sizes[b] then return sizes[a] > sizes[b] end
    return a < b
  end)
  return order
end

--[[
  mapreduce.shares(sizes, n): the indices of the sequence sizes dealt to
  n shares, largest first, each to the share with the fewest bytes so far
  (in that order in each share): the static share of files below, and the
  bench's word-count floor (bench/wordcount.lua).
]]
function mapreduce.shares(sizes, n, order)
  order = order or largest_first(sizes, #sizes)
  local load, idx = {}, {}
  for e = 1, n do load[e], idx[e] = 0, {} end
  for _, i in ipairs(order) do
    local best = 1
    for e = 2, n do if load[e] < load[best] then best = e end end
    load[best] = load[best] + sizes[i]
    idx[best][#idx[best] + 1] = i
  end
  return idx
end

local function share_files(files, n)
  local total, len = 0, util.len(files)
  local sizes = sizes_of(files, len)
  for i = 1, len do total = total + sizes[i] end
  local order = largest_first(sizes, len)
  if n > 1 and n <= DEAL_MAX and #order > 0 then
    local names, cuts, least, left, acc = {}, {}, total / (n * BATCHES), total, 0
    for j, i in ipairs(order) do
      names[j] = files[i]
      acc = acc + sizes[i]
      if acc >= math.max(left / (4 * n), least) then
        cuts[#cuts + 1], left, acc = j, left - acc, 0
      end
    end
    if (cuts[#cuts] or 0) < #order then cuts[#cuts + 1] = #order end
    local part = {names, order, cuts}
    local parts = {}
    for e = 1, n do parts[e] = part end
    return parts
  end
  local idx = mapreduce.shares(sizes, n, order)
  local parts = {}
  for e = 1, n do
    table.sort(idx[e])
    local names = {}
    for j, i in ipairs(idx[e]) do names[j] = files[i] end
    parts[e] = {names, idx[e]}
  end
  return parts
end

local function share_values(seq, n)
  local len, parts, pos = util.len(seq), {}, 1
  local base, extra = len // n, len % n
  for e = 1, n do
    local m = base + (e <= extra and 1 or 0)
    parts[e] = {table.move(seq, pos, pos + m - 1, 1, {}), pos}
    pos = pos + m
  end
  return parts
end

--[[
  mapreduce(v, spec): the table key -> reduce(key, values), or a Deferred
  of it when v does not block.
]]
function mapreduce.run(v, spec)
  check(spec)
  local list = spmd.targets(v, "mapreduce")
  local tag = spmd.tag("mapreduce")
  local files = spec.input.files ~= nil
  local parts = files and share_files(spec.input.files, #list) or share_values(spec.input, #list)
  local nparts = spec.partitions or #list
  local r = spmd.run(v:with{block = false}, "mapreduce", list, tag, task, function(i)
    return parts[i][1], parts[i][2], files, spec.map, spec.reduce, spec.combine, nparts,
      list, tag, parts[i][3]
  end)
  r:add_callback(function(tables)
    -- the first table takes the others' keys (no rehash of its own)
    local out = tables[1] or {}
    for i = 2, #list do
      for k, x in pairs(tables[i]) do out[k] = x end
    end
    return out
  end)
  if not v.block then return r end
  return spmd.wait(r)
end

return mapreduce
