-- Effectively-once bookkeeping that does not grow with the changes (see
-- internal/consume): per (shard, topic, partition) the furthest change
-- applied, and per shard the epoch of the snapshot the state is built on.
-- It replaces applied_change (a row per change, forever, keyed by binlog
-- positions that repeat after a restore or RESET MASTER) and progress.
-- Versions of last-writer values now start with the epoch. Upgrading a
-- database of version 1: stop cache cleanly first (or rebuild it).
DROP TABLE applied_change;
DROP TABLE progress;
ALTER TABLE stock MODIFY price_version DECIMAL(40,0) NOT NULL DEFAULT -1;
ALTER TABLE shop_status MODIFY active_version DECIMAL(40,0) NOT NULL;

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
