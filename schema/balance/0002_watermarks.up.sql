-- Effectively-once bookkeeping that does not grow with the changes (see
-- internal/consume): per (shard, topic, partition) the furthest change
-- applied, and per shard the epoch of the snapshot the state is built on.
-- It replaces applied_transaction (a row per change, forever, keyed by ids
-- that repeat after a shard restore) and progress. Upgrading a database of
-- version 1: stop balance cleanly first (or rebuild it afterwards).
DROP TABLE applied_transaction;
DROP TABLE progress;

CREATE TABLE consumer_watermark (
  shard           INT          NOT NULL,
  topic           VARCHAR(255) NOT NULL,
  kafka_partition INT          NOT NULL,
  epoch           BIGINT       NOT NULL,
  seq             BIGINT       NOT NULL,
  row_no          INT          NOT NULL,
  file            VARCHAR(255) NOT NULL,
  pos             BIGINT       NOT NULL,
  gtid            VARCHAR(255) NOT NULL DEFAULT '',
  source_ts_ms    BIGINT       NOT NULL,
  applied_at      DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (shard, topic, kafka_partition)
);

CREATE TABLE consumer_epoch (
  shard          INT         NOT NULL PRIMARY KEY,
  snapshot_epoch BIGINT      NOT NULL,
  updated_at     DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
);

-- Dead letters applied by replay-dead-letters, by where they came from, so
-- that replaying them again applies none twice (a row per dead letter,
-- which are few).
CREATE TABLE consumer_replayed (
  topic           VARCHAR(255) NOT NULL,
  kafka_partition INT          NOT NULL,
  kafka_offset    BIGINT       NOT NULL,
  replayed_at     DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (topic, kafka_partition, kafka_offset)
);
