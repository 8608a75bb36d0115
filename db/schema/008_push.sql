-- 008_push: push notifications (SPEC 8): devices, their channel
-- subscriptions, sealed provider credentials, templates, publishes and
-- the per-device deliveries that sockudo-pushd works through.
CREATE TABLE IF NOT EXISTS push_devices (
  app_id        VARCHAR(64)  NOT NULL,
  device_id     VARCHAR(128) NOT NULL,
  client_id     VARCHAR(200) NULL,
  platform      ENUM('apns','fcm','web') NOT NULL,
  token         TEXT         NOT NULL,  -- web: the subscription JSON
  metadata      TEXT         NULL,
  state         ENUM('active','failed') NOT NULL DEFAULT 'active',
  failed_reason VARCHAR(200) NULL,
  created_at_ms BIGINT       NOT NULL,
  updated_at_ms BIGINT       NOT NULL,
  seq           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,  -- paging order
  PRIMARY KEY (app_id, device_id),
  UNIQUE KEY devices_seq (seq),
  KEY devices_client (app_id, client_id, seq),
  KEY devices_platform (app_id, platform, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A channel's subscribers: a device, or every device of a client
-- ('' in the column not used).
CREATE TABLE IF NOT EXISTS push_channel_subs (
  app_id        VARCHAR(64)  NOT NULL,
  channel       VARCHAR(200) NOT NULL,
  device_id     VARCHAR(128) NOT NULL DEFAULT '',
  client_id     VARCHAR(200) NOT NULL DEFAULT '',
  created_at_ms BIGINT       NOT NULL,
  seq           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,  -- paging order
  PRIMARY KEY (app_id, channel, device_id, client_id),
  UNIQUE KEY subs_seq (seq),
  KEY subs_device (app_id, device_id),
  KEY subs_client (app_id, client_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- sealed: AES-256-GCM under push_secret_key (never in this database);
-- summary: what GET credentials may show.
CREATE TABLE IF NOT EXISTS push_credentials (
  app_id        VARCHAR(64)  NOT NULL,
  provider      ENUM('apns','fcm','web') NOT NULL,
  sealed        MEDIUMTEXT   NOT NULL,
  summary       TEXT         NOT NULL,
  updated_at_ms BIGINT       NOT NULL,
  PRIMARY KEY (app_id, provider)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS push_templates (
  app_id        VARCHAR(64)  NOT NULL,
  template_id   VARCHAR(128) NOT NULL,
  body          MEDIUMTEXT   NOT NULL,
  updated_at_ms BIGINT       NOT NULL,
  PRIMARY KEY (app_id, template_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A publish is accepted here; sockudo-pushd expands its recipients into
-- push_deliveries when it is due, so accepting one costs one row however
-- many devices it reaches.  The counters move with the deliveries.
CREATE TABLE IF NOT EXISTS push_publishes (
  app_id        VARCHAR(64)  NOT NULL,
  publish_id    VARCHAR(32)  NOT NULL,
  state         ENUM('queued','scheduled','dispatching','succeeded',
                  'partially_succeeded','failed','cancelled','expired') NOT NULL,
  recipients    MEDIUMTEXT   NOT NULL,
  payload       MEDIUMTEXT   NOT NULL,  -- rendered: {title, body, data}
  deliver_at_ms BIGINT       NOT NULL,
  expires_at_ms BIGINT       NULL,
  created_at_ms BIGINT       NOT NULL,
  planned       INT          NOT NULL DEFAULT 0,
  sent          INT          NOT NULL DEFAULT 0,
  failed        INT          NOT NULL DEFAULT 0,
  retrying      INT          NOT NULL DEFAULT 0,
  PRIMARY KEY (app_id, publish_id),
  KEY publishes_due (state, deliver_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One (publish, device).  A worker claims due rows by stamping them with
-- its claim token and moving next_at_ms to the end of its lease, in one
-- UPDATE: a racing worker waits on those rows' locks and then finds them
-- no longer due.  A worker that dies leaves its lease to run out, and
-- the rows are due again.
CREATE TABLE IF NOT EXISTS push_deliveries (
  id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  app_id           VARCHAR(64)  NOT NULL,
  publish_id       VARCHAR(32)  NOT NULL,
  device_id        VARCHAR(128) NOT NULL,
  state            ENUM('pending','sent','failed','cancelled','expired') NOT NULL
                     DEFAULT 'pending',
  attempts         INT          NOT NULL DEFAULT 0,
  next_at_ms       BIGINT       NOT NULL,
  claim            VARCHAR(32)  NULL,
  last_error       VARCHAR(255) NULL,
  PRIMARY KEY (id),
  KEY deliveries_claim (claim),
  UNIQUE KEY deliveries_device (app_id, publish_id, device_id),
  KEY deliveries_state (app_id, publish_id, state),
  KEY deliveries_due (state, next_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
