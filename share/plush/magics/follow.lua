-- %clients and %follow: the clients of the cluster, and another client's
-- work live (rc:clients(), rc:follow(); share/doc/models.md,
-- "Collaboration"; the magics themselves are in plush.follow).
--
--   %clients
--   %follow [CLIENT]     (Ctrl-C stops following)
local plush = require "plush"
local follow = require "plush.follow"

plush.magic("clients", follow.magic_clients,
  "the clients of the cluster: id, address, connected since, tasks: %clients")
plush.magic("follow", follow.magic_follow,
  "show another client's requests, output and results as they happen "
  .. "(all others when no CLIENT; Ctrl-C stops): %follow [CLIENT]")
