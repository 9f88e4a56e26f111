DROP TABLE IF EXISTS pipeline_tracking;
