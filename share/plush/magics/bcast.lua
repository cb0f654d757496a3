-- %bcast: send a local file to the engines.
--
--   %bcast FILE [NAME]     the file's contents become the string global
--                          NAME on every target engine (default: the
--                          file's name, letters, digits and _ kept)
--   %bcast --run FILE.lua  runs the file on every target engine instead
--                          (a set-up script: its functions and globals
--                          land in the engines' namespaces)
--
-- The file is read here, in the client: the engines need not see the
-- client's file system (they may be on other hosts).
local plush = require "plush"

local function slurp(path)
  local f, err = io.open(path, "rb")
  if not f then error(err, 0) end
  local s = f:read("a")
  f:close()
  return s
end

local function ident(path)
  local base = path:match("([^/]*)$"):gsub("%.[^.]*$", "")
  local name = base:gsub("[^%w_]", "_")
  if not name:match("^[%a_]") then name = "_" .. name end
  return name
end

local function range(ids)
  local s = {}
  for i, id in ipairs(ids) do s[i] = tostring(id) end
  return table.concat(s, ",")
end

plush.magic("bcast", function(line, shell)
  local run, rest = false, line
  if line:match("^%-%-run%s") then run, rest = true, line:match("^%-%-run%s+(.*)$") end
  local path, name = rest:match("^(%S+)%s*(%S*)$")
  if not path then error("usage: %bcast FILE [NAME] | %bcast --run FILE.lua", 0) end
  local data = slurp(path)
  local view = shell.rc:view(shell.targets or "all")
  local ids = view:ids()
  if run then
    view:execute(data, "@" .. path)
    shell.out(("ran %s on engine%s %s\n"):format(path, #ids > 1 and "s" or "", range(ids)))
    return
  end
  name = name ~= "" and name or ident(path)
  if not name:match("^[%a_][%w_.]*$") then error("not a global name: " .. name, 0) end
  view:push{[name] = data}
  shell.out(("%s (%d bytes) is %s on engine%s %s\n"):format(path, #data, name,
    #ids > 1 and "s" or "", range(ids)))
end, "send a local file to the engines: %bcast FILE [NAME], %bcast --run FILE.lua")
