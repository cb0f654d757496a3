-- plush.errors: the error objects the client raises.
--
-- Every error is a table with a `kind` field ("RemoteError", ...) and a
-- metatable with __tostring, so `pcall` hands back something both a program
-- (`errors.is(e, "RemoteError")`, `e.engine`) and a person (`print(e)`)
-- can read.
local errors = {}

local classes = {}

local function where(e)
  if e.engine ~= nil then return " on engine " .. tostring(e.engine) end
  return ""
end

local function plain(e)
  return e.kind .. where(e) .. ": " .. tostring(e.message)
end

-- A remote traceback usually starts with "stack traceback:"; when the
-- engine put the message in front of it, do not print the message twice.
-- An error value that is not a string (error({code = 7})) is shown as
-- the table itself, not as "(error object is a table value)"; one of
-- plush's own error objects raised on the engine (engine.recv's
-- EngineError, a tuple space's BadRequest: a kind and a message) by the
-- message its __tostring gave there.
local function plush_error_value(v)
  return type(v.kind) == "string" and type(v.message) == "string"
end

-- Frames of plush's own Lua on the engine (its modules, in the source
-- tree or installed, and the magics it ships: a %prun's or a nested
-- client's wait) are not the user's: left out, as the shell leaves out
-- its own frames (PLUSH_DEBUG=1 keeps them).
local OWN = {"lua/plush/", "lua/5.4/plush/", "share/plush/magics/"}

local function user_traceback(tb)
  local d = os.getenv("PLUSH_DEBUG")
  if d ~= nil and d ~= "" and d ~= "0" then return tb end
  local keep = {}
  for line in (tb .. "\n"):gmatch("([^\n]*)\n") do
    local own = false
    if line:match("^%s") then
      for _, p in ipairs(OWN) do
        if line:find(p, 1, true) then own = true break end
      end
    end
    if not own then keep[#keep + 1] = line end
  end
  return table.concat(keep, "\n")
end

local function remote(e)
  local s = plain(e)
  if type(e.value) == "table" and not getmetatable(e.value) and
      not plush_error_value(e.value) then
    local ok, text = pcall(require("plush.pretty"), e.value)
    if ok then s = e.kind .. where(e) .. ": " .. text end
  end
  local tb = e.traceback
  if type(tb) == "string" and tb ~= "" then
    local msg = tostring(e.message)
    if tb:sub(1, #msg) == msg then tb = tb:sub(#msg + 1):gsub("^\n", "") end
    tb = user_traceback(tb)
    if tb ~= "" and tb ~= "stack traceback:" then s = s .. "\n" .. tb end
  end
  return s
end

local function composite(e)
  local lines = {("CompositeError: %d tasks failed"):format(#e.errors)}
  for _, err in ipairs(e.errors) do
    local msg = type(err) == "table" and err.message or tostring(err)
    local tag
    if type(err) == "table" and err.engine ~= nil then
      tag = "[engine " .. tostring(err.engine) .. "] "
    else
      tag = "[" .. (type(err) == "table" and err.kind or "error") .. "] "
    end
    lines[#lines + 1] = tag .. require("plush.util").first_line(msg)
  end
  return table.concat(lines, "\n")
end

local function local_error(e)
  if e.traceback then return tostring(e.message) .. "\n" .. e.traceback end
  return tostring(e.message)
end

local function define(kind, default, tostr)
  local mt = {__name = "plush." .. kind, __tostring = tostr or plain}
  local class = setmetatable({kind = kind, mt = mt}, {
    __call = function(_, fields)
      local e = fields or {}
      e.kind = kind
      if e.message == nil then e.message = default end
      return setmetatable(e, mt)
    end,
    __tostring = function() return kind end,
  })
  mt.__index = class
  classes[kind] = class
  errors[kind] = class
  return class
end

-- The task raised: engine, message, traceback, chunk, line, value.
define("RemoteError", "remote error", remote)
-- Several tasks of one call failed: errors, in target order.
define("CompositeError", "several tasks failed", composite)
-- The engine died or left before answering, or the controller went away.
define("EngineError", "engine died")
-- The task ran out of time, or a wait did.
define("TimeoutError", "timed out")
-- The controller refused a request (unknown target, unknown task id, ...).
define("BadRequest", "bad request")
-- A Deferred named in `after` failed: dependency (its id), error.
define("DependencyError", "a dependency failed")
-- A Lua error raised inside a Deferred callback: message, traceback, value.
define("CallbackError", "error in callback", local_error)
-- Ctrl-C while the client waited; the engines were sent an interrupt. (A
-- request that Ctrl-C cancelled, a tuple-space take, says which.)
define("Interrupted", "interrupted", function(e) return tostring(e.message) end)

--[[
  The one gateway for user callbacks (Deferred callbacks and errbacks,
  output handlers, rc.on_event): errors.call(fn, ...) runs fn under xpcall
  with this handler, as luv's cb_pcall does. A Lua error becomes a
  CallbackError with the local traceback; an error object (a remote error
  re-raised by a callback) passes unchanged. What nobody can be told of
  goes to plush.deferred.on_unhandled.
]]
function errors.handler(e)
  if type(e) == "table" then return e end
  return classes.CallbackError{
    message = tostring(e),
    traceback = debug.traceback(nil, 2),
    value = e,
  }
end

function errors.call(fn, ...)
  return xpcall(fn, errors.handler, ...)
end

-- True when `e` is a plush error of `kind` (a kind name or a class).
function errors.is(e, kind)
  if type(kind) == "table" then kind = kind.kind end
  local class = classes[kind]
  return class ~= nil and type(e) == "table" and getmetatable(e) == class.mt
end

-- True when `e` is any plush error object.
function errors.is_error(e)
  if type(e) ~= "table" then return false end
  local class = classes[rawget(e, "kind")]
  return class ~= nil and getmetatable(e) == class.mt
end

local by_status = {
  error = "RemoteError",
  engine = "EngineError",
  timeout = "TimeoutError",
  badreq = "BadRequest",
}

--[[
  The error object for a reply whose status is not "ok". `payload` is the
  reply's table (see design.md, "Messages"); `engine` the frame's engine,
  used when the payload does not name one.
]]
function errors.from_reply(status, payload, engine)
  local p = type(payload) == "table" and payload or {}
  local kind = by_status[status]
  local message = p.message
  if type(payload) == "string" then message = payload end
  if kind == "RemoteError" and p.kind == "DependencyError" then
    kind = "DependencyError"
  elseif not kind then
    kind = "EngineError"
    message = ("unexpected reply status '%s': %s"):format(
      tostring(status), tostring(message))
  end
  local e = {
    engine = p.engine ~= nil and p.engine or engine,
    message = message,
  }
  if kind == "RemoteError" then
    e.traceback, e.chunk, e.line, e.value = p.traceback, p.chunk, p.line, p.value
    e.started, e.completed = p.started, p.completed
  elseif kind == "EngineError" and p.left == true then
    e.left = true -- the engine had left when the controller routed the task
  end
  return classes[kind](e)
end

return errors
