-- 004_serial_trigger: every row inserted into messages takes the next
-- serial of its channel, in the same statement.  The channel_heads upsert
-- holds that row's lock until commit, so serials are gap-free per channel
-- however many workers and hosts publish at once (SPEC 5), and a whole
-- multi-row INSERT (a group commit of many publishes) is one round trip.
-- LAST_INSERT_ID(expr) carries the new value out of the upsert without a
-- second read of the row.
ALTER TABLE messages ALTER COLUMN serial SET DEFAULT 0;

DELIMITER $$
CREATE TRIGGER IF NOT EXISTS messages_serial BEFORE INSERT ON messages FOR EACH ROW
BEGIN
  INSERT INTO channel_heads (app_id, channel, last_serial)
    VALUES (NEW.app_id, NEW.channel, LAST_INSERT_ID(1))
    ON DUPLICATE KEY UPDATE last_serial = LAST_INSERT_ID(last_serial + 1);
  SET NEW.serial = LAST_INSERT_ID();
END$$
DELIMITER ;
