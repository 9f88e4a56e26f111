# Generated from schema/users.go (schema.InitScript): do not edit; go test ./deploy/ -run TestInitScripts -update rewrites it.
# Creates shopledger's databases and least-privilege users on the control server at its first start.
# Sourced (keep it non-executable) by the MySQL image's entrypoint, which provides docker_process_sql
# (as root) and runs under set -eo pipefail; no shell options here, they would stay set in the entrypoint.
sql_quote() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g"; }
: "${PIPELINEAPI_DB_PASSWORD:?set PIPELINEAPI_DB_PASSWORD in .env (see .env.example)}"
: "${SPLITTER_DB_PASSWORD:?set SPLITTER_DB_PASSWORD in .env (see .env.example)}"
: "${BALANCE_DB_PASSWORD:?set BALANCE_DB_PASSWORD in .env (see .env.example)}"
: "${CACHE_DB_PASSWORD:?set CACHE_DB_PASSWORD in .env (see .env.example)}"
: "${READER_DB_PASSWORD:?set READER_DB_PASSWORD in .env (see .env.example)}"
: "${MIGRATOR_DB_PASSWORD:?set MIGRATOR_DB_PASSWORD in .env (see .env.example)}"
docker_process_sql <<SQL
SET @@SESSION.sql_log_bin = 0;
CREATE DATABASE IF NOT EXISTS pipeline_db CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS splitter_db CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS balance_db CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS cache_db CHARACTER SET utf8mb4;
-- pipelineapi: pipeline_tracking
CREATE USER IF NOT EXISTS 'pipelineapi'@'%' IDENTIFIED BY '$(sql_quote "$PIPELINEAPI_DB_PASSWORD")';
GRANT SELECT, INSERT, UPDATE, DELETE ON pipeline_db.* TO 'pipelineapi'@'%';
-- shard-splitter: order index, held returns, claims
CREATE USER IF NOT EXISTS 'splitter'@'%' IDENTIFIED BY '$(sql_quote "$SPLITTER_DB_PASSWORD")';
GRANT SELECT, INSERT, UPDATE, DELETE ON splitter_db.* TO 'splitter'@'%';
-- balance: its own database
CREATE USER IF NOT EXISTS 'balance'@'%' IDENTIFIED BY '$(sql_quote "$BALANCE_DB_PASSWORD")';
GRANT SELECT, INSERT, UPDATE, DELETE ON balance_db.* TO 'balance'@'%';
-- cache: its own database
CREATE USER IF NOT EXISTS 'cache'@'%' IDENTIFIED BY '$(sql_quote "$CACHE_DB_PASSWORD")';
GRANT SELECT, INSERT, UPDATE, DELETE ON cache_db.* TO 'cache'@'%';
-- audit: reads the pipeline and the splitter's records
CREATE USER IF NOT EXISTS 'reader'@'%' IDENTIFIED BY '$(sql_quote "$READER_DB_PASSWORD")';
GRANT SELECT ON pipeline_db.* TO 'reader'@'%';
GRANT SELECT ON splitter_db.* TO 'reader'@'%';
-- stack migrate: creates and migrates the databases
CREATE USER IF NOT EXISTS 'migrator'@'%' IDENTIFIED BY '$(sql_quote "$MIGRATOR_DB_PASSWORD")';
GRANT ALL PRIVILEGES ON pipeline_db.* TO 'migrator'@'%';
GRANT ALL PRIVILEGES ON splitter_db.* TO 'migrator'@'%';
GRANT ALL PRIVILEGES ON balance_db.* TO 'migrator'@'%';
GRANT ALL PRIVILEGES ON cache_db.* TO 'migrator'@'%';
SQL
unset -f sql_quote
