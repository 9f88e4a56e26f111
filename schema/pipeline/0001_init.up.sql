-- pipeline_db: one row per (file, shard) with the status of each stage (SPEC §3).
CREATE TABLE pipeline_tracking (
  id                    BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
  filename              VARCHAR(64) CHARACTER SET ascii NOT NULL,
  shard                 INT         NOT NULL,
  event_ingest_status   ENUM('new','started','done','failed') NOT NULL DEFAULT 'new',
  shard_splitter_status ENUM('new','started','done','failed') NOT NULL DEFAULT 'new',
  shard_worker_status   ENUM('new','started','done','failed') NOT NULL DEFAULT 'new',
  mysql_sender_status   ENUM('new','started','done','failed') NOT NULL DEFAULT 'new',
  created_at            DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at            DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  UNIQUE KEY pipeline_tracking_file_shard (filename, shard),
  KEY pipeline_tracking_splitter (shard_splitter_status, event_ingest_status, created_at),
  KEY pipeline_tracking_worker (shard_worker_status, shard_splitter_status, created_at),
  KEY pipeline_tracking_sender (mysql_sender_status, shard_worker_status, created_at)
);
