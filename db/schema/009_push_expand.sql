-- 009_push_expand: publishes are expanded into deliveries a chunk at a
-- time, each chunk its own short transaction, so that a channel of a
-- million devices neither holds one huge transaction (too big for Galera,
-- longer than the client's read timeout) nor waits to be expanded whole
-- before its first notification goes out.
--
-- to_expand is 1 while a publish still owes deliveries; expand_index is
-- the recipient being expanded and (expand_device, expand_client) the
-- last channel subscription done, in push_channel_subs' key order.  The
-- index finds the publishes due for expansion in deliver_at_ms order.
ALTER TABLE push_publishes
  ADD COLUMN IF NOT EXISTS to_expand    TINYINT      NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS expand_index INT          NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS expand_device VARCHAR(128) NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS expand_client VARCHAR(200) NOT NULL DEFAULT '',
  ADD INDEX IF NOT EXISTS publishes_expand (to_expand, deliver_at_ms);

UPDATE push_publishes SET to_expand = 1 WHERE state IN ('queued', 'scheduled');
