-- splitter_db: what the shard splitter must remember across files and restarts.

-- The shop of every purchase split so far, to route returns without shop_id.
CREATE TABLE order_route (
  order_id BIGINT      NOT NULL PRIMARY KEY,
  shop_id  BIGINT      NOT NULL,
  filename VARCHAR(64) CHARACTER SET ascii NOT NULL
);

-- Returns without shop_id whose purchase was not known yet. Each is released
-- into the output of a later file: to its purchase's shard once the purchase
-- is split, or as an orphan when hold_until has passed.
CREATE TABLE held_return (
  filename       VARCHAR(64) CHARACTER SET ascii NOT NULL,
  line           INT         NOT NULL,
  order_id       BIGINT      NOT NULL,
  event_key      CHAR(32)    CHARACTER SET ascii NOT NULL,
  raw            JSON        NOT NULL,
  hold_until     DATETIME(3) NOT NULL,
  released_in    VARCHAR(64) CHARACTER SET ascii NULL,
  released_shard INT         NULL,
  orphan         BOOLEAN     NOT NULL DEFAULT FALSE,
  PRIMARY KEY (filename, line),
  KEY held_return_order (order_id),
  KEY held_return_released (released_in)
);

-- (file, shard) tasks this splitter started and has not finished.
CREATE TABLE claim (
  filename VARCHAR(64) CHARACTER SET ascii NOT NULL,
  shard    INT         NOT NULL,
  PRIMARY KEY (filename, shard)
);
