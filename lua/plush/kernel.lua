-- plush.kernel: plush as a Jupyter kernel (`plush kernel --connection-file F`)
-- and its kernelspec (`plush kernel install`).
--
-- The Jupyter messaging protocol 5.3 over ZeroMQ (plush.zmq, shell/lua_zmq.c):
-- shell and control are ROUTER sockets, iopub a PUB, stdin a ROUTER (io.read
-- in a cell asks the notebook), and the heartbeat a REP echoed on a thread of
-- its own so that the kernel stays alive while a cell runs. Every message is
-- signed with HMAC-SHA256 under the connection file's key; one whose
-- signature is wrong, or that is not a Jupyter message at all, is dropped
-- with a line on stderr and never acted on.
--
-- Cells run in the client with the whole shell (plush.kernel_cell). The
-- notebook's interrupt is SIGINT (interrupt_mode "signal"): the shell's own
-- Ctrl-C, which stops local code by a hook and the engines running the
-- cell's tasks through the client (shell/sigint.c).
local cjson = require "cjson"
local core = require "plush.core"
local util = require "plush.util"

local kernel = {}

local PROTOCOL = "5.3"
local DELIM = "<IDS|MSG>"

local function log(...)
  io.stderr:write("plush kernel: ", ...)
  io.stderr:write("\n")
  io.stderr:flush()
end
kernel.log = log

-------------------------------------------------------------------------------
-- JSON: lua-cjson 2.1.0 writes an empty table as {}; Jupyter wants [] where
-- it expects an array, so those go out as a marker replaced after encoding.
-------------------------------------------------------------------------------

local EMPTY = "\1plush-empty-array"
local EMPTY_JSON = cjson.encode(EMPTY):gsub("%p", "%%%0")

-- array(t): t, written as a JSON array even when empty.
function kernel.array(t)
  if next(t) == nil then return EMPTY end
  return t
end

function kernel.encode(v)
  return (cjson.encode(v):gsub(EMPTY_JSON, "[]"))
end

