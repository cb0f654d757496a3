-- Counting primes below N with a map/reduce step: the range is cut into
-- blocks, each block's primes are counted on an engine (map), and the
-- counts are summed locally (reduce).
--
--   scripts/plush run scripts/examples/primes.lua [N] [BLOCKS]
local n = math.tointeger(tonumber(arg[1] or "")) or 2000000
local blocks = math.tointeger(tonumber(arg[2] or "")) or 32

local function count(block)
  local lo, hi = block[1], block[2]
  local c = 0
  for k = math.max(lo, 2), hi do
    local prime = true
    if k % 2 == 0 then prime = k == 2
    else
      for d = 3, math.floor(math.sqrt(k)), 2 do
        if k % d == 0 then prime = false; break end
      end
    end
    if prime then c = c + 1 end
  end
  return c
end

local work, size = {}, (n + blocks - 1) // blocks
for b = 1, blocks do
  local lo = (b - 1) * size + 1
  work[b] = {lo, math.min(b * size, n - 1)}
end
local t0 = plush.now()
local counts = rc:balanced():with{chunksize = 1}:map(count, work)
local total = 0
for _, c in ipairs(counts) do total = total + c end
print(("%d primes below %d (%d blocks on %d engines, %.2f s)"):format(
  total, n, blocks, #rc:ids(), plush.now() - t0))
return total
