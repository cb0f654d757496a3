-- Word count with view:mapreduce over a real corpus: every
-- /usr/share/doc/*/copyright and /usr/share/common-licenses/* of this
-- machine (the engines read the files), checked against a serial count
-- in this process.
--
--   scripts/plush run scripts/examples/wordcount.lua [TOP]
local top = math.tointeger(tonumber(arg[1] or "")) or 5

-- the corpus: file names, sorted (a glob's order)
local files = {}
local p = io.popen([[for f in /usr/share/doc/*/copyright /usr/share/common-licenses/*; do
  [ -f "$f" ] && [ -r "$f" ] && printf '%s\n' "$f"; done]])
for name in p:lines() do files[#files + 1] = name end
p:close()
assert(#files > 0, "no corpus: no /usr/share/doc/*/copyright on this machine")

-- a word: letters, lower-cased. The map counts a file's words itself and
-- emits each word once with its count (in-mapper combining): one emit a
-- word would cost more than the counting (share/doc/models.md)
local function words(text, emit)
  local c = {}
  for w in text:lower():gmatch("%a+") do c[w] = (c[w] or 0) + 1 end
  for w, n in pairs(c) do emit(w, n) end
end
local function sum(_, counts)
  local n = 0
  for i = 1, #counts do n = n + counts[i] end
  return n
end

local v = rc:view(rc:ids())
local t0 = plush.now()
local counts = v:mapreduce{input = {files = files}, map = words, combine = sum, reduce = sum}
local took = plush.now() - t0

-- the same count, serially
t0 = plush.now()
local serial, bytes = {}, 0
for _, name in ipairs(files) do
  local f = assert(io.open(name, "rb"))
  local text = f:read("a")
  f:close()
  bytes = bytes + #text
  for w in text:lower():gmatch("%a+") do serial[w] = (serial[w] or 0) + 1 end
end
local serial_took = plush.now() - t0

local distinct, total = 0, 0
for w, c in pairs(serial) do
  distinct, total = distinct + 1, total + c
  assert(counts[w] == c, ("%q: mapreduce %s, serial %d"):format(w, tostring(counts[w]), c))
end
for w in pairs(counts) do assert(serial[w], ("%q: not in the serial count"):format(w)) end

local list = {}
for w, c in pairs(counts) do list[#list + 1] = {w, c} end
table.sort(list, function(a, b) return a[2] > b[2] or (a[2] == b[2] and a[1] < b[1]) end)
local best = {}
for i = 1, math.min(top, #list) do best[i] = ("%s %d"):format(list[i][1], list[i][2]) end
print(("%d files, %d bytes: %d words, %d distinct; mapreduce on %d engines %.2f s, "
  .. "serial %.2f s; equal counts"):format(#files, bytes, total, distinct, #v:ids(), took,
  serial_took))
print("most frequent: " .. table.concat(best, ", "))