-- Text as valid UTF-8 (Jupyter decodes every message as UTF-8): a byte
-- that is not is replaced by U+FFFD.
function kernel.utf8(s)
  if utf8.len(s) then return s end
  local out, i = {}, 1
  while i <= #s do
    local len, bad = utf8.len(s, i)
    if len then
      out[#out + 1] = s:sub(i)
      break
    end
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = "\u{FFFD}"
    i = bad + 1
  end
  return table.concat(out)
end

local function iso_now()
  local t = core.time()
  local s = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. (".%06dZ"):format(math.floor((t - s) * 1e6))
end

-------------------------------------------------------------------------------
-- The wire
-------------------------------------------------------------------------------

local K = {}
K.__index = K

-- send(sock, idents, msg_type, content, parent, metadata): one signed
-- message (parent and metadata may be nil). idents: the ROUTER identities
-- to reply to, or iopub's topic.
function K:send(sock, idents, msg_type, content, parent, metadata)
  local h = kernel.encode{msg_id = self.zmq.uuid(), session = self.session,
    username = "plush", date = iso_now(), msg_type = msg_type, version = PROTOCOL}
  local p = kernel.encode(parent or {})
  local m = kernel.encode(metadata or {})
  local c = kernel.encode(content)
  local sig = self.key ~= "" and self.zmq.sign(self.key, h, p, m, c) or ""
  local parts = {}
  for _, id in ipairs(idents) do parts[#parts + 1] = id end
  for _, x in ipairs{DELIM, sig, h, p, m, c} do parts[#parts + 1] = x end
  local ok, err = sock:send(parts)
  if not ok then log("cannot send ", msg_type, ": ", tostring(err)) end
end

-- On iopub, with the request being served as parent.
function K:publish(msg_type, content, parent)
  self:send(self.iopub, {"kernel." .. msg_type}, msg_type, content, parent or self.parent)
end

function K:status(state, parent)
  self:publish("status", {execution_state = state}, parent)
end

local function decode(s)
  local ok, v = pcall(cjson.decode, s)
  if ok and type(v) == "table" then return v end
end

--[[
  parse(parts) -> msg, or nil and why: the identities, then the
  delimiter, the signature, header, parent header, metadata, content and
  buffers. The signature is checked (in constant time) before any JSON is
  read.
]]
function K:parse(parts)
  local d
  for i, p in ipairs(parts) do
    if p == DELIM then
      d = i
      break
    end
  end
  if not d then return nil, "a message that is not Jupyter's (no <IDS|MSG> delimiter)" end
  if #parts < d + 5 then return nil, "a message with missing parts" end
  local sig, h, p, m, c = table.unpack(parts, d + 1, d + 5)
  if self.key ~= "" and not self.zmq.verify(self.key, sig, h, p, m, c) then
    return nil, sig == "" and "an unsigned message" or "a message with a bad signature"
  end
  local msg = {idents = {table.unpack(parts, 1, d - 1)}, header = decode(h),
    parent = decode(p) or {}, metadata = decode(m) or {}, content = decode(c)}
  if not msg.header or type(msg.header.msg_type) ~= "string" or not msg.content then
    return nil, "a malformed message (header or content is not a JSON object)"
  end
  return msg
end

-------------------------------------------------------------------------------
-- Requests
-------------------------------------------------------------------------------

local handlers = {}

-- The reply goes back on the socket the request came on.
function K:reply(msg, content)
  local t = msg.header.msg_type:gsub("_request$", "_reply")
  self:send(msg.sock, msg.idents, t, content, msg.header)
end

function handlers.kernel_info_request(self, msg)
  self:reply(msg, {
    status = "ok", protocol_version = PROTOCOL,
    implementation = "plush", implementation_version = require("plush").version,
    language_info = {name = "lua", version = _VERSION:match("[%d.]+"),
      mimetype = "text/x-lua", file_extension = ".lua", pygments_lexer = "lua",
      codemirror_mode = "lua"},
    banner = ("plush %s on %s: Lua here, %%px on the engines; %%magic lists the magics")
      :format(require("plush").version, _VERSION),
    help_links = kernel.array{},
    debugger = false,
  })
end

function handlers.comm_info_request(self, msg)
  self:reply(msg, {status = "ok", comms = {}})
end

function handlers.shutdown_request(self, msg)
  self:reply(msg, {status = "ok", restart = msg.content.restart == true})
  self.done = true
end

-- Interrupts come as SIGINT (interrupt_mode "signal"). A request by
-- message is read only between requests, when nothing runs to interrupt.
function handlers.interrupt_request(self, msg)
  self:reply(msg, {status = "ok"})
end

function handlers.is_complete_request(self, msg)
  self:reply(msg, self.cells:is_complete(tostring(msg.content.code or "")))
end

function handlers.complete_request(self, msg)
  self:reply(msg, self.cells:complete(tostring(msg.content.code or ""),
    math.tointeger(msg.content.cursor_pos)))
end

function handlers.inspect_request(self, msg)
  self:reply(msg, self.cells:inspect(tostring(msg.content.code or ""),
    math.tointeger(msg.content.cursor_pos), msg.content.detail_level))
end

function handlers.history_request(self, msg)
  self:reply(msg, {status = "ok", history = kernel.array(self.cells:history(msg.content))})
end

function handlers.execute_request(self, msg)
  local c = msg.content
  if type(c.code) ~= "string" then
    self:reply(msg, {status = "error", ename = "BadRequest",
      evalue = "execute_request without code", traceback = kernel.array{}})
    return
  end
  self.cells.request = msg
  local reply = self.cells:execute(c.code, c.silent == true, c.store_history ~= false)
  self.cells.request = nil
  reply.user_expressions = {}
  reply.payload = kernel.array{}
  self:reply(msg, reply)
  if reply.status == "error" and c.stop_on_error ~= false then self:abort_queued() end
end

-- After an error, what was queued behind the cell is not run (ipykernel's
-- stop_on_error): each queued execute_request is answered "aborted".
function K:abort_queued()
  while true do
    local parts = self.shell:recv()
    if not parts then return end
    local msg, why = self:parse(parts)
    if not msg then
      log("dropped ", why)
    elseif msg.header.msg_type == "execute_request" then
      msg.sock = self.shell
      self:status("busy", msg.header)
      self:reply(msg, {status = "aborted", execution_count = self.cells.count})
      self:status("idle", msg.header)
    else
      self:handle(msg, self.shell)
    end
  end
end

function K:handle(msg, sock)
  local f = handlers[msg.header.msg_type]
  msg.sock = sock
  self.parent = msg.header
  self:status("busy", msg.header)
  if not f then
    log("ignored a ", msg.header.msg_type, " (not a request this kernel knows)")
  else
    local ok, err = xpcall(f, debug.traceback, self, msg)
    if not ok then
      -- a request the kernel could not serve (a field of the wrong type):
      -- said in the log and to the client, which would otherwise wait
      log(msg.header.msg_type, " failed: ", tostring(err))
      local why = kernel.utf8(tostring(err):match("^[^\n]*"))
      pcall(self.reply, self, msg, {status = "error", ename = "KernelError", evalue = why,
        traceback = {why}})
    end
  end
  self.cells:flush()
  self:status("idle", msg.header)
end

function K:serve(sock)
  local parts, err = sock:recv()
  if not parts then
    if err then log("receive: ", tostring(err)) end
    return
  end
  local msg, why = self:parse(parts)
  if not msg then
    log("dropped ", why)
    return
  end
  self:handle(msg, sock)
end

-------------------------------------------------------------------------------
-- The kernel's life
-------------------------------------------------------------------------------

local function endpoint(info, port)
  local sep = info.transport == "ipc" and "-" or ":"
  return ("%s://%s%s%s"):format(info.transport or "tcp", info.ip or "127.0.0.1", sep,
    tostring(port))
end

-- The connection file Jupyter wrote: ports, key and scheme.
function kernel.read_connection(path)
  local f, err = io.open(path)
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  local info = decode(text)
  if not info then return nil, path .. ": not a JSON object" end
  for _, k in ipairs{"shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"} do
    if info[k] == nil then return nil, ("%s: no %s"):format(path, k) end
  end
  local scheme = info.signature_scheme or "hmac-sha256"
  if info.key ~= nil and info.key ~= "" and scheme ~= "hmac-sha256" then
    return nil, ("%s: signature scheme '%s' (only hmac-sha256 is known)"):format(path,
      tostring(scheme))
  end
  if info.key ~= nil and type(info.key) ~= "string" then
    return nil, path .. ": the key is not a string"
  end
  return info
end

--[[
  run(connection_file, sess) -> exit status. `sess`: cli.lua's session
  (the lazy `rc`, the magics' shell table); closed by the caller.
]]
function kernel.run(path, sess)
  local ok, zmq = pcall(require, "plush.zmq")
  if not ok then
    util.raise("this plush was built without ZeroMQ (libzmq3-dev): no Jupyter kernel")
  end
  local info, err = kernel.read_connection(path)
  if not info then util.raise(err) end
  local self = setmetatable({zmq = zmq, key = info.key or "", session = zmq.uuid(),
    ctx = zmq.context()}, K)
  local function bind(kind, port)
    local s = self.ctx:socket(kind)
    local bound, berr = s:bind(endpoint(info, port))
    if not bound then util.raise(("cannot bind %s: %s"):format(endpoint(info, port), berr)) end
    return s
  end
  local r = table.pack(pcall(function()
    self.shell = bind("ROUTER", info.shell_port)
    self.control = bind("ROUTER", info.control_port)
    self.stdin = bind("ROUTER", info.stdin_port)
    self.iopub = bind("PUB", info.iopub_port)
    local hb, herr = self.ctx:heartbeat(endpoint(info, info.hb_port))
    if not hb then util.raise(("cannot bind %s: %s"):format(endpoint(info, info.hb_port), herr)) end
    self.cells = require("plush.kernel_cell").new(self, sess)
    self:status("starting", {})
    self:loop()
  end))
  if self.cells then self.cells:close() end
  self.ctx:close()
  if not r[1] then error(r[2], 0) end
  return 0
end

--[[
  Requests, control first; between them, what %block off work sends.
  Jupyter names its own process in JPY_PARENT_PID: when that process is
  gone (killed without shutting its kernels down), nobody can reach this
  kernel any more, and it leaves (as ipykernel's parent poller does),
  stopping an embedded cluster.
]]
function K:loop()
  local socks = {self.control, self.shell}
  local parent = math.tointeger(tonumber(os.getenv("JPY_PARENT_PID") or ""))
  local looked = core.now()
  while not self.done do
    local ready = self.zmq.poll(socks, math.min(self.cells:idle_timeout() or 1, 1))
    if ready[1] then
      self:serve(self.control)
    elseif ready[2] then
      self:serve(self.shell)
    else
      self.cells:idle()
    end
    if parent and parent > 1 and core.now() - looked >= 1 then
      looked = core.now()
      if not core.alive(parent) then
        log(("the Jupyter process that started this kernel (pid %d) is gone: leaving")
          :format(parent))
        self.done = true
      end
    end
  end
end

-------------------------------------------------------------------------------
-- plush kernel install
-------------------------------------------------------------------------------

-- `plush kernel --help` (cli.lua parses the command line).
kernel.help = [[
usage: plush kernel install [--user | --prefix P] [--name N]
                            [--display-name TEXT] [--profile P]
       plush kernel [--profile P] --connection-file FILE

install  writes the Jupyter kernelspec N (default "plush"): system-wide
         (/usr/local/share/jupyter/kernels), for you alone (--user:
         $JUPYTER_DATA_DIR, else ~/.local/share/jupyter/kernels) or under
         a prefix (P/share/jupyter/kernels). With --profile the kernel
         uses that profile's cluster (share/doc/jupyter.md).
kernel   runs the kernel itself, as Jupyter does with the kernelspec]]

-- Where kernelspecs go, as jupyter_client looks for them.
local function kernels_dir(opts)
  if opts.prefix then return opts.prefix .. "/share/jupyter/kernels" end
  if opts.user then
    local data = os.getenv("JUPYTER_DATA_DIR")
    if not data or data == "" then
      local xdg = os.getenv("XDG_DATA_HOME")
      if not xdg or xdg == "" then xdg = (os.getenv("HOME") or ".") .. "/.local/share" end
      data = xdg .. "/jupyter"
    end
    return data .. "/kernels"
  end
  return "/usr/local/share/jupyter/kernels"
end

--[[
  install{user =, prefix =, name =, display_name =, profile =, program =}
  -> the kernelspec's directory. Writes NAME/kernel.json.
]]
function kernel.install(opts)
  local name = opts.name or "plush"
  if not name:match("^[%w._-]+$") then
    util.raise(("a kernel name is letters, digits, '.', '_' and '-' (not '%s')"):format(name))
  end
  local dir = kernels_dir(opts) .. "/" .. name
  local argv = {opts.program, "kernel"}
  if opts.profile then
    argv[#argv + 1] = "--profile"
    argv[#argv + 1] = opts.profile
  end
  argv[#argv + 1] = "--connection-file"
  argv[#argv + 1] = "{connection_file}"
  local spec = {argv = argv, language = "lua", interrupt_mode = "signal",
    display_name = opts.display_name or (name == "plush" and "plush (Lua 5.4)"
      or ("plush (%s)"):format(name)),
    metadata = {debugger = false}}
  if not os.execute("mkdir -p " .. util.shquote(dir) .. " 2>/dev/null") then
    util.raise(("cannot create %s%s"):format(dir,
      (not opts.user and not opts.prefix) and " (--user installs in your home)" or ""))
  end
  local f, err = io.open(dir .. "/kernel.json", "w")
  if not f then util.raise(("cannot write the kernelspec: %s"):format(err)) end
  f:write(kernel.encode(spec):gsub("\\/", "/"), "\n")
  f:close()
  return dir
end

return kernel
