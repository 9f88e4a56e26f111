-- The transactional outbox (SPEC §5), in the shape Debezium's Outbox Event
-- Router expects: the worker inserts the domain events of a batch here and
-- deletes them again in the same transaction, so the table stays empty and
-- the binlog carries every event exactly when its ledger rows commit; the
-- cdc-producer routes the inserts to <prefix>.outbox.<aggregatetype>, keyed
-- by aggregateid, with headers id and type.
CREATE TABLE outbox (
  id            CHAR(36)     CHARACTER SET ascii NOT NULL PRIMARY KEY,
  aggregatetype VARCHAR(255) NOT NULL,
  aggregateid   VARCHAR(255) NOT NULL,
  type          VARCHAR(255) NOT NULL,
  payload       JSON         NULL,
  created_at    DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
);
