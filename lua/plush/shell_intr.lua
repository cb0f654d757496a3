-- plush.shell_intr: the shell after Ctrl-C stopped a wait for the engines
-- (plush.shell installs these methods on its sessions). The client has
-- interrupted the engines running our tasks and muted their output; here
-- the user hears which, the answers are let in, and an engine that cannot
-- obey (in a C call, or it caught the interrupt: its note says) is
-- offered a restart on a second Ctrl-C.
local core = require "plush.core"
local errors = require "plush.errors"

local M = {
  interrupt_wait = 2,  -- seconds the interrupted tasks get to answer
  restart_window = 2,  -- seconds a second Ctrl-C restarts a stuck engine
}

local Session_ = {}

-- Ctrl-C during a remote wait: the client has interrupted the engines
-- running our tasks; say which, and let their "interrupted" replies in.
function Session_:interrupted_remote()
  local rc, seen, ids, all = self.rc, {}, {}, false
  for _, rec in pairs(rc and rc.pending or {}) do
    if rec.engine == nil then
      all = true
    elseif not seen[rec.engine] then
      seen[rec.engine] = true
      ids[#ids + 1] = rec.engine
    end
  end
  table.sort(ids)
  local which
  if all then
    which = "all engines"
  elseif #ids > 0 then
    which = (#ids > 1 and "engines " or "engine ") .. table.concat(ids, ", ")
  end
  self:say(self:paint("error", "interrupted") .. (which and (": " .. which) or ""))
  if rc and #ids + (all and 1 or 0) > 0 then self:await_interrupted() end
end

-- The engines whose interrupted task is still running, and why (the
-- engine's note: in a C call, or it caught the interrupt).
local function stuck(rc)
  local out, seen = {}, {}
  for _, rec in pairs(rc.pending) do
    local id = rec.note_engine or rec.engine
    if rec.note and id and not seen[id] then
      seen[id] = true
      out[#out + 1] = {id = id, why = rec.note:match("^[^:]*")}
    end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

--[[
  After Ctrl-C: up to M.interrupt_wait s for the interrupted tasks to
  answer. One that cannot (its engine is in a C call, or caught the
  interrupt and went on: the engine says so) is said, and a second
  Ctrl-C within M.restart_window s restarts its engine (rc:restart;
  a C call is ended with the engine's process, see engine.md).
]]
function Session_:await_interrupted()
  local rc = self.rc
  local deadline = core.now() + M.interrupt_wait
  while next(rc.pending) ~= nil and core.now() < deadline do
    local n = 0
    for _ in pairs(rc.pending) do n = n + 1 end
    if #stuck(rc) >= n then break end
    if not pcall(rc.pump, rc, deadline - core.now()) then break end
  end
  local list = stuck(rc)
  if #list == 0 then return end
  local ids = {}
  for i, s in ipairs(list) do
    ids[i] = s.id
    self:say(self:paint("error", ("engine %d %s; Ctrl-C again within %g s restarts it"
      .. " \u{2014} its namespace will be lost"):format(s.id, s.why, M.restart_window)))
  end
  deadline = core.now() + M.restart_window
  local again = false
  while core.now() < deadline and next(rc.pending) ~= nil do
    local ok, e = pcall(rc.pump, rc, deadline - core.now())
    if not ok then
      again = errors.is(e, "Interrupted")
      break
    end
  end
  if not again then return end
  if self.prompts then io.stdout:write("\n") end
  local ok, e = pcall(rc.restart, rc, ids)
  if not ok then
    self:say(self:paint("error", "cannot restart: " .. tostring(e)))
    return
  end
  self:say(self:paint("note", ("restarted %s %s: a fresh namespace"):format(
    #ids > 1 and "engines" or "engine", table.concat(ids, ", "))))
  pcall(rc.wait, rc, 5)
end

function M.install(Session, shell)
  for k, f in pairs(Session_) do Session[k] = f end
  shell.interrupt = M
end

return M
