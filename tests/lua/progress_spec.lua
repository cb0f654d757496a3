-- plush.progress: the bar's text, and waits that fall back to plain waits
-- when the output is not a terminal.
local progress = require "plush.progress"

describe("progress", function()
  it("formats done/total, rate, ETA and failures", function()
    assert.equal("[###############...............] 5/10  2.5/s  ETA 2s",
      progress.line(5, 10, 2.0, 0))
    assert.equal("[##########] 10/10  1.0/s  ETA 0s  2 failed",
      progress.line(10, 10, 10.0, 2, 10))
    assert.equal("[..........] 0/7  0.0/s  ETA ?", progress.line(0, 7, 0, 0, 10))
    assert.equal("[#.........] 1/10  0.0/s  ETA 2h30m", progress.line(1, 10, 1000, 0, 10))
  end)
end)
