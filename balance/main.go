// Command balance keeps every user's balance in balance_db from the
// account_transaction changes of every shard, as commutative increments
// recorded once each, and answers REST queries about them (see README).
package main

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/shopledger/shopledger/balance/internal/api"
	"github.com/shopledger/shopledger/balance/internal/store"
	"github.com/shopledger/shopledger/internal/consume"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/service"
	"github.com/shopledger/shopledger/internal/shard"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/topics"
	"github.com/shopledger/shopledger/internal/tracing"
	"github.com/shopledger/shopledger/schema"
)

func main() {
	spec := service.Spec[store.Change]{Name: "balance", Schema: schema.Balance, Build: build,
		About: "keeps every user's balance in balance_db from the account_transaction changes of every shard, as commutative increments recorded once each, and answers REST queries about them."}
	os.Exit(service.App(spec, defaults).Main(os.Args[1:]))
}

func build(db *sql.DB, log *slog.Logger) service.Parts[store.Change] {
	s := store.New(db, log)
	return service.Parts[store.Change]{Handler: s, Reconcile: s.Reconcile,
		HTTP: func(reg httpapi.Metrics, ready func(ctx context.Context) error) http.Handler {
			return api.NewHandler(s, log, reg, ready)
		}}
}

func defaults() *service.Config {
	return &service.Config{
		Server:   httpapi.ServerConfig{Host: "127.0.0.1", Port: 8083, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute},
		Database: sqldb.Config{Addr: "127.0.0.1:33060", User: "balance", Database: "balance_db"},
		Kafka: consume.Config{Brokers: []string{"127.0.0.1:9092"}, Group: "balance", Topics: []string{topics.Table(topics.DefaultPrefix, "account_transaction")},
			BatchSize: 10000, BatchWait: 20 * time.Millisecond, SessionTimeout: 10 * time.Second,
			DeadLetterTopic: topics.DefaultPrefix + ".balance.dead-letters", DeadLetters: topics.DefaultSettings},
		Shards:  shard.DefaultConns(),
		Logging: logging.Default,
		Tracing: tracing.Default,
	}
}
