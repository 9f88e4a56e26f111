ALTER TABLE file_progress DROP COLUMN trace_parent;
