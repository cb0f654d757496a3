-- plush.magic_session: the shell's numbered input and output (In[n],
-- Out[n], _, __, ___, as IPython's), %history, %rerun, %reset, and the
-- user's init.lua.
--
-- The interactive shell (plush.shell) numbers each chunk it runs
-- (number), keeps the values an expression line printed (record), and
-- gives the magics what they need through the shell table:
--   shell.In, shell.Out   this session's inputs and outputs by number
--   shell.count           the number of the chunk running now
--   shell.history_all()   every entry of the history file and this session,
--                         oldest first (absent: only In is known)
--   shell.rerun(text)     runs text as a line typed at the prompt
--   shell.confirm(question) the user's answer, nil when nobody can answer
-- Installed by plush.magic (install(magic, internals)).
local util = require "plush.util"

local M = {}

-- Starts numbering on `shell`: the globals In and Out of its env.
function M.start(shell)
  local env = shell.env or _G
  shell.In, shell.Out, shell.count = {}, {}, 0
  rawset(env, "In", shell.In)
  rawset(env, "Out", shell.Out)
end

-- A chunk is about to run: its number.
function M.number(shell, text)
  if not shell.In then M.start(shell) end
  shell.count = shell.count + 1
  shell.In[shell.count] = text
  return shell.count
end

