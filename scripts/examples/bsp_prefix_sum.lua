-- A prefix sum in BSP supersteps (view:bsp): the numbers are scattered
-- over the engines; each engine sums its block, the block sums are scanned
-- across the engines in log2(P) supersteps (Hillis-Steele: in superstep k
-- an engine sends its running total 2^(k-1) engines further), and each
-- engine then writes the prefix sums of its block. Checked against the
-- serial prefix sum.
--
--   scripts/plush run scripts/examples/bsp_prefix_sum.lua [N]
-- luacheck: read globals block
local n = math.tointeger(tonumber(arg[1] or "")) or 100000
local numbers = {}
for i = 1, n do numbers[i] = (i * 7919) % 1000 - 500 end

local v = rc:view(rc:ids())
-- engine i gets part i as its global `block` (a global: a local of this
-- script named in the step function would travel with it, whole)
v:scatter("block", numbers)

local t0 = plush.now()
local blocks = v:bsp(function(ctx)
  local st, p, me = ctx.state, #ctx.peers, 0
  for i, id in ipairs(ctx.peers) do if id == ctx.id then me = i end end
  if ctx.step == 1 then
    local s = 0
    for _, x in ipairs(block) do s = s + x end
    st.block, st.total = s, s
  else
    for _, m in ipairs(ctx:messages()) do st.total = st.total + m end
  end
  local d = 1 << (ctx.step - 1)
  if d < p then
    if me + d <= p then ctx:send(ctx.peers[me + d], st.total) end
  else
    local out, run = {}, st.total - st.block
    for i, x in ipairs(block) do run = run + x; out[i] = run end
    ctx:halt(out)
  end
end, {})
local took = plush.now() - t0

local serial, run, k = {}, 0, 0
for i = 1, n do run = run + numbers[i]; serial[i] = run end
for _, b in ipairs(blocks) do
  for _, x in ipairs(b) do
    k = k + 1
    assert(x == serial[k], ("prefix %d: %d, serial %d"):format(k, x, serial[k]))
  end
end
assert(k == n, ("%d prefix sums for %d numbers"):format(k, n))
print(("prefix sum of %d numbers on %d engines in %.3f s: last %d, equal to the serial one")
  :format(n, #blocks, took, serial[n]))
