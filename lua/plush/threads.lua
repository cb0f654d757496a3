-- plush.threads: plush.connect{threads = n}, the controller and n engines
-- as threads of this process (shell/lua_threads.c): the same client, the
-- same frames and codec, linked by socketpairs, with no listening port.
-- See share/doc/models.md, "Engines as threads".
local core = require "plush.core"
local client = require "plush.client"
local util = require "plush.util"

local threads = {}

--[[
  connect{threads = n, timeout =, start_timeout =, memory_limit =, log =,
  output =} -> Client owning its in-process cluster: rc:close(), its
  garbage collection or the end of the Lua state stop the threads and
  join them.
]]
function threads.connect(opts)
  local n = opts.threads
  if math.type(n) ~= "integer" or n < 1 or n > 1024 then
    util.argerror(1, "connect", "threads: an integer from 1 to 1024 expected")
  end
  if opts.file or opts.profile or opts.n or opts.embedded ~= nil then
    util.argerror(1, "connect", "threads = n starts its own cluster: no file, "
      .. "profile, n or embedded with it")
  end
  local ok, cl = pcall(core.threads, n, {memory_limit = opts.memory_limit,
    timeout = opts.start_timeout, log = opts.log})
  if not ok then util.raise(util.strip_where(tostring(cl))) end
  local timeout = opts.timeout or 10
  local fd, key = cl:socket()
  local conn, err, name
  if fd then conn, err, name = core.connect(fd, nil, key, timeout) else err = key end
  if not conn then
    cl:stop()
    util.ok(nil, err, name)
  end
  local rc = client.new(conn, {timeout = timeout, output = opts.output,
    owned = {threads = cl}})
  rc.info = {host = "threads", port = n, profile = "in-process"}
  return rc
end

-- rc:close() of a Client that owns its threads: they stop and are joined.
function threads.stop_owned(rc)
  local cl = rc.owned.threads
  rc.owned = nil
  cl:stop()
  pcall(rc.conn.close, rc.conn)
end

return threads
