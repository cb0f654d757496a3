--[[
  plush.follow: collaboration (share/doc/models.md, "Collaboration").
  rc:clients() lists the clients of the cluster; rc:follow(client, fn)
  has the controller copy another client's requests, output and replies
  to this one as they happen (EVENT frames, core/ctl_follow.c), shown by
  fn(ev) or printed one line each; rc:follow(false) stops.
]]
local util = require "plush.util"

local follow = {}

local core
do
  local ok, c = pcall(require, "plush.core")
  core = ok and type(c) == "table" and c or nil
end

-- clients(rc): {id, address, since, running, queued, follows, me}, by id.
function follow.clients(rc)
  return rc:_ask{op = "clients"}
end

local function one_line(s, max)
  s = tostring(s):gsub("\r?\n", " \u{21b5} ")
  if #s > max then s = s:sub(1, max - 3) .. "..." end
  return s
end

local function decode(data)
  if data == nil or not core or not core.decode then return nil end
  local ok, v = pcall(core.decode, data)
  return ok and v or nil
end

local function values(r)
  local pretty = require "plush.pretty"
  if type(r) ~= "table" then return "" end
  local out = {}
  for i = 1, r.n or #r do
    local ok, s = pcall(pretty, r[i])
    out[i] = ok and s or tostring(r[i])
  end
  return table.concat(out, ", ")
end

local STATUS = {[0] = "ok", "error", "engine error", "timeout", "bad request"}

--[[
  describe(ev): what a follow event says, as a line: "client 3: request
  12884901889 on engine 0: exec print(1)", "client 3 [engine 0]: 1",
  "client 3: reply 12884901889 from engine 0: ok 42", "client 3 left".
]]
function follow.describe(ev)
  local who = ("client %s"):format(tostring(ev.client))
  local lost = ev.dropped and (" (%d events lost before)"):format(ev.dropped) or ""
  local where = ev.engine and ("engine " .. tostring(ev.engine)) or "any engine"
  local size = ev.size and ("(%d bytes)"):format(ev.size)
  if ev.what == "left" then return who .. " left" .. lost end
  if ev.what == "output" then
    local text = ev.data and ev.data:gsub("\n$", "") or size
    return ("%s [%s]: %s%s"):format(who, where, text, lost)
  end
  local v = decode(ev.data)
  if ev.what == "request" then
    local what = size or "?"
    if type(v) == "table" then
      if v.op == "exec" then
        what = "exec " .. one_line(v.code, 200)
      elseif v.op == "apply" or v.op == "map" then
        local args = v.op == "apply" and values(v.args) or (tostring(v.n) .. " items")
        what = ("%s a function (%s)"):format(v.op, one_line(args, 120))
      elseif v.op == "push" then
        local names = {}
        for k in pairs(type(v.ns) == "table" and v.ns or {}) do names[#names + 1] = tostring(k) end
        table.sort(names)
        what = "push " .. table.concat(names, " ")
      elseif v.op == "pull" then
        what = "pull " .. table.concat(type(v.names) == "table" and v.names or {}, " ")
      else
        what = tostring(v.op)
      end
    end
    return ("%s: request %s on %s: %s%s"):format(who, tostring(ev.id), where, what, lost)
  end
  local status = STATUS[ev.status] or tostring(ev.status)
  local text = size or ""
  if type(v) == "table" then
    if ev.status == 0 then
      text = one_line(values(v.r), 200)
    else
      text = one_line(util.first_line(tostring(v.message)), 200)
    end
  end
  return ("%s: reply %s from %s: %s %s%s"):format(who, tostring(ev.id), where, status, text, lost)
end

-- follow(rc, client, fn): start (client: an id, nil for every other
-- client), or stop (client == false). Returns what the controller follows.
function follow.follow(rc, client, fn)
  if client ~= false and client ~= nil and math.type(client) ~= "integer" then
    util.argerror(1, "follow", "client id, nil or false expected, got " .. type(client))
  end
  util.check(fn, 2, "follow", "function", "nil")
  if client == false then
    local r = rc:_ask{op = "follow", stop = true}
    rc._on_follow = nil
    return r.following
  end
  local r = rc:_ask{op = "follow", client = client}
  rc._on_follow = fn or function(ev)
    io.stdout:write(follow.describe(ev), "\n")
    io.stdout:flush()
  end
  return r.following
end

-------------------------------------------------------------------------------
-- The magics %clients and %follow (registered by share/plush/magics/follow.lua)
-------------------------------------------------------------------------------

local function write(shell, s)
  (shell.out or io.write)(s .. "\n")
end

function follow.magic_clients(_, shell)
  for _, c in ipairs(shell.rc:clients()) do
    local follows = c.follows and ("  follows %s"):format(c.follows == "all" and "every client"
      or ("client " .. tostring(c.follows))) or ""
    write(shell, ("client %-3s %-21s since %s  %d running, %d queued%s%s"):format(
      tostring(c.id), tostring(c.address), os.date("%Y-%m-%d %H:%M:%S", math.floor(c.since)),
      c.running, c.queued, follows, c.me and "  (this shell)" or ""))
  end
end

function follow.magic_follow(line, shell)
  local arg = line:match("^%s*(%S*)%s*$")
  local id
  if arg == nil then util.raise("usage: %follow [CLIENT]") end
  if arg ~= "" then
    id = math.tointeger(tonumber(arg))
    if not id then
      util.raise(("%%follow: a client id is an integer, not %q (%%clients lists them)"):format(arg))
    end
  end
  local rc = shell.rc
  local following = rc:follow(id, function(ev)
    write(shell, follow.describe(ev))
  end)
  write(shell, ("following %s; Ctrl-C stops"):format(following == "all" and "every other client"
    or ("client " .. tostring(following))))
  local ok, e = pcall(function()
    while true do rc:pump() end
  end)
  rc:follow(false)
  if not ok and not require("plush.errors").is(e, "Interrupted") then error(e, 0) end
  write(shell, "stopped following")
end

return follow
