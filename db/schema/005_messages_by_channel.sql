-- 005_messages_by_channel: cluster messages by (app, channel, serial), the
-- order history is read in; the surrogate id only costs writes.  The time
-- index stays for history bounded by time (SPEC 5 start/end): InnoDB
-- appends the primary key to it, so it also orders by serial.  Written to
-- be safe to run again if it completed without being recorded.
ALTER TABLE messages
  DROP COLUMN IF EXISTS id,
  DROP PRIMARY KEY,
  DROP INDEX IF EXISTS messages_channel_serial,
  ADD PRIMARY KEY (app_id, channel, serial);
