-- 007_versions_annotations: versioned messages (SPEC 6) and annotations
-- with incrementally kept summaries (SPEC 7).
--
-- A messages row holds its message's latest visible state.  A message
-- that was never changed has no message_versions rows: its publish is
-- its only version.  The first mutation copies that create version in,
-- so publishing costs nothing more.  The new columns come last, so
-- MariaDB adds them without rebuilding the table.
ALTER TABLE messages
  ADD COLUMN IF NOT EXISTS action ENUM('create','update','delete','append')
    NOT NULL DEFAULT 'create',
  ADD COLUMN IF NOT EXISTS version_seq INT NOT NULL DEFAULT 1,
  ADD COLUMN IF NOT EXISTS version_ms BIGINT NULL,
  ADD COLUMN IF NOT EXISTS version_client_id VARCHAR(200) NULL,
  ADD COLUMN IF NOT EXISTS version_description TEXT NULL,
  ADD COLUMN IF NOT EXISTS annotation_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS message_versions (
  app_id         VARCHAR(64)  NOT NULL,
  message_serial VARCHAR(32)  NOT NULL,
  seq            INT          NOT NULL,
  action         ENUM('create','update','delete','append') NOT NULL,
  name           VARCHAR(200) NOT NULL,
  data           MEDIUMTEXT   NOT NULL,  -- append: the appended text
  client_id      VARCHAR(200) NULL,
  description    TEXT         NULL,
  timestamp_ms   BIGINT       NOT NULL,
  PRIMARY KEY (app_id, message_serial, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Raw annotations; a deleted one stays (deleted = 1) so that deleting it
-- again is recognised.  seq orders a message's annotations.
CREATE TABLE IF NOT EXISTS annotations (
  app_id            VARCHAR(64)  NOT NULL,
  message_serial    VARCHAR(32)  NOT NULL,
  seq               BIGINT       NOT NULL,
  annotation_serial VARCHAR(32)  NOT NULL,
  type              VARCHAR(100) NOT NULL,
  name              VARCHAR(200) NULL,
  client_id         VARCHAR(200) NULL,
  count             BIGINT       NULL,
  data              MEDIUMTEXT   NULL,
  timestamp_ms      BIGINT       NOT NULL,
  deleted           TINYINT      NOT NULL DEFAULT 0,
  PRIMARY KEY (app_id, message_serial, seq),
  UNIQUE KEY annotations_serial (app_id, annotation_serial),
  KEY annotations_type (app_id, message_serial, type, seq),
  KEY annotations_client (app_id, message_serial, client_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The summaries' counters: one row per (type, name, client) that a live
-- annotation contributes to ('' where the summarizer does not use it),
-- changed in the annotation's own transaction.  A summary is read from
-- these rows alone, whatever the number of annotations behind them.
CREATE TABLE IF NOT EXISTS annotation_counts (
  app_id         VARCHAR(64)  NOT NULL,
  message_serial VARCHAR(32)  NOT NULL,
  type           VARCHAR(100) NOT NULL,
  name           VARCHAR(200) NOT NULL,
  client_id      VARCHAR(200) NOT NULL,
  n              BIGINT       NOT NULL,
  PRIMARY KEY (app_id, message_serial, type, name, client_id),
  KEY counts_client (app_id, message_serial, type, client_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A message removed by retention or a purge takes its versions and
-- annotations with it.  Most messages have neither: the checks on OLD
-- keep their deletes to one trigger call.
DELIMITER $$
CREATE OR REPLACE TRIGGER messages_cleanup AFTER DELETE ON messages FOR EACH ROW
BEGIN
  IF OLD.version_seq > 1 THEN
    DELETE FROM message_versions
      WHERE app_id = OLD.app_id AND message_serial = OLD.message_serial;
  END IF;
  IF OLD.annotation_seq > 0 THEN
    DELETE FROM annotations
      WHERE app_id = OLD.app_id AND message_serial = OLD.message_serial;
    DELETE FROM annotation_counts
      WHERE app_id = OLD.app_id AND message_serial = OLD.message_serial;
  END IF;
END$$
DELIMITER ;
