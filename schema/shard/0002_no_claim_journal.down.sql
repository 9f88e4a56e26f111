CREATE TABLE stage_claim (
  stage      VARCHAR(32) CHARACTER SET ascii NOT NULL,
  filename   VARCHAR(64) CHARACTER SET ascii NOT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (stage, filename)
);
