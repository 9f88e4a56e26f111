-- cache_db: every shop's state, built from the shards' changes as
-- commutative increments (stock, counters) and as last-writer-wins values
-- ordered by source position (price, open/closed), never by arrival order.

-- Stock and price of a good in a shop. count is the sum of the deltas seen
-- so far; price is the value of the latest change by source position,
-- whatever order the changes arrived in. A version is a change's source
-- position (cdc.Source.RowVersion: its Seq) times 10^9 plus its row number.
CREATE TABLE stock (
  shop_id   BIGINT        NOT NULL,
  good_id   BIGINT        NOT NULL,
  shard     INT           NOT NULL,
  count     BIGINT        NOT NULL DEFAULT 0,
  price     DECIMAL(18,2) NULL,
  price_version DECIMAL(30,0) NOT NULL DEFAULT -1,
  updated_at DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (shop_id, good_id)
);

-- Open or closed, by the latest shop_state change by source position.
CREATE TABLE shop_status (
  shop_id    BIGINT      NOT NULL PRIMARY KEY,
  shard      INT         NOT NULL,
  active     BOOLEAN     NOT NULL,
  active_version DECIMAL(30,0) NOT NULL,
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
);

-- How many events rows each shop has per type and status on each shard:
-- +1 when a row appears with a status, -1/+1 when its status changes (a
-- pending return applied or expired). shop_id -1 stands for events without
-- a shop (returns whose shop is unknown).
CREATE TABLE event_count (
  shop_id    BIGINT      NOT NULL,
  shard      INT         NOT NULL,
  event_type TINYINT     NOT NULL,
  status     VARCHAR(16) CHARACTER SET ascii NOT NULL,
  n          BIGINT      NOT NULL DEFAULT 0,
  PRIMARY KEY (shop_id, shard, event_type, status)
);

-- Every change applied, by its source identity, inserted in the transaction
-- that applies it: a redelivered change is skipped.
CREATE TABLE applied_change (
  shard    INT     NOT NULL,
  tbl      TINYINT NOT NULL,
  seq      BIGINT  NOT NULL,
  row_no   INT     NOT NULL,
  PRIMARY KEY (shard, tbl, seq, row_no)
);

-- How far each shard's changes are applied on each topic partition.
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
