-- luarocks make plush-scm-1.rockspec [--tree DIR]: the Lua modules, the
-- plush.core C module and the programs (plush, plush-controller,
-- plush-engine) into a LuaRocks tree. Built with CMake; the libraries come
-- from the system (Debian: liblua5.4-dev libuv1-dev libsodium-dev
-- libsqlite3-dev lua-cjson-dev, and lua-cjson at run time).
rockspec_format = "3.0"
package = "plush"
version = "scm-1"
source = {
   url = "git+file://.",
}
description = {
   summary = "An interactive parallel Lua shell: engines, a controller, clients, Deferreds",
   detailed = [[
plush runs many Lua 5.4 namespaces (engines) behind one router (the
controller); the shell and plain Lua scripts send them code and values and
get results, output and errors back asynchronously, as Deferreds.
]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.4, < 5.5",
}
build_dependencies = {}
build = {
   type = "cmake",
   variables = {
      CMAKE_BUILD_TYPE = "RelWithDebInfo",
      CMAKE_INSTALL_PREFIX = "$(PREFIX)",
      CMAKE_INSTALL_BINDIR = "bin",
      PLUSH_LUA_INSTALL_DIR = "$(LUADIR)",
      PLUSH_CMOD_INSTALL_DIR = "$(LIBDIR)",
      PLUSH_BUILD_TESTS = "OFF",
   },
}
