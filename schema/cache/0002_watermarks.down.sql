DROP TABLE consumer_replayed;
DROP TABLE consumer_epoch;
DROP TABLE consumer_watermark;
ALTER TABLE shop_status MODIFY active_version DECIMAL(30,0) NOT NULL;
ALTER TABLE stock MODIFY price_version DECIMAL(30,0) NOT NULL DEFAULT -1;
CREATE TABLE applied_change (
  shard    INT     NOT NULL,
  tbl      TINYINT NOT NULL,
  seq      BIGINT  NOT NULL,
  row_no   INT     NOT NULL,
  PRIMARY KEY (shard, tbl, seq, row_no)
);
CREATE TABLE progress (
  shard           INT          NOT NULL,
  topic           VARCHAR(255) NOT NULL,
  kafka_partition INT          NOT NULL,
  seq             BIGINT       NOT NULL,
  file            VARCHAR(255) NOT NULL,
  pos             BIGINT       NOT NULL,
  source_ts_ms    BIGINT       NOT NULL,
  applied_at      DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (shard, topic, kafka_partition)
);
