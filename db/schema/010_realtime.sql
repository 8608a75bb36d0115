-- 010_realtime: what the WebSocket layer (Pushpin -> sockudo-fcgi) needs.
-- A connection holds a lease, renewed by Pushpin's keep-alives; one whose
-- lease ran out (Pushpin restarted, or lost it) is swept with its
-- subscriptions by sockudo-pushd.
ALTER TABLE connections
  ADD COLUMN IF NOT EXISTS expires_at_ms BIGINT NOT NULL DEFAULT 0,
  ADD KEY IF NOT EXISTS connections_expiry (expires_at_ms);

-- User ids are compared byte for byte: utf8mb4_bin pads with spaces, so
-- "bob" and "bob " would be one presence member.
ALTER TABLE connections
  MODIFY user_id VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NULL;
ALTER TABLE channel_subscriptions
  MODIFY user_id VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NULL;

-- Where an app's webhooks go ('' = none).
ALTER TABLE apps ADD COLUMN IF NOT EXISTS webhook_url VARCHAR(500) NOT NULL DEFAULT '';

-- Webhooks waiting to be sent (Pusher's format, one body per row), written
-- in the transaction of the change they report, sent by sockudo-pushd.
CREATE TABLE IF NOT EXISTS webhooks (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  app_id        VARCHAR(64)  NOT NULL,
  body          MEDIUMTEXT   NOT NULL,
  attempts      INT          NOT NULL DEFAULT 0,
  next_at_ms    BIGINT       NOT NULL,
  created_at_ms BIGINT       NOT NULL,
  last_error    VARCHAR(200) NULL,
  PRIMARY KEY (id),
  KEY webhooks_due (next_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
