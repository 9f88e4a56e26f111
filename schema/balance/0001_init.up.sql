-- balance_db: every user's balance, built from account_transaction changes of
-- every shard as commutative increments. Nothing here is read back to compute
-- a new value: each batch adds its deltas.

-- One row per user: the totals over every shard.
CREATE TABLE balance (
  user_id         BIGINT        NOT NULL PRIMARY KEY,
  balance         DECIMAL(20,2) NOT NULL DEFAULT 0,
  credits         DECIMAL(20,2) NOT NULL DEFAULT 0,
  debits          DECIMAL(20,2) NOT NULL DEFAULT 0,
  tx_count        BIGINT        NOT NULL DEFAULT 0,
  -- The Kafka partition the user's changes arrive on (the topic is keyed by
  -- user_id), to tell how fresh the user's balance is.
  kafka_partition INT           NOT NULL,
  updated_at      DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
);

-- The same per (user, shard).
CREATE TABLE shard_balance (
  user_id  BIGINT        NOT NULL,
  shard    INT           NOT NULL,
  balance  DECIMAL(20,2) NOT NULL DEFAULT 0,
  credits  DECIMAL(20,2) NOT NULL DEFAULT 0,
  debits   DECIMAL(20,2) NOT NULL DEFAULT 0,
  tx_count BIGINT        NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, shard)
);

-- Every account transaction applied, inserted in the transaction that adds
-- it: a redelivered change finds its row and is skipped, and two consumers
-- racing on one change cannot both insert it.
CREATE TABLE applied_transaction (
  shard      INT         NOT NULL,
  id         BIGINT      NOT NULL,
  applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (shard, id)
);

-- How far each shard's changes are applied on each partition: the furthest
-- source position (seq orders positions) and its commit time on the shard.
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
