-- plush.client_output: a task's output in the client, which plush.client
-- installs on its Client (Client:_output, Client:_unmute) and whose `flush`
-- it calls when a task ends. Output frames are whatever one print or
-- io.write made; here they become lines, tagged and passed where the
-- view's `output` option says, or counted when the task was muted.
local deferred = require "plush.deferred"
local errors = require "plush.errors"

local M = {}

-- `client` is plush.client's module table (its _sigint flag), `Client`
-- the class the methods go on. Returns flush(rec, engine, id): the
-- unfinished lines of a pending task's record (its Deferred: the fields
-- plush.client's take names), passed on.
function M.install(Client, client)
  -- Where one complete line of a task's output goes: `output` is the view's
  -- option (nil/true/"print": our stdout/stderr with an "[engine N] " tag;
  -- false/"capture": only into d.stdout; a function: called with the line).
  local function emit(out, line, engine, stream, id)
    if out == nil or out == true or out == "print" then
      local f = stream == 2 and io.stderr or io.stdout
      f:write("[engine ", tostring(engine), "] ", line, "\n")
      f:flush()
    elseif type(out) == "function" then
      local ok, err = errors.call(out, line, engine, stream, id)
      if ok then return end
      -- Ctrl-C while a handler ran (the shell's hook raised in it): not the
      -- handler's failure; pump takes it as a Ctrl-C in its wait
      local v = type(err) == "table" and rawget(err, "value") or err
      if type(v) == "string" and v:match("interrupted$") then
        client._sigint = true
        return
      end
      deferred.on_unhandled(err, nil, "output handler")
    end
  end

  -- Output frames are whatever one print/io.write produced: keep the tail
  -- after the last newline until the rest of its line (or the reply) comes,
  -- so that tags are put at line starts only. The tail is a list of pieces
  -- (linear in the bytes, however they are cut), and a line that grows past
  -- max_line is passed on in pieces of that size.
  local max_line = 64 << 10

  local function pending_piece(rec, stream, text, engine)
    local partial = rec._partial
    if not partial then
      partial = {}
      rec._partial = partial
    end
    -- the engine it came from: a balanced task's lines flushed before
    -- its reply (Ctrl-C, a lost connection) are tagged with it
    partial.engine = engine
    local p = partial[stream]
    if not p then
      p = {n = 0, bytes = 0}
      partial[stream] = p
    end
    p.n = p.n + 1
    p[p.n] = text
    p.bytes = p.bytes + #text
  end

  local function take_partial(rec, stream)
    local partial = rec._partial
    local p = partial and partial[stream]
    if not p then return "" end
    partial[stream] = nil
    return table.concat(p, "", 1, p.n)
  end

  -- Stream 3 is the engine's note about a task ("in a C call", ...): kept
  -- on the record for whoever waits (the shell says it), and shown on
  -- stderr to other clients.
  local NOTE = 3

  function Client:_output(ev)
    local rec = self.pending[ev.id]
    local text, stream = ev.text or "", ev.stream or 1
    if stream == NOTE then
      if rec then rec._note, rec._note_engine = text, ev.engine
      else emit(self.output, text, ev.engine, 2, ev.id) end
      return
    end
    if rec and rec._muted then
      rec._muted.engine = ev.engine
      local _, lines = text:gsub("\n", "")
      rec._muted.lines = rec._muted.lines + lines
      rec._muted.bytes = rec._muted.bytes + #text
      return
    end
    if not rec then
      for line in (text:gsub("\n$", "") .. "\n"):gmatch("([^\n]*)\n") do
        emit(self.output, line, ev.engine, stream, ev.id)
      end
      return
    end
    rec:_append(stream == 2 and "stderr" or "stdout", text)
    -- the last newline, by plain finds: a pattern like ".*()\n" backtracks
    -- quadratically over a megabyte without one
    local last
    local pos = text:find("\n", 1, true)
    while pos do
      last = pos
      pos = text:find("\n", pos + 1, true)
    end
    if not last then
      pending_piece(rec, stream, text, ev.engine)
      local p = rec._partial[stream]
      if p.bytes >= max_line then
        emit(rec._output, take_partial(rec, stream), ev.engine, stream, ev.id)
      end
      return
    end
    local head = take_partial(rec, stream) .. text:sub(1, last - 1)
    for line in (head .. "\n"):gmatch("([^\n]*)\n") do
      emit(rec._output, line, ev.engine, stream, ev.id)
    end
    if last < #text then pending_piece(rec, stream, text:sub(last + 1), ev.engine) end
  end

  local function flush(rec, engine, id)
    if not rec._partial then return end
    engine = engine or rec._partial.engine
    for stream = 1, 2 do
      local rest = take_partial(rec, stream)
      if rest ~= "" then emit(rec._output, rest, engine, stream, id) end
    end
  end

  local function size(n)
    if n >= 1 << 20 then return ("%.1f MiB"):format(n / (1 << 20)) end
    if n >= 1 << 10 then return ("%.1f KiB"):format(n / (1 << 10)) end
    return ("%d bytes"):format(n)
  end

  -- A task muted by Ctrl-C ends: one line says what was cut.
  function Client:_unmute(rec, engine, id)
    local m = rec._muted
    if not m then return end
    rec._muted = nil
    engine = engine or m.engine
    local ok, lines, bytes = pcall(self.conn.unmute, self.conn, id)
    if ok then m.lines, m.bytes = m.lines + lines, m.bytes + bytes end
    if m.bytes > 0 then
      emit(rec._output, ("(%d line%s, %s of output dropped after the interrupt)")
        :format(m.lines, m.lines == 1 and "" or "s", size(m.bytes)), engine, 2, id)
    end
  end

  return flush
end

return M
