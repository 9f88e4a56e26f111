-- A held line is kept as the producer wrote it, as bytes: a JSON column
-- refused lines with an invalid UTF-8 byte or deep nesting, and that one
-- insert stopped the splitter for every shard.
ALTER TABLE held_return MODIFY raw LONGBLOB NOT NULL;

-- Claims live in the pipeline API (owner of each started row): the
-- splitter's own journal is gone.
DROP TABLE claim;
