# shopledger: the two set-up commands are `make run` and `make test`.
GO      ?= go
BIN     := bin
SHARDS  ?= 2
BROKER  ?= kfake
CMDS    := ./pipelineapi ./ingest ./shard-splitter ./shard-worker ./cdc-producer ./balance ./cache ./audit ./loadtest ./deploy/stack

.PHONY: build tools run migrate audit load-test test test-short compat fuzz bench-pipeline bench-consumers bench-lag bench-peers vet clean

build:
	$(GO) build -o $(BIN)/ $(CMDS)

## tools: install what run and test need that is missing: MariaDB, Java, Maven,
## docker-compose, Prometheus and python3-venv with apt (as root), Apache Kafka
## (pinned) with Maven and Schemathesis (pinned) with pip into .tools/
tools: build
	./$(BIN)/stack tools

## run: the whole product locally on embedded defaults (data in ./.data);
## BROKER=kafka runs it on Apache Kafka (KRaft) instead of the embedded kfake
run: build
	./$(BIN)/stack run --shards $(SHARDS) --broker $(BROKER)

## migrate: start the local databases, apply every migration, stop them
migrate: build
	./$(BIN)/stack migrate --shards $(SHARDS)

## audit: check the local shards (run while `make run` is up)
audit: build
	SHARDS_COUNT=$(SHARDS) ./$(BIN)/audit

## load-test: drive the running stack (make run, make run BROKER=kafka, or compose) at RATE events/s for
## DURATION with READ_RPS REST reads/s; writes report.md, series.csv and plots into REPORT
## (default ./load-test-report/<UTC time>); exit 1 if the audit or a reconciliation fails afterwards
load-test: build
	$(if $(RATE),RATE=$(RATE)) $(if $(DURATION),DURATION=$(DURATION)) $(if $(READ_RPS),READ_RPS=$(READ_RPS)) \
	  $(if $(REPORT),REPORT=$(REPORT)) SHARDS_COUNT=$(SHARDS) ./$(BIN)/loadtest

## test: every test, on real MariaDB instances and brokers the tests start themselves
test: tools
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

## compat: Debezium's own MariaDB connector and the cdc-producer over the same shard and changes,
## compared message by message (bench/debezium; make test runs it too, ~30 s once the runner is built)
compat: tools
	$(GO) test -count=1 -v -run 'TestCompat' ./bench/debezium/

test-short:
	$(GO) test -count=1 -short ./...

## fuzz: run every fuzz target for FUZZTIME each (make test runs their committed corpora)
FUZZTIME ?= 30s
FUZZ := ./internal/event:FuzzParseHead ./internal/event:FuzzPreparedRoundTrip ./internal/event:FuzzRoutedRoundTrip ./internal/event:FuzzParseRouted \
	./internal/money:FuzzParse ./internal/cdc:FuzzDecode ./cdc-producer/internal/capture:FuzzAppendString \
	./shard-worker/internal/ledger:FuzzPayloadEncoding
fuzz:
	@for t in $(FUZZ); do pkg=$${t%%:*}; name=$${t##*:}; echo "== $$name in $$pkg for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done

## bench-pipeline: events/s per shard from a 100,000-event file to committed rows, each stage's time and
## CPU per event of every process; SHOPLEDGER_BENCH_PROFILE=DIR also writes CPU and allocation profiles
bench-pipeline:
	$(GO) test -count=1 -run '^$$' -bench BenchmarkPipeline -benchtime 1x -timeout 30m ./e2e

## bench-consumers: balance and cache apply rates, events/s, from pre-filled topics, with their limit in the same
## run (limit-rows/s: the same changes as raw upserts of the keys they touch) and the ratio
bench-consumers:
	$(GO) test -count=1 -run '^$$' -bench BenchmarkConsume -benchtime 1x ./balance/internal/store/ ./cache/internal/store/

## bench-lag: lag from a shard commit to the balance visible in balance_db (p50/p90/p99/max) under RATE account
## transactions/s on two shards (default 20000) for DURATION (default 30s), committed TX_ROWS to a transaction
## (default 25, at most 100); also the rate achieved (below RATE: the writers were saturated) and CPU per change of
## every process on the path; SHOPLEDGER_BENCH_PROFILE=DIR also writes CPU profiles of the cdc-producers, balance
## and the benchmark (embedded broker)
bench-lag:
	$(if $(RATE),SHOPLEDGER_LAG_RATE=$(RATE)) $(if $(DURATION),SHOPLEDGER_LAG_DURATION=$(DURATION)) \
	  $(if $(TX_ROWS),SHOPLEDGER_LAG_TX_ROWS=$(TX_ROWS)) \
	  $(GO) test -count=1 -run '^$$' -bench BenchmarkBalanceLag -benchtime 1x -timeout 60m ./e2e

## bench-peers: Debezium's own MariaDB connector (bench/debezium's runner, built once by Maven, jars
## cached in ~/.m2) and the cdc-producer binary, one after the other, catch up on the same binlog into the
## same Apache Kafka broker: one 1,000,000-row transaction, then 200,000 transactions of 1-10 rows.
## Prints rows/s and CPU-s per million rows of each and their ratios (benchstat-friendly; COUNT=n runs
## each n times). Long (tens of minutes), so not part of make test. DEBEZIUM_ARGS adds runner options
## (e.g. "--producer batch.size=1048576" to try Debezium tuned); SHOPLEDGER_BENCH_PROFILE=DIR writes a
## CPU profile of the cdc-producer's catch-up
COUNT ?= 1
bench-peers: tools
	$(if $(DEBEZIUM_ARGS),SHOPLEDGER_BENCH_DEBEZIUM_ARGS="$(DEBEZIUM_ARGS)") \
	  $(GO) test -count=$(COUNT) -run '^$$' -bench BenchmarkPeers -benchtime 1x -timeout 120m ./bench/debezium/

clean:
	rm -rf $(BIN)
