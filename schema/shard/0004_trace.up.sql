-- The trace context (W3C traceparent) of the mysql-sender batch that wrote
-- the row, in the same transaction as the batch: the cdc-producer reads it
-- from the binlog and continues the trace (README, Tracing). NULL while
-- tracing is off.
ALTER TABLE file_progress ADD COLUMN trace_parent VARCHAR(55) CHARACTER SET ascii NULL;
