-- luacheck configuration for plush's Lua code.
std = "lua54"
max_line_length = 100
-- `self` unused in a method is normal
self = false

files["share/plush/magics"] = {read_globals = {"plush"}}

files["tests/lua"] = {
  std = "+busted",
  -- specs capture output by swapping io.stdout / io.stderr
  globals = {"io"},
  -- specs run code "in the engines" of the fake core, where these exist
  read_globals = {"engine", "mpi", "sleep"},
}

-- example scripts run under `plush run`: `plush` and `rc` are given, and
-- their task functions run in engine namespaces
files["scripts/examples"] = {read_globals = {"plush", "rc", "engine"}}
