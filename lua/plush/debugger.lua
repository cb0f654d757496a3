-- plush.debugger: %debug, the post-mortem debugger, and the source of
-- functions typed in the shell or run on the engines (??name).
--
-- An engine keeps the frames of its last failed call (engines/
-- engine_debug.c: registry["plush.debug"]) and the chunks it ran
-- (registry["plush.chunks"]). `frames_fn` below runs where those frames
-- are: sent to an engine with `apply` (so it uses nothing but the
-- engine's globals and its own upvalues, which travel with it), or called
-- here on the frames the shell's message handler kept of a local error
-- (capture(), the same layout). It answers with text only: values are
-- shown where they live, so that none has to travel.
local core = require "plush.core"
local util = require "plush.util"

local debugger = {}

local MAXLEVELS, MAXVARS, MAXCHUNKS, CHUNKBYTES = 32, 64, 256, 4 * 1024 * 1024

-- ---- what runs where the frames are --------------------------------

local frames_fn
do
  -- a value as one line of text, read where it lives (no metamethod
  -- but __tostring, and that one under pcall)
  local function show(v, depth)
    local t = type(v)
    if t == "string" then
      local s = v
      if #s > 200 then s = s:sub(1, 197) .. "..." end
      return (string.format("%q", s):gsub("\\\n", "\\n"))
    end
    if t == "table" and (depth or 0) < 2 and not getmetatable(v) then
      local parts, n, i = {}, 0, 1
      while rawget(v, i) ~= nil and n < 16 do
        n = n + 1
        parts[n] = show(rawget(v, i), (depth or 0) + 1)
        i = i + 1
      end
      local k, x = next(v)
      while k ~= nil and n < 16 do
        if not (math.type(k) == "integer" and k >= 1 and k < i) then
          n = n + 1
          local key = type(k) == "string" and k:match("^[%a_][%w_]*$") and k
            or "[" .. show(k, 2) .. "]"
          parts[n] = key .. " = " .. show(x, (depth or 0) + 1)
        end
        k, x = next(v, k)
      end
      if k ~= nil then parts[n + 1] = "..." end
      local text = "{" .. table.concat(parts, ", ") .. "}"
      if #text > 240 then text = string.sub(text, 1, 236) .. "...}" end
      return text
    end
    local ok, s = pcall(tostring, v)
    return ok and type(s) == "string" and s or ("<" .. t .. ">")
  end

  local function vars(names, vals)
    local out = {}
    for i = 1, (vals and vals.n or 0) do out[i] = {names[i], show(vals[i])} end
    return out
  end

  -- the rest of a function's dump after its source name
  local function body(d, src)
    local _, e = string.find(d, src, 1, true)
    return e and string.sub(d, e + 1)
  end

  -- The text of the chunk `fn` was compiled from, among the kept ones:
  -- the chunk whose compiled form holds fn's very prototype (a nested
  -- prototype is dumped with its source name left out: one byte 0x80).
  local function chunk_of(fn, chunks)
    local info = debug.getinfo(fn, "S")
    local src = info.source
    if src:sub(1, 1) ~= "=" and src:sub(1, 1) ~= "@" then return src end
    if not chunks then return nil end
    local ok, d = pcall(string.dump, fn)
    local r = ok and body(d, src)
    if not r then return nil end
    for i = chunks.n or #chunks, 1, -1 do
      local c = chunks[i]
      if c and c.name == src then
        local cf = load(c.code, c.name, "t", {})
        local cd = cf and string.dump(cf)
        if cd and (body(cd, src) == r or string.find(cd, "\128" .. r, 1, true)) then
          return c.code
        end
      end
    end
  end

  -- {first = line, lines = {...}} of fn's source, or nil and why
  local function lines_of(fn, chunks)
    local info = debug.getinfo(fn, "S")
    if info.what == "C" then return nil, "a C function: no source" end
    local text
    local file = info.source:match("^@(.*)$")
    if file then
      local h = io.open(file)
      if not h then return nil, "cannot open " .. file end
      text = h:read("a")
      h:close()
    else
      text = chunk_of(fn, chunks)
      if not text then return nil, "no source kept for " .. info.short_src end
    end
    local all, n = {}, 0
    for l in (text .. "\n"):gmatch("([^\n]*)\n") do
      n = n + 1
      all[n] = l
    end
    local first = info.linedefined > 0 and info.linedefined or 1
    local last = info.linedefined > 0 and info.lastlinedefined or n
    local out = {}
    for i = first, math.min(last, n) do out[#out + 1] = all[i] end
    return {first = first, lines = out}
  end

  -- the frame's scope: its locals (the last of a name wins), its
  -- upvalues, then its _ENV (or the globals)
  local function scope(f)
    local box = {}
    for i = 1, (f.uvals and f.uvals.n or 0) do box[f.unames[i]] = {f.uvals[i]} end
    for i = 1, (f.lvals and f.lvals.n or 0) do box[f.lnames[i]] = {f.lvals[i]} end
    local genv = box._ENV and box._ENV[1] or _ENV
    return setmetatable({}, {
      __index = function(_, k)
        local b = box[k]
        if b then return b[1] end
        return genv[k]
      end,
      __newindex = function(_, k, v)
        local b = box[k]
        if b then b[1] = v else genv[k] = v end
      end,
    })
  end

  -- (cap, chunks, op, a): cap and chunks nil on an engine (its registry's)
  local function impl(cap, chunks, op, a, b)
    if cap == nil then
      local reg = debug.getregistry()
      cap, chunks = reg["plush.debug"], reg["plush.chunks"]
    end
    if op == "fsource" then -- ??name: a function, or a dotted path in the globals
      local v = a
      if type(a) == "string" then
        v = _ENV
        for part in string.gmatch(a, "[^.:]+") do
          if type(v) ~= "table" then return nil end
          v = rawget(v, part)
        end
      end
      if type(v) ~= "function" then return nil end
      local src = lines_of(v, chunks)
      return src and table.concat(src.lines, "\n")
    end
    if type(cap) ~= "table" then return nil end
    if op == "frames" then
      local out = {n = cap.n, more = cap.more, err = type(cap.err) == "string" and cap.err
        or show(cap.err)}
      for i = 1, cap.n do
        local f = cap[i]
        out[i] = {what = f.what, name = f.name, namewhat = f.namewhat,
          short_src = f.short_src, currentline = f.currentline,
          linedefined = f.linedefined, locals = vars(f.lnames, f.lvals),
          upvalues = vars(f.unames, f.uvals), varargs = vars({}, f.va)}
      end
      return out
    end
    local f = cap[a]
    if type(f) ~= "table" then return {ok = false, text = "no frame " .. tostring(a)} end
    if op == "source" then
      if f.what == "C" then return {ok = false, text = "a C function: no source"} end
      local src, why = lines_of(f.func, chunks)
      if not src then return {ok = false, text = why} end
      return {ok = true, first = src.first, lines = src.lines}
    elseif op == "eval" then
      local env = scope(f)
      local fn, err = load("return " .. b, "=debug", "t", env)
      if not fn then fn, err = load(b, "=debug", "t", env) end
      if not fn then return {ok = false, text = err} end
      local va = f.va or {n = 0}
      local r = table.pack(pcall(fn, table.unpack(va, 1, va.n)))
      if not r[1] then return {ok = false, text = type(r[2]) == "string" and r[2] or show(r[2])} end
      local parts = {}
      for i = 2, r.n do parts[i - 1] = show(r[i]) end
      return {ok = true, text = table.concat(parts, ", "), n = r.n - 1}
    end
  end

  -- All of it under pcall: nothing it meets (an interrupt, say) may
  -- become the engine's next error, which would replace the kept frames.
  frames_fn = function(...)
    local r = table.pack(pcall(impl, ...))
    if r[1] then return r[2] end
    return {ok = false, text = tostring(r[2])}
  end
end

-- ---- local errors and chunks ---------------------------------------

-- The chunks typed in the shell (name "=stdin"), for ??name; bounded as
-- the engine's.
local chunks = {n = 0}
local chunk_bytes = 0

function debugger.keep_chunk(code, name)
  if type(code) ~= "string" or #code > CHUNKBYTES then return end
  chunks.n = chunks.n + 1
  chunks[chunks.n] = {code = code, name = name}
  chunk_bytes = chunk_bytes + #code
  while chunks.n > MAXCHUNKS or chunk_bytes > CHUNKBYTES do
    chunk_bytes = chunk_bytes - #chunks[1].code
    table.remove(chunks, 1)
    chunks.n = chunks.n - 1
  end
end

-- The source of a function typed here (or loaded from a string), or nil.
function debugger.source_of(f)
  if type(f) ~= "function" then return nil end
  return frames_fn({n = 0}, chunks, "fsource", f)
end

-- The frames of a local error, in the engine's layout: taken by the
-- shell's message handler (`level` 1 is its caller). Frames of the
-- shell's own file end it.
local pending

function debugger.capture(err, level, stop_src)
  local cap = {err = err, n = 0}
  level = level + 1
  while true do
    local info = debug.getinfo(level, "nSlf")
    if not info or (stop_src and info.short_src == stop_src) then break end
    if cap.n == MAXLEVELS then
      cap.more = true
      break
    end
    local f = {what = info.what, name = info.name, namewhat = info.namewhat,
      source = info.source, short_src = info.short_src, currentline = info.currentline,
      linedefined = info.linedefined, lastlinedefined = info.lastlinedefined, func = info.func,
      lnames = {}, lvals = {n = 0}, unames = {}, uvals = {n = 0}, va = {n = 0}}
    local i = 1
    while f.lvals.n < MAXVARS do
      local name, v = debug.getlocal(level, i)
      if not name then break end
      if name:sub(1, 1) ~= "(" then
        f.lvals.n = f.lvals.n + 1
        f.lnames[f.lvals.n], f.lvals[f.lvals.n] = name, v
      end
      i = i + 1
    end
    while f.va.n < MAXVARS do
      local name, v = debug.getlocal(level, -(f.va.n + 1))
      if not name then break end
      f.va.n = f.va.n + 1
      f.va[f.va.n] = v
    end
    while f.uvals.n < MAXVARS do
      local name, v = debug.getupvalue(info.func, f.uvals.n + 1)
      if not name then break end
      f.uvals.n = f.uvals.n + 1
      f.unames[f.uvals.n], f.uvals[f.uvals.n] = name ~= "" and name or "?", v
    end
    cap.n = cap.n + 1
    cap[cap.n] = f
    level = level + 1
  end
  while cap.n > 0 and cap[cap.n].what == "C" do -- the shell calling the chunk
    cap[cap.n] = nil
    cap.n = cap.n - 1
  end
  pending = cap
end

-- After a line failed: what %debug looks at next (sh.debug_last). A
-- magic's own failure (a usage mistake) is not the user's code: the
-- error before it stays the one to debug.
function debugger.note(sh, err, text)
  local cap = pending
  pending = nil
  local engines = {}
  local remote = type(err) == "table"
    and (err.kind == "RemoteError" or err.kind == "CompositeError")
  local magicline = type(text) == "string"
    and (text:match("^%s*[%%?!]") or text:match("%?%s*$"))
  if magicline and not remote then return end
  if remote then
    for _, e in ipairs(err.kind == "CompositeError" and err.errors or {err}) do
      if type(e) == "table" and e.kind == "RemoteError" and e.engine ~= nil then
        engines[#engines + 1] = e.engine
      end
    end
    cap = nil
  end
  sh.debug_last = {cap = cap, engines = engines, last = sh.last}
end


-- ---- the prompt ----------------------------------------------------

local function out(sh, text) (sh.out or io.write)(text .. "\n") end

local function paint(sh, style, text)
  return sh.paint and sh.paint(style, text) or text
end

local function frame_line(f, i, cur)
  local what
  if f.name then
    what = ("%s '%s'"):format(f.namewhat ~= "" and f.namewhat or "function", f.name)
  elseif f.what == "main" then
    what = "main chunk"
  elseif f.what == "C" then
    what = "?"
  else
    what = ("function <%s:%d>"):format(f.short_src, f.linedefined)
  end
  local at = f.what == "C" and "[C]" or (f.short_src .. ":" .. f.currentline)
  return ("%s#%d  %s in %s"):format(i == cur and "> " or "  ", i, at, what)
end

local help = [[
%debug commands (the frame of the error first; #1 is the innermost):
  u, up [N]        N frames up (towards the caller)
  d, down [N]      N frames down
  w, where, bt     the stack, > marking the current frame
  l, list          the source around the current line; ll: the whole function
  a, locals        the frame's locals, upvalues and varargs (...)
  p EXPR           EXPR's values, evaluated in the frame's scope
  EXPR or STMT     the same, for any other line (locals, upvalues and ... visible)
  q, quit          back to the shell (Ctrl-D too)]]

local function list(sh, call, f, cur, whole)
  local src = call("source", cur)
  if not src or not src.ok then
    out(sh, paint(sh, "note", src and src.text or "no source"))
    return
  end
  local lo, hi = src.first, src.first + #src.lines - 1
  if not whole and hi - lo > 10 then
    lo = math.max(lo, f.currentline - 5)
    hi = math.min(hi, lo + 10)
  end
  for n = lo, hi do
    local mark = n == f.currentline and "->" or "  "
    out(sh, ("%4d %s %s"):format(n, mark, src.lines[n - src.first + 1]))
  end
end

local function show_vars(sh, f)
  local any = false
  for _, v in ipairs(f.locals) do
    out(sh, ("  %s = %s"):format(v[1], v[2]))
    any = true
  end
  if #f.varargs > 0 then
    local t = {}
    for i, v in ipairs(f.varargs) do t[i] = v[2] end
    out(sh, "  ... = " .. table.concat(t, ", "))
    any = true
  end
  for _, v in ipairs(f.upvalues) do
    if v[1] ~= "_ENV" then -- the globals, nearly always
      out(sh, ("  %s = %s  (upvalue)"):format(v[1], v[2]))
      any = true
    end
  end
  if not any then out(sh, paint(sh, "note", "  no locals")) end
end

--[[
  The debugger's loop on one set of kept frames: `call(op, a, b)` runs
  frames_fn where they are; `label` says where ("engine 1", "here").
]]
function debugger.session(sh, call, label)
  local info = call("frames")
  if type(info) ~= "table" then
    out(sh, ("no error kept %s"):format(label == "here" and "here" or ("on " .. label)))
    return
  end
  out(sh, paint(sh, "error", ("%s: %s"):format(label, info.err)))
  if info.n == 0 then
    out(sh, paint(sh, "note", "no Lua frame of it was kept"))
    return
  end
  local cur = 1
  while cur < info.n and info[cur].what == "C" do cur = cur + 1 end
  out(sh, frame_line(info[cur], cur, cur))
  while true do
    local line = sh.ask("(debug) ")
    if line == nil then -- Ctrl-D
      out(sh, "")
      break
    end
    local cmd, rest = line:match("^%s*(%S*)%s*(.-)%s*$")
    local f = info[cur]
    if cmd == "q" or cmd == "quit" or cmd == "exit" then
      break
    elseif cmd == "u" or cmd == "up" or cmd == "d" or cmd == "down" then
      local n = rest == "" and 1 or math.tointeger(tonumber(rest))
      if not n then
        out(sh, paint(sh, "error", "usage: " .. cmd .. " [N]"))
      else
        local to = (cmd:sub(1, 1) == "u") and cur + n or cur - n
        if to > info.n then
          local more = info.more and " kept (older ones were not)" or ""
          out(sh, paint(sh, "note", "oldest frame" .. more))
        elseif to < 1 then
          out(sh, paint(sh, "note", "newest frame"))
        else
          cur = to
          out(sh, frame_line(info[cur], cur, cur))
        end
      end
    elseif cmd == "w" or cmd == "where" or cmd == "bt" then
      for i = 1, info.n do out(sh, frame_line(info[i], i, cur)) end
      if info.more then out(sh, paint(sh, "note", "  (deeper frames were not kept)")) end
    elseif cmd == "l" or cmd == "list" or cmd == "ll" then
      list(sh, call, f, cur, cmd == "ll")
    elseif cmd == "a" or cmd == "args" or cmd == "locals" then
      show_vars(sh, f)
    elseif cmd == "h" or cmd == "help" or cmd == "?" then
      out(sh, help)
    elseif cmd ~= "" then
      local expr = (cmd == "p" or cmd == "print") and rest or line
      if expr == "" then
        out(sh, paint(sh, "error", "usage: p EXPR"))
      else
        local got, r = pcall(call, "eval", cur, expr)
        if not got then r = {ok = false, text = tostring(r)} end
        if r.intr then out(sh, "") end -- after the ^C the terminal echoed
        if not r.ok then
          out(sh, paint(sh, "error", "*** " .. tostring(r.text)))
        elseif r.n and r.n > 0 then
          out(sh, r.text)
        elseif cmd == "p" or cmd == "print" then
          out(sh, "nil")
        end
      end
    end
  end
end

-- The engines whose task failed in the last %px (shell.last).
local function failed_engines(last)
  local ids = {}
  if type(last) ~= "table" or not last.deferred then return ids end
  local d = last.deferred
  for i, c in ipairs(d.deferreds or {d}) do
    if c:ready() and not c.ok then
      ids[#ids + 1] = (last.targets or {})[i] or c.metadata.engine
    end
  end
  return ids
end

local function remote_call(rc, id)
  return function(op, a, b)
    local d = rc:submit(id, {op = "apply", f = frames_fn, args = {n = 5, nil, nil, op, a, b}})
    local ok, r = pcall(d.get, d)
    if not ok and not d:ready() then
      -- Ctrl-C: the client interrupted the task; its answer follows
      ok, r = pcall(d.get, d, 10)
      if ok and type(r) == "table" then r.intr = true end
    end
    if not ok then error(r, 0) end
    return r
  end
end

local function debug_magic(line, sh)
  if not sh.ask then util.raise("%debug needs the interactive shell") end
  local target
  if line ~= "" then
    target = line:match("^%d+$") and math.tointeger(tonumber(line))
    if not target then util.raise("usage: %debug [ENGINE]") end
    local up = false
    for _, id in ipairs(sh.rc:ids()) do up = up or id == target end
    if not up then util.raise(("no engine %d (%%engines lists them)"):format(target)) end
  else
    local dl = sh.debug_last
    local engines
    if dl and dl.last == sh.last and dl.cap then
      return debugger.session(sh, function(op, a, b)
        return frames_fn(dl.cap, chunks, op, a, b)
      end, "here")
    elseif dl and dl.last == sh.last and #dl.engines > 0 then
      engines = dl.engines
    else
      engines = failed_engines(sh.last)
      if #engines == 0 and dl and dl.cap then -- the last %px went well
        return debugger.session(sh, function(op, a, b)
          return frames_fn(dl.cap, chunks, op, a, b)
        end, "here")
      end
    end
    if #engines == 0 then util.raise("%debug: no error to debug") end
    target = engines[1]
    if #engines > 1 then
      local t = {}
      for i, e in ipairs(engines) do t[i] = tostring(e) end
      out(sh, paint(sh, "note", ("engines %s failed: engine %s here (%%debug ENGINE for another)")
        :format(table.concat(t, ","), tostring(target))))
    end
  end
  local rc = sh.rc
  return debugger.session(sh, remote_call(rc, target), "engine " .. target)
end

--[[
  ??name on the engines: the source of the function each of `ids` holds
  under `path`, when it was defined by a chunk the engine ran. Returns
  {text, {ids}} groups, in the order first met.
]]
function debugger.remote_sources(rc, ids, path)
  local msg = {op = "apply", f = frames_fn, args = {n = 4, nil, nil, "fsource", path}}
  local ds = rc:submit(ids, msg)
  local groups, order = {}, {}
  local deadline = core.now() + 5
  for i, d in ipairs(ds) do
    local ok, text = pcall(d.get, d, math.max(0, deadline - core.now()))
    if ok and type(text) == "string" then
      if not groups[text] then
        groups[text] = {}
        order[#order + 1] = text
      end
      table.insert(groups[text], ids[i])
    elseif not d:ready() then
      d:_observe(function() end, true)
    end
  end
  local out_ = {}
  for i, text in ipairs(order) do out_[i] = {text, groups[text]} end
  return out_
end

function debugger.register(register)
  register("debug", debug_magic,
    "post-mortem debugger on the frames of the last error, here or on an engine "
    .. "(up, down, p EXPR, list, where, q): %debug [ENGINE]")
end

return debugger
