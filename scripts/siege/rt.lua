-- lua5.4 scripts/siege/rt.lua PROFILE: the execute round trip of a
-- healthy client on engine 0 (2,000 after 50 warm-up), median and p99.
-- share/doc/performance.md, "Under siege".
local plush = require "plush"
local rc = plush.connect{profile = arg[1]}
local e0, t = rc[0], {}
for _ = 1, 50 do e0:execute("return 1") end
for i = 1, 2000 do
  local a = plush.now()
  e0:execute("return 1")
  t[i] = plush.now() - a
end
table.sort(t)
print(("median %.0f us  p99 %.0f us"):format(t[1000] * 1e6, t[1980] * 1e6))
