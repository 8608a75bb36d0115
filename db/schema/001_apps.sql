-- 001_apps: tenants, their credentials, feature flags and limits.
CREATE TABLE IF NOT EXISTS apps (
  id                     VARCHAR(64)  NOT NULL,
  app_key                VARCHAR(64)  NOT NULL,
  secret                 VARCHAR(128) NOT NULL,
  name                   VARCHAR(128) NOT NULL DEFAULT '',
  enabled                TINYINT      NOT NULL DEFAULT 1,
  flags                  INT UNSIGNED NOT NULL DEFAULT 15,
  max_event_data_bytes   INT          NOT NULL DEFAULT 10240,
  max_channels_per_event INT          NOT NULL DEFAULT 100,
  max_batch_size         INT          NOT NULL DEFAULT 10,
  max_publish_rps        INT          NOT NULL DEFAULT 100000,
  max_read_rps           INT          NOT NULL DEFAULT 100000,
  idempotency_ttl_s      INT          NOT NULL DEFAULT 86400,
  history_max_age_s      INT          NOT NULL DEFAULT 0,
  history_max_messages   INT          NOT NULL DEFAULT 0,
  created_at             TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at             TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  UNIQUE KEY apps_key (app_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
