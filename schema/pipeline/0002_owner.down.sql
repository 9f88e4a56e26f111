ALTER TABLE pipeline_tracking DROP KEY pipeline_tracking_owner, DROP COLUMN owner, DROP COLUMN started_at, DROP COLUMN producer;
