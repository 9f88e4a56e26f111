// Command cache keeps every shop's state in cache_db from the shards'
// shop, shop_state and events changes: stock and price per good,
// open/closed, and counters of events by type and status, pending returns
// included; and answers REST queries about them (see README).
package main

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/shopledger/shopledger/cache/internal/api"
	"github.com/shopledger/shopledger/cache/internal/store"
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
	spec := service.Spec[*store.Change]{Name: "cache", Schema: schema.Cache, Build: build,
		About: "keeps every shop's state in cache_db from the shards' shop, shop_state and events changes (stock and price per good, open/closed, counters of events by type and status, pending returns included) and answers REST queries about them."}
	os.Exit(service.App(spec, defaults).Main(os.Args[1:]))
}

func build(db *sql.DB, log *slog.Logger) service.Parts[*store.Change] {
	s := store.New(db, log)
	return service.Parts[*store.Change]{Handler: s, Reconcile: s.Reconcile,
		HTTP: func(reg httpapi.Metrics, ready func(context.Context) error) http.Handler {
			return api.NewHandler(s, log, reg, ready)
		}}
}

func defaults() *service.Config {
	return &service.Config{
		Server:   httpapi.ServerConfig{Host: "127.0.0.1", Port: 8084, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute},
		Database: sqldb.Config{Addr: "127.0.0.1:33060", User: "cache", Database: "cache_db"},
		Kafka: consume.Config{Brokers: []string{"127.0.0.1:9092"}, Group: "cache", Topics: []string{topics.Table(topics.DefaultPrefix, "shop"),
			topics.Table(topics.DefaultPrefix, "shop_state"), topics.Table(topics.DefaultPrefix, "events")},
			BatchSize: 5000, BatchWait: 20 * time.Millisecond, SessionTimeout: 10 * time.Second,
			DeadLetterTopic: topics.DefaultPrefix + ".cache.dead-letters", DeadLetters: topics.DefaultSettings},
		Shards:  shard.DefaultConns(),
		Logging: logging.Default,
		Tracing: tracing.Default,
	}
}
