-- plush: the client library of the plush parallel Lua shell.
--
--   local plush = require "plush"
--   local rc = plush.connect()
--   rc:view():execute("return engine.id")   --> {0, 1, 2, 3}
--
-- See share/doc/lua-api.md.
local core = require "plush.core"
local cluster = require "plush.cluster"
local deferred = require "plush.deferred"
local errors = require "plush.errors"
local magic = require "plush.magic"
local util = require "plush.util"

local plush = {
  version = "0.1.0",
  cluster = cluster,
  deferred = deferred,
  errors = errors,
  pretty = require "plush.pretty",
  progress = require "plush.progress",
  now = core.now,
  array = require "plush.array",
}

local connect_opts = {
  file = true, profile = true, timeout = true, n = true, embedded = true,
  start_timeout = true, output = true,
  threads = true, memory_limit = true, log = true, -- plush.threads
}

-- connect{file =, profile =, timeout =, n =, embedded =} -> Client
function plush.connect(opts)
  opts = util.check_opts(opts, 1, "connect", connect_opts)
  util.check(opts.file, 1, "connect", "string", "nil")
  if opts.threads ~= nil then return require("plush.threads").connect(opts) end
  return cluster.connect(opts)
end

-- plush.tuplespace(rc [, name]): Linda's tuple space (share/doc/models.md)
local tuplespace = require "plush.tuplespace"
plush.tuplespace = tuplespace.new
plush.ANY = tuplespace.ANY
plush.type = tuplespace.type

plush.gather_results = deferred.gather
plush.wait_all = deferred.wait_all
plush.as_completed = deferred.as_completed
plush.fail = deferred.fail

-- plush.RemoteError etc.: the error classes (callable constructors whose
-- tostring is the kind name), for errors.is and for raising.
for _, kind in ipairs{"RemoteError", "CompositeError", "EngineError",
    "TimeoutError", "BadRequest", "DependencyError", "CallbackError",
    "Interrupted"} do
  plush[kind] = errors[kind]
end
plush.is_error = errors.is

-- plush.magic(name, fn [, help]) registers a magic; plush.magic.run,
-- .handle, .load_dir ... are the interpreter's functions.
plush.magic = setmetatable({}, {
  __index = magic,
  __call = function(_, name, fn, help) return magic.register(name, fn, help) end,
})

return plush
