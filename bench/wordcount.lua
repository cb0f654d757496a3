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

-- combine and reduce: the sum of the counts
function M.sum(_, counts)
  local n = 0
  for i = 1, #counts do n = n + counts[i] end
  return n
end

return M
