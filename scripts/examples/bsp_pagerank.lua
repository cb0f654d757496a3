-- PageRank in BSP supersteps (view:bsp): vertex u belongs to engine
-- u % P; every superstep each engine sends every other one the rank its
-- vertices pass along their links (one message a peer), and votes to halt
-- once its ranks moved less than TOL; the run ends when every engine
-- voted in the same superstep, as the serial loop ends when the largest
-- move is below TOL. Checked against the serial iteration.
--
--   scripts/plush run scripts/examples/bsp_pagerank.lua [VERTICES]
local nv = math.tointeger(tonumber(arg[1] or "")) or 20000
local conf = {nv = nv, damping = 0.85, tol = 1e-10, maxiter = 200}

-- the graph: three links out of every vertex (0-based ids)
local function links(u, n)
  return (u + 1) % n, (u * 7 + 3) % n, (u * u + 11) % n
end

local t0 = plush.now()
local parts = rc:view(rc:ids()):bsp(function(ctx)
  local c, peers = ctx.state, ctx.peers
  local p, me = #peers, 0
  for i, id in ipairs(peers) do if id == ctx.id then me = i - 1 end end
  if ctx.step == 1 then
    c.rank = {}
    for u = me, c.nv - 1, p do c.rank[u] = 1 / c.nv end
  else
    local incoming = {}
    for _, m in ipairs(ctx:messages()) do
      for u, x in pairs(m) do incoming[u] = (incoming[u] or 0) + x end
    end
    local delta, base = 0, (1 - c.damping) / c.nv
    for u, old in pairs(c.rank) do
      local new = base + c.damping * (incoming[u] or 0)
      delta = math.max(delta, math.abs(new - old))
      c.rank[u] = new
    end
    if delta < c.tol or ctx.step > c.maxiter then ctx:halt(c.rank) end
  end
  -- what each vertex passes along its links, summed per owner
  local out = {}
  for i = 1, p do out[i] = {} end
  for u = me, c.nv - 1, p do
    local share = c.rank[u] / 3
    for _, t in ipairs{links(u, c.nv)} do
      local o = out[t % p + 1]
      o[t] = (o[t] or 0) + share
    end
  end
  for i, id in ipairs(peers) do ctx:send(id, out[i]) end
end, conf)
local took = plush.now() - t0

-- the serial iteration
local rank, iters = {}, 0
for u = 0, nv - 1 do rank[u] = 1 / nv end
repeat
  local incoming = {}
  for u = 0, nv - 1 do
    local share = rank[u] / 3
    for _, t in ipairs{links(u, nv)} do incoming[t] = (incoming[t] or 0) + share end
  end
  local delta, base = 0, (1 - conf.damping) / nv
  for u = 0, nv - 1 do
    local new = base + conf.damping * (incoming[u] or 0)
    delta = math.max(delta, math.abs(new - rank[u]))
    rank[u] = new
  end
  iters = iters + 1
until delta < conf.tol or iters >= conf.maxiter

local seen, worst, top, best, sum = 0, 0, 0, 0, 0
for _, part in ipairs(parts) do
  for u, x in pairs(part) do
    seen = seen + 1
    worst = math.max(worst, math.abs(x - rank[u]) / rank[u])
    if x > best or (x == best and u < top) then top, best = u, x end
    sum = sum + x
  end
end
assert(seen == nv, ("%d ranks for %d vertices"):format(seen, nv))
assert(worst < 1e-9, ("a rank is %g off the serial one (relative)"):format(worst))
print(("pagerank of %d vertices on %d engines in %.3f s (%d serial iterations): "
  .. "top vertex %d, sum %.6f, within %.0e of the serial ranks")
  :format(nv, #parts, took, iters, top, sum, 1e-9))