-- The values a line printed (table.pack'ed): the first is Out[n], _;
-- the previous _ and __ become __ and ___.
function M.record(shell, r)
  if not shell.In or r.n == 0 or r[1] == nil then return end
  local env = shell.env or _G
  shell.Out[shell.count] = r[1]
  rawset(env, "___", rawget(env, "__"))
  rawset(env, "__", rawget(env, "_"))
  rawset(env, "_", r[1])
end

--[[
  "4", "2-5", "7-", "-3" (the last 3): the numbers they name among 1..last,
  in order; raises on anything else.
]]
function M.range(spec, last)
  local out = {}
  for w in spec:gmatch("%S+") do
    local a, b
    if w:match("^%d+$") then
      a = tonumber(w)
      b = a
    elseif w:match("^%d+%-%d*$") then
      a, b = w:match("^(%d+)%-(%d*)$")
      a, b = tonumber(a), tonumber(b) or last
    elseif w:match("^%-%d+$") then
      a, b = math.max(1, last - tonumber(w:sub(2)) + 1), last
    else
      util.raise(("not a range of input numbers: '%s' (N, N-M, N- or -K)"):format(w))
    end
    if a < 1 or b > last or a > b then
      util.raise(last < 1 and "no input yet"
        or ("no input %s here (this session has 1-%d)"):format(w, last))
    end
    for i = a, b do out[#out + 1] = i end
  end
  return out
end

-- "  12: text", continuation lines indented under the text.
local function numbered(n, text, width)
  local head = ("%" .. width .. "d: "):format(n)
  return head .. text:gsub("\n", "\n" .. (" "):rep(#head))
end

function M.install(magic, I)
  local say, paint = I.say, I.paint

  magic.register("history", function(line, shell)
    local nums, pattern = false, nil
    local rest = line
    while true do
      local w, after = rest:match("^(%-%a)%s*(.*)$")
      if not w then break end
      if w == "-n" then
        nums = true
      elseif w == "-g" then
        pattern, after = after, "" -- the rest of the line, spaces and all
      else
        util.raise(("%%history: unknown option %s (%%history [-n] [RANGE] [-g PATTERN])"):format(w))
      end
      rest = after
    end
    if not shell.In then util.raise("%history: only the interactive shell keeps its input") end
    local current = shell.count
    if pattern then
      -- every session's: the history file's entries and this session's
      local all = shell.history_all and shell.history_all() or {}
      if not shell.history_all then
        for i = 1, current do all[i] = shell.In[i] end
      end
      -- the %history line itself is the newest entry
      if #all > 0 and shell.In and all[#all] == shell.In[current] then all[#all] = nil end
      local width = #tostring(#all)
      local any = false
      for i, text in ipairs(all) do
        if text:find(pattern, 1, true) then
          any = true
          say(shell, nums and numbered(i, text, width) or text)
        end
      end
      if not any then say(shell, "no match") end
      return
    end
    local last = current - 1 -- not this %history line
    local list
    if rest == "" then
      list = {}
      for i = 1, last do list[i] = i end
    else
      list = M.range(rest, last)
    end
    local width = #tostring(math.max(last, 1))
    for _, i in ipairs(list) do
      say(shell, nums and numbered(i, shell.In[i], width) or shell.In[i])
    end
  end, "this session's input: %history [-n] [RANGE] (-n: numbered; RANGE: 4 2-5 7- -3);"
    .. " %history [-n] -g PATTERN: every session's entries that contain PATTERN (the rest of"
    .. " the line, as it is)")

  magic.register("rerun", function(line, shell)
    if not shell.rerun then util.raise("%rerun: only the interactive shell keeps its input") end
    local last = (shell.count or 0) - 1
    local list = line == "" and M.range(tostring(last), last) or M.range(line, last)
    for _, i in ipairs(list) do
      local text = shell.In[i]
      if text:match("^%s*%%rerun%f[%A]") then
        say(shell, paint(shell, "note", ("In[%d] is a %%rerun: skipped"):format(i)))
      else
        say(shell, paint(shell, "note", ("In[%d]: "):format(i)) .. text)
        shell.rerun(text)
      end
    end
  end, "run past input again: %rerun [N|N-M|-K ...] (alone: the line before)")

  magic.register("reset", function(line, shell)
    if line ~= "" and line ~= "-f" then util.raise("usage: %reset [-f]") end
    local v = I.current_view(shell):with{block = true}
    local ids = v:ids()
    local which = ("engine%s %s"):format(#ids == 1 and "" or "s", I.format_targets(ids))
    if line ~= "-f" then
      local answer = shell.confirm and shell.confirm(
        ("clear every global on %s (engine and the standard libraries stay)? [y/N] "):format(which))
      if answer == nil then
        util.raise("%reset: nobody to confirm it here: %reset -f clears without asking")
      end
      if not answer:match("^%s*[yY]") then
        say(shell, "nothing cleared")
        return
      end
    end
    local keep = {}
    for name in pairs(I.standard) do keep[name] = true end
    local counts = v:apply(function(kept)
      local gone = {}
      for k in next, _ENV do
        if not kept[k] then gone[#gone + 1] = k end
      end
      for _, k in ipairs(gone) do _ENV[k] = nil end
      -- what %debug kept of the last error holds values of the old namespace
      debug.getregistry()["plush.debug"] = nil
      return #gone
    end, keep)
    local n = 0
    for _, c in ipairs(counts) do n = n + c end
    say(shell, ("reset %s: %d name%s cleared"):format(which, n, n == 1 and "" or "s"))
  end, "clear the globals on the current targets, keeping engine and the standard"
    .. " libraries: %reset [-f] (-f: without asking)")
end

-- The interactive session's part (plush.shell's Session).
function M.install_session(Session, magic)
  -- %rerun's way to run a past line: as typed at the prompt, its values
  -- printed and kept (Out); an error ends the %rerun.
  function Session:rerun(text)
    if magic.handle(text, self.sh) then return end
    local values = table.pack(self:load(text)())
    self:print_values(values)
    M.record(self.sh, values)
  end

  -- A question for the user (%reset): the line answered, or nil when
  -- there is nobody to ask (piped input); "" after Ctrl-C / Ctrl-D.
  function Session:confirm(question)
    if not self.prompts then return nil end
    self.edit.arm(false)
    self.asking = question
    local ok, line = pcall(self.read_line, self, true)
    self.asking = nil
    self.edit.arm(true)
    if not ok then error(line, 0) end
    if type(line) ~= "string" then return "" end -- Ctrl-C, Ctrl-D: no
    return line
  end
end

--[[
  init_path() -> $XDG_CONFIG_HOME/plush/init.lua (~/.config/plush/init.lua).
  load_init(shell [, path]) runs it, if it exists, with `...` = shell (the
  magics' shell table) in the shell's globals; with `edit` (the line
  editor), Ctrl-C interrupts it as it does a line. Returns nil, or the
  one-line reason it failed.
]]
function M.init_path()
  local config = os.getenv("XDG_CONFIG_HOME")
  if not config or config == "" then config = (os.getenv("HOME") or ".") .. "/.config" end
  return config .. "/plush/init.lua"
end

function M.load_init(shell, path, edit)
  path = path or M.init_path()
  local f = io.open(path, "r")
  if not f then return nil end
  f:close()
  local chunk, err = loadfile(path, "t", shell.env or _G)
  local interrupted = false
  if chunk then
    if edit then edit.arm(true) end
    local ok, e = pcall(chunk, shell)
    if edit then
      edit.arm(false)
      interrupted = edit.interrupted() -- (then a line after the ^C echoed)
    end
    if ok then return nil end
    err = e
  end
  if type(err) ~= "string" then err = ("(error object is a %s value)"):format(type(err)) end
  return ("%serror in %s: %s"):format(interrupted and "\n" or "", path, (err:gsub("\n.*", "")))
end

return M
