-- The trace context (W3C traceparent) of the stage that last handed the
-- row on: the file's next stage continues that trace (README, Tracing).
ALTER TABLE pipeline_tracking ADD COLUMN trace_parent VARCHAR(55) CHARACTER SET ascii NULL;
