-- Who started each row's current stage, and when: a start is idempotent for
-- its owner (a retry after a lost answer succeeds, a restarted owner finds
-- what it had started), and rows started by an owner that is gone show
-- their age. producer is the writer that registered the file: another
-- writer registering the same stem is refused.
ALTER TABLE pipeline_tracking
  ADD COLUMN owner      VARCHAR(128) NULL,
  ADD COLUMN started_at DATETIME(6)  NULL,
  ADD COLUMN producer   VARCHAR(128) NOT NULL DEFAULT '',
  ADD KEY pipeline_tracking_owner (owner);
