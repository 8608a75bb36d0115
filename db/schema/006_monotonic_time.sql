-- 006_monotonic_time: a channel's publish times never go backwards in
-- serial order.  Publishers stamp published_at_ms before the commit that
-- gives the serial, so two racing publishes (or two hosts with skewed
-- clocks) can commit in the other order; the trigger raises a time that
-- is older than the channel's newest to that newest.  Serial order is
-- then time order, and history bounded by time (SPEC 5 start/end) is an
-- exact serial range.
ALTER TABLE channel_heads ADD COLUMN IF NOT EXISTS last_published_ms BIGINT NOT NULL DEFAULT 0;

UPDATE channel_heads h SET last_published_ms = COALESCE((SELECT MAX(m.published_at_ms)
  FROM messages m WHERE m.app_id = h.app_id AND m.channel = h.channel), 0);

DELIMITER $$
CREATE OR REPLACE TRIGGER messages_serial BEFORE INSERT ON messages FOR EACH ROW
BEGIN
  DECLARE newest BIGINT;
  INSERT INTO channel_heads (app_id, channel, last_serial, last_published_ms)
    VALUES (NEW.app_id, NEW.channel, LAST_INSERT_ID(1), NEW.published_at_ms)
    ON DUPLICATE KEY UPDATE last_serial = LAST_INSERT_ID(last_serial + 1),
      last_published_ms = GREATEST(last_published_ms, VALUES(last_published_ms));
  SET NEW.serial = LAST_INSERT_ID();
  SELECT last_published_ms INTO newest FROM channel_heads
    WHERE app_id = NEW.app_id AND channel = NEW.channel;
  SET NEW.published_at_ms = newest;
END$$
DELIMITER ;
