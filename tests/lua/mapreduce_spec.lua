-- plush.mapreduce's client side without a cluster: how files are shared
-- out by size (the static share of more than 8 engines, and the bench's
-- word-count floor).
local mapreduce = require "plush.mapreduce"

describe("mapreduce.shares", function()
  it("deals the largest first, each to the share with the fewest bytes", function()
    -- 5 -> 1, 4 -> 2, 3 -> 2 (4 < 5), 2 -> 1 (5 < 7), 1 -> 1 (7 = 7: the first)
    assert.same({{1, 4, 2}, {3, 5}}, mapreduce.shares({5, 1, 4, 2, 3}, 2))
  end)

  it("keeps equal sizes in index order, and leaves extra shares empty", function()
    assert.same({{1}, {2}, {3}, {}}, mapreduce.shares({7, 7, 7}, 4))
    assert.same({{}}, mapreduce.shares({}, 1))
  end)

  it("follows an order given", function()
    -- 2 (size 2) -> 1, 1 (size 1) -> 2, 3 -> 2 (1 < 2)
    assert.same({{2}, {1, 3}}, mapreduce.shares({1, 2, 3}, 2, {2, 1, 3}))
  end)
end)
