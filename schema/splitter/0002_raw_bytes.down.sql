CREATE TABLE claim (
  filename VARCHAR(64) CHARACTER SET ascii NOT NULL,
  shard    INT         NOT NULL,
  PRIMARY KEY (filename, shard)
);
ALTER TABLE held_return MODIFY raw JSON NOT NULL;
