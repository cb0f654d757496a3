-- One process of the word count's floor (bench/wordcount.lua, M.floor):
-- the serial count over the files named in the file arg[1], one a line;
-- prints its count of "the".
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local wc = dofile(here .. "/wordcount.lua")
local files = {}
for name in io.lines(arg[1]) do files[#files + 1] = name end
io.write(wc.count(files).the or 0, "\n")
