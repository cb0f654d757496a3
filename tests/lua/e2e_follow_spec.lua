-- End to end: collaboration (share/doc/models.md, "Collaboration"): two
-- real clients of a real cluster (PLUSH_TEST_FILE), one listing and
-- following the other's work.
local plush, file = require("real_cluster")("e2e follow")
if not plush then return end

describe("e2e follow", function()
  local a, b, aid, bid, e0

  setup(function()
    a = plush.connect{file = file, timeout = 20}
    b = plush.connect{file = file, timeout = 20}
    aid, bid = a.conn:cid(), b.conn:cid()
    e0 = a:ids()[1]
  end)
  teardown(function()
    if b then b:close() end
    a:close()
  end)

  -- a pumps until pred() holds (bounded: an event awaited, not a sleep)
  local function until_(pred)
    local deadline = plush.now() + 30
    while not pred() do
      assert(plush.now() < deadline, "timed out")
      a:pump(0.05)
    end
  end

  it("lists the clients: ids, address, since, running tasks, who asks", function()
    local d = b[e0]:async():execute("engine.recv(nil, 'follow-spec-never')")
    local mine
    until_(function()
      for _, c in ipairs(a:clients()) do
        if c.id == bid and c.running == 1 then mine = c end
      end
      return mine ~= nil
    end)
    local list = a:clients()
    -- the blocked task ends whatever the checks say: the next specs need e0
    b:interrupt(e0)
    assert.is_false((pcall(d.get, d, 30)))
    local ids, me = {}, {}
    local nounix = os.getenv("PLUSH_NOUNIX")
    for _, c in ipairs(list) do
      ids[#ids + 1] = c.id
      if c.me then me[#me + 1] = c.id end
      -- both clients are this process, on the controller's Unix socket
      -- (on TCP with PLUSH_NOUNIX=1: a loopback address)
      if nounix and nounix ~= "" and nounix ~= "0" then
        assert.matches("^127%.0%.0%.1:%d+$", c.address)
      else
        assert.equal("local:" .. require("plush.core").getpid(), c.address)
      end
      assert.equal("float", math.type(c.since))
      assert.is_true(math.abs(c.since - os.time()) < 600)
    end
    assert.same({aid}, me)
    assert.is_truthy(#ids >= 2)
    for i = 2, #ids do assert.is_true(ids[i - 1] < ids[i]) end
    assert.equal(0, mine.queued)
  end)

  it("follows one client: its requests, output and replies, as they happen", function()
    local seen = {}
    assert.equal(bid, a:follow(bid, function(ev) seen[#seen + 1] = ev end))
    local me
    for _, c in ipairs(b:clients()) do if c.id == aid then me = c end end
    assert.equal(bid, me.follows)
    local d = b[e0]:with{block = false, output = false}:execute("print('hi') return 42, 'x'")
    assert.same({42, "x"}, {d:get(30)})
    local bad = b[e0]:async():execute("error('boom', 0)")
    assert.is_false((pcall(bad.get, bad, 30)))
    until_(function() return #seen >= 5 end)
    local describe_ = require("plush.follow").describe
    local lines = {}
    for i, ev in ipairs(seen) do
      assert.equal(bid, ev.client)
      lines[i] = describe_(ev)
    end
    assert.same({
      ("client %d: request %d on engine %d: exec print('hi') return 42, 'x'"):format(bid, d.id, e0),
      ("client %d [engine %d]: hi"):format(bid, e0),
      ("client %d: reply %d from engine %d: ok 42, \"x\""):format(bid, d.id, e0),
      ("client %d: request %d on engine %d: exec error('boom', 0)"):format(bid, bad.id, e0),
      ("client %d: reply %d from engine %d: error boom"):format(bid, bad.id, e0),
    }, lines)
    assert.equal("output", seen[2].what)
    assert.equal("hi\n", seen[2].data)
    assert.equal(1, seen[5].status)
    -- stopped: b's next work is not shown (the events would have come
    -- before the answer to a's next control request)
    assert.is_false(a:follow(false))
    b[e0]:execute("return 1")
    a:clients()
    assert.equal(5, #seen)
  end)

  it("follows every other client; a client that leaves is said to", function()
    local seen = {}
    assert.equal("all", a:follow(nil, function(ev) seen[#seen + 1] = ev end))
    b[e0]:execute("return 7")
    b:close()
    b = nil
    until_(function() return #seen >= 3 end)
    assert.same({"request", "reply", "left"}, {seen[1].what, seen[2].what, seen[3].what})
    assert.equal(("client %d left"):format(bid), require("plush.follow").describe(seen[3]))
    a:follow(false)
  end)

  it("refuses a client that is not connected, itself, a bad id", function()
    local ok, e = pcall(a.follow, a, 4000000)
    assert.is_false(ok)
    assert.is_true(plush.errors.is(e, "BadRequest"))
    assert.equal("follow: no client 4000000 is connected", e.message)
    e = select(2, pcall(a.follow, a, aid))
    assert.equal("follow: a client cannot follow itself", e.message)
    ok, e = pcall(a.follow, a, "x")
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'follow' %(client id, nil or false expected, "
      .. "got string%)", e)
  end)
end)
