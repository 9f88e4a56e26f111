DROP TABLE consumer_replayed;
DROP TABLE consumer_epoch;
DROP TABLE consumer_watermark;
CREATE TABLE applied_transaction (
  shard      INT         NOT NULL,
  id         BIGINT      NOT NULL,
  applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (shard, id)
);
CREATE TABLE progress (
  shard           INT          NOT NULL,
  kafka_partition INT          NOT NULL,
  seq             BIGINT       NOT NULL,
  file            VARCHAR(255) NOT NULL,
  pos             BIGINT       NOT NULL,
  gtid            VARCHAR(255) NOT NULL DEFAULT '',
  source_ts_ms    BIGINT       NOT NULL,
  applied_at      DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (shard, kafka_partition)
);
