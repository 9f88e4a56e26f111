-- Shard database: business tables of SPEC §4 plus the worker's bookkeeping.
CREATE TABLE good (
  id    BIGINT        NOT NULL PRIMARY KEY,
  name  VARCHAR(255)  NOT NULL,
  brand VARCHAR(255)  NOT NULL DEFAULT '',
  price DECIMAL(18,2) NOT NULL DEFAULT 0
);

-- One row per (shop, good): the stock and price of a good in a shop.
CREATE TABLE shop (
  id         BIGINT        NOT NULL,
  good_id    BIGINT        NOT NULL,
  count      BIGINT        NOT NULL DEFAULT 0,
  active     BOOLEAN       NOT NULL DEFAULT TRUE,
  price      DECIMAL(18,2) NOT NULL DEFAULT 0,
  updated_at DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id, good_id),
  CONSTRAINT shop_count_not_negative CHECK (count >= 0)
);

-- Open/closed per shop, also for shops that have no goods yet.
CREATE TABLE shop_state (
  shop_id    BIGINT      NOT NULL PRIMARY KEY,
  active     BOOLEAN     NOT NULL,
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
);

CREATE TABLE user (
  id         BIGINT        NOT NULL PRIMARY KEY,
  name       VARCHAR(255)  NOT NULL,
  balance    DECIMAL(18,2) NOT NULL DEFAULT 0,
  role       VARCHAR(32)   NOT NULL DEFAULT 'customer',
  created_at DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
);

-- Every balance change; user.balance is always the sum of these.
CREATE TABLE account_transaction (
  id              BIGINT                 NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id         BIGINT                 NOT NULL,
  amount          DECIMAL(18,2)          NOT NULL,
  type            ENUM('credit','debit') NOT NULL,
  reason          VARCHAR(64)            NOT NULL,
  idempotency_key VARCHAR(128)           NOT NULL,
  created_at      DATETIME(3)            NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  UNIQUE KEY account_transaction_idempotency (idempotency_key),
  KEY account_transaction_user (user_id),
  CONSTRAINT account_transaction_amount_positive CHECK (amount > 0)
);

CREATE TABLE purchase_history (
  id             BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
  order_id       BIGINT        NOT NULL,
  user_id        BIGINT        NOT NULL,
  good_id        BIGINT        NOT NULL,
  shop_id        BIGINT        NOT NULL,
  qty            BIGINT        NOT NULL,
  price_at_order DECIMAL(18,2) NOT NULL,
  returned_qty   BIGINT        NOT NULL DEFAULT 0,
  refunded       DECIMAL(18,2) NOT NULL DEFAULT 0,
  created_at     DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  UNIQUE KEY purchase_history_order (order_id),
  CONSTRAINT purchase_history_returned CHECK (returned_qty <= qty)
);

CREATE TABLE order_return (
  id         BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
  order_id   BIGINT        NOT NULL,
  qty        BIGINT        NOT NULL,
  amount     DECIMAL(18,2) NOT NULL,
  event_key  CHAR(32)      CHARACTER SET ascii NOT NULL,
  created_at DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  UNIQUE KEY order_return_event (event_key),
  KEY order_return_order (order_id)
);

-- One row per event line that reached this shard, whatever became of it:
-- applied, rejected (with reason), duplicate (of an earlier line with the same
-- identity) or pending (a return waiting for its purchase, see
-- pending_return). (source_file, source_line) is the line in the original
-- events file.
CREATE TABLE events (
  id            BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
  event_key     CHAR(32)    CHARACTER SET ascii NOT NULL,
  event_type    TINYINT     NOT NULL,
  shop_id       BIGINT      NULL,
  user_id       BIGINT      NULL,
  order_id      BIGINT      NULL,
  good_id       BIGINT      NULL,
  timestamp     DATETIME(3) NULL,
  shard         INT         NOT NULL,
  status        ENUM('applied','rejected','duplicate','pending') NOT NULL,
  reason        VARCHAR(255) NULL,
  source_file   VARCHAR(64) CHARACTER SET ascii NOT NULL,
  source_line   INT         NOT NULL,
  created_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  UNIQUE KEY events_source (source_file, source_line),
  KEY events_key (event_key)
);

-- Returns held for their purchase: the line of their events row (status
-- pending) and the prepared event, until the purchase arrives or pending_until passes. The
-- row is deleted in the transaction that settles the return.
CREATE TABLE pending_return (
  source_file   VARCHAR(64) CHARACTER SET ascii NOT NULL,
  source_line   INT         NOT NULL,
  order_id      BIGINT      NOT NULL,
  shop_id       BIGINT      NULL,
  pending_until DATETIME(3) NOT NULL,
  detail        TEXT        NOT NULL,
  PRIMARY KEY (source_file, source_line),
  KEY pending_return_order (order_id),
  KEY pending_return_until (pending_until)
);

-- How far the mysql-sender stage got in each prepared file (lines of the
-- prepared file), advanced in the same transaction as the rows it applied, so
-- a restarted worker resumes exactly where the last commit left off.
CREATE TABLE file_progress (
  filename      VARCHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY,
  applied_lines INT         NOT NULL DEFAULT 0,
  updated_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
);

-- Pipeline tasks this shard's worker started and has not finished, so that a
-- restarted worker resumes them instead of leaving them started forever.
CREATE TABLE stage_claim (
  stage      VARCHAR(32) CHARACTER SET ascii NOT NULL,
  filename   VARCHAR(64) CHARACTER SET ascii NOT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (stage, filename)
);
