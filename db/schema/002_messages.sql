-- 002_messages: every published event, per-channel history serials, idempotency.
-- channel_heads hands out gap-free per-channel serials: the upsert takes the
-- row lock, so concurrent publishers to one channel queue on it (SPEC 5).
CREATE TABLE IF NOT EXISTS channel_heads (
  app_id      VARCHAR(64)  NOT NULL,
  channel     VARCHAR(200) NOT NULL,
  last_serial BIGINT       NOT NULL,
  PRIMARY KEY (app_id, channel)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS messages (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  app_id          VARCHAR(64)  NOT NULL,
  channel         VARCHAR(200) NOT NULL,
  serial          BIGINT       NOT NULL,
  message_serial  VARCHAR(32)  NOT NULL,
  name            VARCHAR(200) NOT NULL,
  data            MEDIUMTEXT   NOT NULL,
  socket_id       VARCHAR(64)  NULL,
  published_at_ms BIGINT       NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY messages_channel_serial (app_id, channel, serial),
  UNIQUE KEY messages_serial (app_id, message_serial),
  KEY messages_time (app_id, channel, published_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The durable half of SPEC 3 idempotency; memcached only caches it.
CREATE TABLE IF NOT EXISTS idempotency (
  app_id        VARCHAR(64)  NOT NULL,
  idem_key      VARCHAR(128) NOT NULL,
  request_hash  BINARY(32)   NOT NULL,
  status        INT          NOT NULL,
  response      MEDIUMTEXT   NOT NULL,
  created_at_ms BIGINT       NOT NULL,
  expires_at_ms BIGINT       NOT NULL,
  PRIMARY KEY (app_id, idem_key),
  KEY idempotency_expiry (expires_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
