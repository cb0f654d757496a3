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

-- "engine 1" / "engines 0, 2" / nil for none.
local function engines(ids)
  if #ids == 0 then return nil end
  return (#ids > 1 and "engines " or "engine ") .. table.concat(ids, ", ")
end

-- Ctrl-C during a remote wait: the client has interrupted the engines
-- running our tasks. Their answers are let in first, so that "interrupted"
-- is said only of the engines that were: one whose task goes on (in a C
-- call, or it caught the interrupt) is told apart, with its offer.
function Session_:interrupted_remote(px)
  local rc, ids, all = self.rc, {}, false
  if rc then ids, all = rc:_pending_engines() end
  local list = {}
  if rc and (#ids > 0 or all) then list = self:await_answers() end
  local going, done = {}, {}
  for _, st in ipairs(list) do going[st.id] = true end
  for _, id in ipairs(ids) do
    if not going[id] then done[#done + 1] = id end
  end
  local which = engines(done)
  if all and #list == 0 then which = "all engines" end
  if #list == 0 or which then
    self:say(self:paint("error", "interrupted") .. (which and (": " .. which) or "")
      .. self:px_others(px, done))
  end
  if #list > 0 then self:offer_restart(list) end
end

-- After the interrupted engines of a %px: those of its targets that had
-- answered before the Ctrl-C (finished, or failed: an engine that died),
-- whose results the summary does not show; %result does.
function Session_:px_others(last, stopped)
  local d = last and last.deferred
  if not d then return "" end
  local skip, ok, failed = {}, {}, {}
  for _, id in ipairs(stopped) do skip[id] = true end
  local ds, targets = d.deferreds or {d}, d.deferreds and d.targets or last.targets
  for i, e in ipairs(ds) do
    local id = targets[i]
    if math.type(id) == "integer" and not skip[id] and e:ready() then
      if e.ok then ok[#ok + 1] = id else failed[#failed + 1] = id end
    end
  end
  local parts = {}
  if #failed > 0 then parts[#parts + 1] = engines(failed) .. " failed" end
  if #ok > 0 then parts[#parts + 1] = engines(ok) .. " had finished" end
  if #parts == 0 then return "" end
  return "; " .. table.concat(parts, ", ") .. " (%result shows " .. ((#ok + #failed > 1)
    and "them" or "it") .. ")"
end

-- The engines whose interrupted task is still running, and why (the
-- engine's note: in a C call, or it caught the interrupt).
local function stuck(rc)
  local out, seen = {}, {}
  for _, rec in pairs(rc.pending) do
    local id = rec._note_engine or rec._engine
    if rec._note and id and not seen[id] then
      seen[id] = true
      out[#out + 1] = {id = id, why = rec._note:match("^[^:]*")}
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
function Session_:await_answers()
  local rc = self.rc
  local deadline = core.now() + M.interrupt_wait
  while next(rc.pending) ~= nil and core.now() < deadline do
    local n = 0
    for _ in pairs(rc.pending) do n = n + 1 end
    if #stuck(rc) >= n then break end
    if not pcall(rc.pump, rc, deadline - core.now()) then break end
  end
  return stuck(rc)
end

-- Says why each engine of list goes on, and restarts them on a second
-- Ctrl-C within M.restart_window s.
function Session_:offer_restart(list)
  local rc, ids = self.rc, {}
  for i, st in ipairs(list) do
    ids[i] = st.id
    self:say(self:paint("error", ("engine %d %s; Ctrl-C again within %g s restarts it"
      .. " \u{2014} its namespace will be lost"):format(st.id, st.why, M.restart_window)))
  end
  local deadline = core.now() + M.restart_window
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
