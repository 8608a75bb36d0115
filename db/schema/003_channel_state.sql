-- 003_channel_state: connections, subscriptions and presence members (SPEC 4),
-- written by the realtime layer through db/channels.c.
CREATE TABLE IF NOT EXISTS connections (
  app_id       VARCHAR(64)  NOT NULL,
  socket_id    VARCHAR(64)  NOT NULL,
  user_id      VARCHAR(200) NULL,
  connected_at_ms BIGINT    NOT NULL,
  PRIMARY KEY (app_id, socket_id),
  KEY connections_user (app_id, user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS channel_subscriptions (
  app_id      VARCHAR(64)  NOT NULL,
  channel     VARCHAR(200) NOT NULL,
  socket_id   VARCHAR(64)  NOT NULL,
  user_id     VARCHAR(200) NULL,
  user_info   TEXT         NULL,
  subscribed_at_ms BIGINT  NOT NULL,
  PRIMARY KEY (app_id, channel, socket_id),
  KEY subscriptions_socket (app_id, socket_id),
  KEY subscriptions_user (app_id, user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Requests to close a user's sockets, consumed by the realtime layer.
CREATE TABLE IF NOT EXISTS user_terminations (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  app_id        VARCHAR(64)  NOT NULL,
  user_id       VARCHAR(200) NOT NULL,
  requested_at_ms BIGINT     NOT NULL,
  PRIMARY KEY (id),
  KEY terminations_user (app_id, user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
