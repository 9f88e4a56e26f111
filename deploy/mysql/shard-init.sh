# Generated from schema/users.go (schema.InitScript): do not edit; go test ./deploy/ -run TestInitScripts -update rewrites it.
# Creates shopledger's databases and least-privilege users on the shard server at its first start.
# Sourced (keep it non-executable) by the MySQL image's entrypoint, which provides docker_process_sql
# (as root) and runs under set -eo pipefail; no shell options here, they would stay set in the entrypoint.
sql_quote() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g"; }
: "${WORKER_DB_PASSWORD:?set WORKER_DB_PASSWORD in .env (see .env.example)}"
: "${CDC_DB_PASSWORD:?set CDC_DB_PASSWORD in .env (see .env.example)}"
: "${READER_DB_PASSWORD:?set READER_DB_PASSWORD in .env (see .env.example)}"
: "${MIGRATOR_DB_PASSWORD:?set MIGRATOR_DB_PASSWORD in .env (see .env.example)}"
docker_process_sql <<SQL
SET @@SESSION.sql_log_bin = 0;
CREATE DATABASE IF NOT EXISTS shop CHARACTER SET utf8mb4;
-- shard-worker: the shard's only writer, of the ledger rows and of the outbox (inserted and deleted in each transaction)
CREATE USER IF NOT EXISTS 'worker'@'%' IDENTIFIED BY '$(sql_quote "$WORKER_DB_PASSWORD")';
GRANT SELECT, INSERT, UPDATE, DELETE ON shop.* TO 'worker'@'%';
-- cdc-producer: snapshot reads (SELECT, RELOAD for the global read lock), the binlog as a replica, binlog positions
CREATE USER IF NOT EXISTS 'cdc'@'%' IDENTIFIED BY '$(sql_quote "$CDC_DB_PASSWORD")';
GRANT SELECT ON shop.* TO 'cdc'@'%';
GRANT RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'cdc'@'%';
-- audit and the consumers' reconcile: read the shard
CREATE USER IF NOT EXISTS 'reader'@'%' IDENTIFIED BY '$(sql_quote "$READER_DB_PASSWORD")';
GRANT SELECT ON shop.* TO 'reader'@'%';
-- stack migrate: creates and migrates the shard database
CREATE USER IF NOT EXISTS 'migrator'@'%' IDENTIFIED BY '$(sql_quote "$MIGRATOR_DB_PASSWORD")';
GRANT ALL PRIVILEGES ON shop.* TO 'migrator'@'%';
SQL
unset -f sql_quote
