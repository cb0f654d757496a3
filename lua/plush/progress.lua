-- plush.progress: a progress bar for long waits on a terminal.
--
--   d:wait_interactive()      -- on demand, for any Deferred
--   progress.auto = true      -- the shell: blocking calls that take longer
--                             -- than `delay` seconds show the bar
--
-- The bar counts the tasks behind a Deferred (the chunks of a map, the
-- engines of a broadcast), updates in place on one line, and is erased when
-- the wait ends. Nothing is drawn when the output is not a terminal,
-- unless progress.sink is set: then each wait calls sink() for a function
-- that gets each line instead, the last with the final count (the Jupyter
-- kernel shows it as a display updated in place).
local core = require "plush.core"

local progress = {auto = false, delay = 0.5, out = io.stderr, fd = 2, sink = nil}

local function parts(d)
  return d.deferreds or {d}
end

local function count(ds)
  local done, failed = 0, 0
  for _, x in ipairs(ds) do
    if x:ready() then
      done = done + 1
      if x:state() == "error" then failed = failed + 1 end
    end
  end
  return done, failed
end

local function clock(s)
  if s ~= s or s == math.huge then return "?" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return ("%dh%02dm"):format(s // 3600, s % 3600 // 60) end
  if s >= 60 then return ("%dm%02ds"):format(s // 60, s % 60) end
  return ("%ds"):format(s)
end

-- One line: [#####.....] done/total  rate/s  ETA  failures.
function progress.line(done, total, elapsed, failed, width)
  width = width or 30
  local fill = total > 0 and math.floor(width * done / total) or width
  local rate = elapsed > 0 and done / elapsed or 0
  local eta = rate > 0 and (total - done) / rate or math.huge
  local s = ("[%s%s] %d/%d  %.1f/s  ETA %s"):format(("#"):rep(fill),
    ("."):rep(width - fill), done, total, rate, clock(eta))
  if failed > 0 then s = s .. ("  %d failed"):format(failed) end
  return s
end

-- Waits for d like d:wait(timeout), drawing the bar when the output is a
-- terminal and the wait lasts longer than `delay` seconds.
function progress.wait(d, timeout, delay)
  if d:ready() and not progress.sink then return true end
  if progress.sink then return progress.sink_wait(d, timeout, delay or 0) end
  if not core.isatty(progress.fd) then return d:wait(timeout) end
  delay = delay or 0
  local start = core.now()
  local deadline = timeout and start + timeout
  if delay > 0 and d:wait(timeout and math.min(delay, timeout) or delay) then
    return true
  end
  local ds, drawn = parts(d), false
  local out = progress.out
  while not d:ready() do
    local now = core.now()
    if deadline and now >= deadline then break end
    local done, failed = count(ds)
    out:write("\r\27[K", progress.line(done, #ds, now - start, failed))
    out:flush()
    drawn = true
    d:wait(deadline and math.min(0.1, deadline - now) or 0.1)
  end
  if drawn then
    out:write("\r\27[K")
    out:flush()
  end
  return d:ready()
end

-- progress.wait with the lines going to progress.sink, every 0.1 s, and
-- the last one once the wait ends (done or not).
function progress.sink_wait(d, timeout, delay)
  local sink, start = progress.sink(), core.now()
  local deadline = timeout and start + timeout
  if delay > 0 and d:wait(timeout and math.min(delay, timeout) or delay) then return true end
  local ds = parts(d)
  repeat
    local now = core.now()
    local done, failed = count(ds)
    sink(progress.line(done, #ds, now - start, failed))
    if d:ready() or (deadline and now >= deadline) then break end
    d:wait(deadline and math.min(0.1, deadline - now) or 0.1)
  until false
  return d:ready()
end

return progress
