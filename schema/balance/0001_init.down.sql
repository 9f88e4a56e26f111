DROP TABLE progress;
DROP TABLE applied_transaction;
DROP TABLE shard_balance;
DROP TABLE balance;
