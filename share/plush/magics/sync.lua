-- %sync: make a Lua module of the client's available on the engines.
--
--   %sync MODULE [MODULE...]
--
-- The module's source is found here (package.searchpath on the client's
-- package.path), sent to every target engine and installed there in
-- package.preload, so that require "MODULE" on an engine loads this
-- version, even when the engine is on a host without the file. A module
-- the engines had already required is forgotten first, so running %sync
-- again after editing the file brings the new version (the next require
-- loads it). C modules cannot travel: install those on the engine hosts.
local plush = require "plush"

-- Runs on each engine: travels as bytecode, uses only globals.
local function install(name, source, chunkname)
  local f, err = load(source, chunkname)
  if not f then error(err, 0) end
  package.preload[name] = f
  package.loaded[name] = nil
  return true
end

plush.magic("sync", function(line, shell)
  local names = {}
  for w in line:gmatch("%S+") do names[#names + 1] = w end
  if #names == 0 then error("usage: %sync MODULE [MODULE...]", 0) end
  local view = shell.rc:view(shell.targets or "all")
  for _, name in ipairs(names) do
    local path = package.searchpath(name, package.path)
    if not path then
      if package.searchpath(name, package.cpath) then
        error(name .. " is a C module: install it on the engine hosts", 0)
      end
      error("module " .. name .. " not found on package.path", 0)
    end
    local f = assert(io.open(path, "rb"))
    local source = f:read("a")
    f:close()
    view:apply(install, name, source, "@" .. path)
    shell.out(("%s (%s) synced to %d engine(s); require \"%s\" there loads it\n"):format(
      name, path, #view:ids(), name))
  end
end, "send a Lua module to the engines' package.preload: %sync MODULE...")
