ALTER TABLE pipeline_tracking DROP COLUMN trace_parent;
