-- The MapReduce word count of the bench rows (bench/run.lua) and of
-- `scripts/bench --cpu` (bench/cpu.lua): the corpus, the map and the
-- reduce of scripts/examples/wordcount.lua.
local M = {}

-- Every readable /usr/share/doc/*/copyright and common licence.
function M.files()
  local files = {}
  local p = io.popen([[for f in /usr/share/doc/*/copyright /usr/share/common-licenses/*; do
    [ -f "$f" ] && [ -r "$f" ] && printf '%s\n' "$f"; done]])
  for name in p:lines() do files[#files + 1] = name end
  p:close()
  return files
end

-- map: a file's text, each word emitted once with its count there
function M.words(text, emit)
  local seen = {}
  for w in text:lower():gmatch("%a+") do seen[w] = (seen[w] or 0) + 1 end
  for w, n in pairs(seen) do emit(w, n) end
end

-- the serial count: word -> count over files (the mr_wordcount_serial row)
function M.count(files)
  local counts = {}
  for _, name in ipairs(files) do
    local fh = assert(io.open(name, "rb"))
    local text = fh:read("a")
    fh:close()
    for w in text:lower():gmatch("%a+") do counts[w] = (counts[w] or 0) + 1 end
  end
  return counts
end

--[[
  The floor of the word count (row mr_wordcount_floor): the serial count
  in n plain Lua processes side by side, no plush, each over its own
  share of the files (largest first to the share with the fewest bytes),
  nothing merged. M.floor(files, n, dir, lua) writes the shares' lists in
  dir and gives a function running one sample: it starts the n processes
  (lua: the interpreter's path) and returns once all have ended, with
  the sum of their counts of "the".
]]
function M.floor(files, n, dir, lua)
  local shares = require("plush.mapreduce").shares(require("plush.core").filesizes(files), n)
  local lists = {}
  for p = 1, n do
    lists[p] = {}
    for j, i in ipairs(shares[p]) do lists[p][j] = files[i] end
  end
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
  local cmds = {}
  for p = 1, n do
    local list = ("%s/wordcount_share_%d"):format(dir, p)
    local f = assert(io.open(list, "w"))
    f:write(table.concat(lists[p], "\n"), "\n")
    f:close()
    cmds[p] = ("'%s' '%s/wordcount_share.lua' '%s'"):format(lua, here, list)
  end
  return function()
    local ps, the = {}, 0
    for p = 1, n do ps[p] = assert(io.popen(cmds[p])) end
    for p = 1, n do
      local out = ps[p]:read("a")
      local ok = ps[p]:close()
      the = the + assert(ok and math.tointeger(tonumber(out)), "a share's count failed: " .. out)
    end
    return the
  end
end

-- combine and reduce: the sum of the counts
function M.sum(_, counts)
  local n = 0
  for i = 1, #counts do n = n + counts[i] end
  return n
end

return M
