-- plush.tuplespace: Linda's tuple space, kept by the controller (see
-- share/doc/models.md). The same space is the global `tuples` on engines.
--
--   local ts = plush.tuplespace(rc)          -- the cluster's default space
--   local d = plush.tuplespace(rc, "jobs", {durable = true}) -- see below
--   ts:out{"task", 1, {x = 2}}
--   local t = ts:take{"result", plush.ANY, plush.type "number"}:get()
--
-- A tuple is a table whose fields 1..n (n = t.n, or #t) are matched; a
-- pattern has as many fields, each a value that must be equal (tables
-- compare by content), plush.ANY, or plush.type(name). Blocking calls
-- (take, read) return Deferreds; the others answer at once. A take is
-- answered before the controller's store commits its removal (a crash in
-- between can give that tuple out again); with {durable = true} only after.
local client = require "plush.client"
local errors = require "plush.errors"
local util = require "plush.util"

local M = {}

-- Sentinels that travel as they are (engines know them by their key).
M.ANY = {["plush.ANY"] = true}

local types = {["nil"] = true, boolean = true, number = true, string = true,
  table = true, ["function"] = true, integer = true, float = true}

function M.type(name)
  if not types[name] then
    util.raise(("plush.type: no type named %s (nil, boolean, number, string, "
      .. "table, function, integer, float)"):format(tostring(name)))
  end
  return {["plush.type"] = name}
end

local TS = {__name = "plush.TupleSpace"}
TS.__index = TS
TS.ANY, TS.type = M.ANY, M.type

-- new(rc [, name] [, opts]): opts.durable = true answers a take only once
-- the controller's store has committed its removal (models.md).
function M.new(rc, name, opts)
  if not client.is(rc) then
    util.argerror(1, "tuplespace", "a client (plush.connect()) expected, got " .. type(rc))
  end
  if type(name) == "table" and opts == nil then name, opts = nil, name end
  util.check(name, 2, "tuplespace", "string", "nil")
  if name and (#name < 1 or #name > 200) then
    util.argerror(2, "tuplespace", "a name is a string of 1 to 200 bytes")
  end
  util.check(opts, 3, "tuplespace", "table", "nil")
  local durable = false
  for k, v in pairs(opts or {}) do
    if k ~= "durable" then
      util.argerror(3, "tuplespace", ("unknown option '%s' (durable)"):format(tostring(k)))
    end
    if type(v) ~= "boolean" then
      util.argerror(3, "tuplespace", "durable is true or false, not a " .. type(v))
    end
    durable = v
  end
  -- durable travels in take requests only (true, else left out)
  return setmetatable({rc = rc, name = name or "default", durable = durable or nil}, TS)
end

function M.is(v) return getmetatable(v) == TS end

local function arity(t)
  if math.type(t.n) == "integer" then return t.n end
  return #t
end

-- The controller checks patterns too (engines send theirs unchecked);
-- here the error comes at the caller's line, before anything is sent.
local function check_pattern(p, fname)
  util.check(p, 1, fname, "table")
  for i = 1, arity(p) do
    local v = p[i]
    if type(v) == "function" then
      util.raise(("%s: pattern[%d] is a function, which equals nothing: use "
        .. "plush.ANY or plush.type \"function\""):format(fname, i))
    end
  end
end

local function check_timeout(timeout, fname)
  util.check(timeout, 2, fname, "number", "nil")
  if timeout and not (timeout >= 0 and timeout < 1e9) then
    util.argerror(2, fname, "a timeout is seconds, from 0")
  end
end

function TS:out(t)
  util.check(t, 1, "out", "table")
  self.rc:_ask{op = "ts_out", space = self.name, tuple = t}
  return true
end

local function now_or_nil(v)
  if type(v) == "table" then return v end
  return nil
end

function TS:try_take(p)
  check_pattern(p, "try_take")
  return now_or_nil(self.rc:_ask{op = "ts_take", space = self.name, pattern = p,
    durable = self.durable})
end

function TS:try_read(p)
  check_pattern(p, "try_read")
  return now_or_nil(self.rc:_ask{op = "ts_read", space = self.name, pattern = p})
end

-- The answer to a blocked take or read: the tuple, or nil, "timeout".
-- One that a Ctrl-C cancelled (Client:_interrupt_pending) fails with
-- Interrupted; should a take's tuple have been on its way already, it is
-- put back in its space (as an engine does): never lost.
local function settle(d, status, value)
  if status ~= "ok" then
    d:errback(errors.from_reply(status, value))
  elseif type(value) == "table" then
    d:callback(value)
  elseif value == "timeout" then
    d:callback(nil, "timeout")
  else
    d:errback(errors.RemoteError{message = "tuple space: the request ended: "
      .. tostring(value)})
  end
end

local function blocking(self, op, p, timeout, fname)
  check_pattern(p, fname)
  check_timeout(timeout, fname)
  local rc, space = self.rc, self.name
  return rc:_ctrl_deferred({op = op, space = space, pattern = p,
    wait = true, timeout = timeout, durable = op == "ts_take" and self.durable or nil},
    function(d, status, value, cancelled)
      if not cancelled then return settle(d, status, value) end
      if status == "ok" and type(value) == "table" and op == "ts_take" then
        -- the put back's failure, if any, is reported as an unhandled
        -- error; one that cannot even be sent fails the take with it
        local ok, e = pcall(rc._ctrl_deferred, rc, {op = "ts_out", space = space,
          tuple = value}, function(o, st, v)
            if st == "ok" then o:callback(true) else o:errback(errors.from_reply(st, v)) end
          end)
        if not ok then
          return d:errback(errors.RemoteError{message = "tuple space: a cancelled take's "
            .. "tuple could not be put back: " .. tostring(e), value = value})
        end
      end
      d:errback(errors.Interrupted{message = ("interrupted: the %s was cancelled")
        :format(fname)})
      -- the user's own Ctrl-C did it: no "unhandled error" report when the
      -- Deferred is collected unseen (a get still raises it)
      if rawget(d, "_unhandled") then d._unhandled = false end
    end, true)
end

-- take(pattern [, timeout]) -> Deferred of the tuple (removed from the
-- space), or of nil, "timeout".
function TS:take(p, timeout) return blocking(self, "ts_take", p, timeout, "take") end
-- read(pattern [, timeout]): the same, leaving the tuple in the space.
function TS:read(p, timeout) return blocking(self, "ts_read", p, timeout, "read") end

-- count([pattern]): how many tuples the space holds (that match).
function TS:count(p)
  if p ~= nil then check_pattern(p, "count") end
  return self.rc:_ask{op = "ts_count", space = self.name, pattern = p}
end

function TS:__tostring()
  return ("<plush.TupleSpace %s%s>"):format(self.name, self.durable and " durable" or "")
end

return M
