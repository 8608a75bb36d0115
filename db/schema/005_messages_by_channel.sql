-- 005_messages_by_channel: cluster messages by (app, channel, serial), the
-- order history is read in; the surrogate id and the time index cost every
-- publish an index update and serve no query.  Written to be safe to run
-- again if it completed without being recorded.
ALTER TABLE messages
  DROP COLUMN IF EXISTS id,
  DROP PRIMARY KEY,
  DROP INDEX IF EXISTS messages_channel_serial,
  DROP INDEX IF EXISTS messages_time,
  ADD PRIMARY KEY (app_id, channel, serial);
