# shopledger: the two set-up commands are `make run` and `make test`.
GO      ?= go
BIN     := bin
SHARDS  ?= 2
CMDS    := ./pipelineapi ./ingest ./shard-splitter ./shard-worker ./cdc-producer ./balance ./cache ./audit ./deploy/stack

.PHONY: build run migrate audit test test-short compose-tool bench-pipeline bench-consumers bench-lag vet clean

build:
	$(GO) build -o $(BIN)/ $(CMDS)

## run: the whole product locally on embedded defaults (data in ./.data)
run: build
	./$(BIN)/stack run --shards $(SHARDS)

## migrate: start the local databases, apply every migration, stop them
migrate: build
	./$(BIN)/stack migrate --shards $(SHARDS)

## audit: check the local shards (run while `make run` is up)
audit: build
	SHARDS_COUNT=$(SHARDS) ./$(BIN)/audit

## test: every test, on real MariaDB instances the tests start themselves
test: compose-tool
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

# compose-tool: Debian's docker-compose (v1) renders docker-compose.yml for
# the tests in deploy/ without a Docker engine; installed with apt when
# missing and root, else those tests skip.
compose-tool:
	@command -v docker-compose >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose; } || \
	  echo "docker-compose not found: the compose tests in deploy/ will skip"

test-short:
	$(GO) test -count=1 -short ./...

## bench-pipeline: events/s per shard from a 100,000-event file to committed rows
bench-pipeline:
	$(GO) test -count=1 -run '^$$' -bench BenchmarkPipeline -benchtime 1x -timeout 30m ./e2e

## bench-consumers: balance and cache apply rates, events/s, from pre-filled topics
bench-consumers:
	$(GO) test -count=1 -run '^$$' -bench BenchmarkConsume -benchtime 1x ./balance/internal/store/ ./cache/internal/store/

## bench-lag: shard commit -> balance_db lag p50/p99 under 5,000 transactions/s
bench-lag:
	$(GO) test -count=1 -run '^$$' -bench BenchmarkBalanceLag -benchtime 1x -timeout 10m ./e2e

clean:
	rm -rf $(BIN)
