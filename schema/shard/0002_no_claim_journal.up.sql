-- Claims live in the pipeline API (owner of each started row): the
-- worker's own journal is gone.
DROP TABLE stage_claim;
