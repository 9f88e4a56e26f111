package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/topics"
)

// cdc-producer replay against the whole product on the embedded broker,
// after generated load: a range written to a file holds exactly what the
// live producer published for it; a replay into the live topics changes no
// consumer state; consumers restored from a backup taken mid-load (their
// offsets in Kafka past it) are made exact again by a replay from the
// backup's time; and after the server purged its binlogs it refuses the
// range and says to use --binlog-dir, whose archived files give the same
// messages again.
func TestReplay(t *testing.T) {
	s := loadStack(t, "cdc")
	time.Sleep(loadDuration(t, 16*time.Second) / 2)
	s.backupConsumers()
	backedUp := time.Now()
	time.Sleep(loadDuration(t, 16*time.Second) / 2)
	s.procs["ingest"].Stop(10 * time.Second)
	delete(s.procs, "ingest")
	s.waitFinished(2 * time.Minute)
	s.reconcile("balance", 2*time.Minute)
	s.reconcile("cache", 2*time.Minute)
	final := map[string]string{"balance": s.state("balance"), "cache": s.state("cache")}

	// The streamed range of each shard: from its snapshot to its checkpoint.
	var published []string
	for _, r := range readTopics(t, s.brokers, s.changeTopics()) {
		if m, ok := streamedMessage(t, r); ok {
			published = append(published, m)
		}
	}
	dir := t.TempDir()
	var replayed []string
	ranges := make([][2]string, len(s.shards))
	for i := range s.shards {
		ranges[i] = s.streamedRange(i)
		out := filepath.Join(dir, fmt.Sprintf("shard-%d.jsonl", i))
		s.replay(i, "--from", ranges[i][0], "--to", ranges[i][1], "--output", out)
		replayed = append(replayed, readLines(t, out)...)
	}
	t.Logf("%d messages published after the snapshots, %d replayed to files", len(published), len(replayed))
	if len(published) < 500 {
		t.Fatalf("only %d messages published: the load did not run", len(published))
	}
	sameMessages(t, "replayed to a file", replayed, "in Kafka", published)

	t.Run("bad input", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--to", "now"}, "--from is required"},
			{[]string{"--from", ranges[0][1], "--to", ranges[0][0]}, "is after --to"},
			{[]string{"--from", "binlog.000001:4", "--tables", "events,invoices"}, "invoices not captured"},
			{[]string{"--from", "yesterday"}, "want FILE:POS"},
			{[]string{"--from", "binlog.000099:4", "--dry-run"}, "holds no binlog binlog.000099"},
		} {
			out, err := s.command("cdc-producer-0", append([]string{"replay", "--shard", "0"}, c.args...)...)
			if err == nil || !strings.Contains(out, c.want) {
				t.Errorf("replay %v: %v\n%s\nwant a failure saying %q", c.args, err, tail(out, 1000), c.want)
			}
		}
		out := s.replay(0, "--from", ranges[0][0], "--to", ranges[0][1], "--dry-run", "--tables", "account_transaction")
		if !strings.Contains(out, "account_transaction") || strings.Contains(out, "purchase_history") {
			t.Errorf("a dry run of account_transaction counts:\n%s", out)
		}
	})

	t.Run("to other topics", func(t *testing.T) {
		s.replay(1, "--from", ranges[1][0], "--to", ranges[1][1], "--topic-prefix", "replayed", "--tables", "account_transaction,outbox")
		var got, want []string
		names := []string{"replayed.account_transaction"}
		for _, a := range topics.OutboxAggregates {
			names = append(names, topics.Outbox("replayed", a))
		}
		for _, r := range readTopics(t, s.brokers, names) {
			m, _ := streamedMessage(t, r)
			m = strings.Replace(m, `"topic":"replayed.`, `"topic":"shop.`, 1)
			got = append(got, strings.Replace(m, `"name":"replayed"`, `"name":"shop"`, 1))
		}
		for _, l := range readLines(t, filepath.Join(dir, "shard-1.jsonl")) {
			if strings.Contains(l, `"topic":"shop.account_transaction"`) || strings.Contains(l, `"topic":"shop.outbox.`) {
				want = append(want, l)
			}
		}
		sameMessages(t, "in replayed.account_transaction and replayed.outbox.*", got, "shard 1's account_transaction and outbox messages", want)
	})

	t.Run("into the live topics", func(t *testing.T) {
		before := s.handled()
		total := s.messages(s.consumerTopics())
		for i := range s.shards {
			s.replay(i, "--from", "start", "--to", "now")
		}
		added := s.messages(s.consumerTopics()) - total
		if added <= 0 {
			t.Fatalf("the replay published no message to the consumers' topics")
		}
		after := s.waitHandled(before, added)
		for name, c := range after {
			if d := c["applied"] - before[name]["applied"]; d != 0 {
				t.Errorf("%s applied %v of %d replayed messages, want none (all already applied)", name, d, added)
			}
			if got := s.state(name); got != final[name] {
				t.Errorf("%s state changed by a replay of what it already had", name)
			}
		}
		t.Logf("%d messages replayed into the live topics, all skipped", added)
	})

	t.Run("consumers restored from a backup", func(t *testing.T) {
		s.restoreConsumers()
		for name := range consumers {
			if s.state(name) == final[name] {
				t.Fatalf("%s state restored from the mid-load backup equals the final state: the backup was not taken mid-load", name)
			}
		}
		before := s.handled()
		total := s.messages(s.consumerTopics())
		from := backedUp.Add(-2 * time.Second).UTC().Format(time.RFC3339)
		for i := range s.shards {
			s.replay(i, "--from", from)
		}
		s.waitHandled(before, s.messages(s.consumerTopics())-total)
		s.reconcile("balance", time.Minute)
		s.reconcile("cache", time.Minute)
		for name := range consumers {
			if s.state(name) != final[name] {
				t.Errorf("%s state after restoring the backup and replaying from %s differs from before the restore", name, from)
			}
		}
	})

	t.Run("archived binlog files after PURGE", func(t *testing.T) {
		archive := s.archiveAndPurge(0)
		out, err := s.command("cdc-producer-0", "replay", "--shard", "0", "--from", ranges[0][0], "--to", ranges[0][1], "--output", filepath.Join(dir, "purged.jsonl"))
		if err == nil || !strings.Contains(out, "--binlog-dir") || !strings.Contains(out, "no longer holds") {
			t.Errorf("replay of a purged range from the server: %v\n%s\nwant a failure naming the missing binlog and --binlog-dir", err, tail(out, 2000))
		}
		if _, err := os.Stat(filepath.Join(dir, "purged.jsonl")); err == nil {
			t.Errorf("a failed replay left its --output file")
		}
		out0 := filepath.Join(dir, "archived.jsonl")
		s.replay(0, "--from", ranges[0][0], "--to", ranges[0][1], "--binlog-dir", archive, "--output", out0)
		sameMessages(t, "replayed from archived files", readLines(t, out0),
			"replayed from the server before the purge", readLines(t, filepath.Join(dir, "shard-0.jsonl")))
	})
}

// replay runs cdc-producer replay for shard with args and fails the test
// if it fails.
func (s *stack) replay(shard int, args ...string) string {
	s.t.Helper()
	name := fmt.Sprintf("cdc-producer-%d", shard)
	out, err := s.command(name, append([]string{"replay", "--shard", fmt.Sprint(shard)}, args...)...)
	if err != nil {
		s.t.Fatalf("%s replay %v: %v\n%s", name, args, err, tail(out, 4000))
	}
	s.t.Logf("%s replay %v: %s", name, args, strings.TrimSpace(tail(out, 600)))
	return out
}

// changeTopics are the topics the producers publish changes to: each
// captured table's and each outbox aggregate's.
func (s *stack) changeTopics() []string {
	var names []string
	for _, t := range topics.CDCTables {
		names = append(names, topics.Table(topics.DefaultPrefix, t))
	}
	for _, a := range topics.OutboxAggregates {
		names = append(names, topics.Outbox(topics.DefaultPrefix, a))
	}
	return names
}

// consumerTopics are the topics balance and cache read.
func (s *stack) consumerTopics() []string {
	var names []string
	for _, c := range consumers {
		names = append(names, c.topics...)
	}
	return names
}

// streamedMessage renders a message the producers published while
// streaming (not in a snapshot) as a replay's JSON line would hold it.
func streamedMessage(t *testing.T, r *kgo.Record) (string, bool) {
	var v struct {
		Source *struct {
			Snapshot string `json:"snapshot"`
		} `json:"source"`
	}
	if json.Unmarshal(r.Value, &v) == nil && v.Source != nil && v.Source.Snapshot != "false" {
		return "", false
	}
	line := map[string]any{"topic": r.Topic, "key": rawJSON(r.Key), "value": rawJSON(r.Value)}
	if len(r.Headers) > 0 {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		line["headers"] = h
	}
	b, err := json.Marshal(line)
	if err != nil {
		t.Fatal(err)
	}
	return normalizeLine(t, string(b)), true
}

func rawJSON(b []byte) json.RawMessage {
	if b == nil {
		return json.RawMessage("null")
	}
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// normalizeLine drops the value's top-level ts_ms, ts_us and ts_ns (when
// the envelope was written, not what it says) and renders the line with
// sorted keys.
func normalizeLine(t *testing.T, line string) string {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(line))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("line %q: %v", tail(line, 300), err)
	}
	if v, ok := m["value"].(map[string]any); ok {
		delete(v, "ts_ms")
		delete(v, "ts_us")
		delete(v, "ts_ns")
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readLines reads a replay's output, normalized.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, normalizeLine(t, line))
		}
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// sameMessages fails the test unless a and b hold the same messages the
// same number of times.
func sameMessages(t *testing.T, aName string, a []string, bName string, b []string) {
	t.Helper()
	count := map[string]int{}
	for _, m := range a {
		count[m]++
	}
	for _, m := range b {
		count[m]--
	}
	var onlyA, onlyB []string
	for m, n := range count {
		for ; n > 0; n-- {
			onlyA = append(onlyA, m)
		}
		for ; n < 0; n++ {
			onlyB = append(onlyB, m)
		}
	}
	sort.Strings(onlyA)
	sort.Strings(onlyB)
	if len(onlyA)+len(onlyB) > 0 {
		t.Errorf("%d messages %s are not %s, %d the other way round (of %d and %d); first of each:\n%s\n%s", len(onlyA), aName, bName,
			len(onlyB), len(a), len(b), strings.Join(onlyA[:min(3, len(onlyA))], "\n"), strings.Join(onlyB[:min(3, len(onlyB))], "\n"))
	}
}

// streamedRange is shard i's range streamed so far: from the GTID set of
// its snapshot to that of its checkpoint, which must be where the server
// is (the load is over).
func (s *stack) streamedRange(i int) [2]string {
	s.t.Helper()
	var first, last string
	for _, r := range readTopics(s.t, s.brokers, []string{topics.Checkpoints(topics.DefaultPrefix)}) {
		if string(r.Key) != fmt.Sprintf("shard-%d", i) {
			continue
		}
		var cp struct {
			GTID                   string
			Snapshot, Snapshotting bool
		}
		if err := json.Unmarshal(r.Value, &cp); err != nil {
			s.t.Fatal(err)
		}
		if first == "" && cp.Snapshot && !cp.Snapshotting {
			first = cp.GTID
		}
		last = cp.GTID
	}
	if now := s.scalar(i, "SELECT @@gtid_binlog_pos"); first == "" || last != now {
		s.t.Fatalf("shard %d: snapshot checkpoint %q, last checkpoint %q, server at %q: want a snapshot and the checkpoint at the server's position",
			i, first, last, now)
	}
	return [2]string{first, last}
}

// archiveAndPurge copies shard i's binlog files into a folder, then has
// the server purge all but a new one, and returns the folder.
func (s *stack) archiveAndPurge(i int) string {
	s.t.Helper()
	db := s.shards[i]
	ctx := context.Background()
	var base string
	if err := db.QueryRowContext(ctx, "SELECT @@log_bin_basename").Scan(&base); err != nil {
		s.t.Fatal(err)
	}
	archive := s.t.TempDir()
	for _, name := range s.binlogs(db) {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(base), name))
		if err != nil {
			s.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(archive, name), b, 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, "FLUSH BINARY LOGS"); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs := s.binlogs(db)
		newest := logs[len(logs)-1]
		if len(logs) == 1 {
			s.t.Logf("shard %d: binlogs purged up to %s, archived in %s", i, newest, archive)
			return archive
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("shard %d still holds %v after PURGE BINARY LOGS TO %q", i, logs, newest)
		}
		// A file the live producer still reads is kept: try again.
		if _, err := db.ExecContext(ctx, "PURGE BINARY LOGS TO '"+newest+"'"); err != nil {
			s.t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *stack) binlogs(db *sql.DB) []string {
	s.t.Helper()
	var names []string
	err := sqldb.Each(context.Background(), db, "SHOW BINARY LOGS", func(r *sql.Rows) error {
		cols, _ := r.Columns()
		vals := make([]any, len(cols))
		var name string
		vals[0] = &name
		for i := 1; i < len(vals); i++ {
			vals[i] = new(sql.RawBytes)
		}
		if err := r.Scan(vals...); err != nil {
			return err
		}
		names = append(names, name)
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return names
}

// handled reads each consumer's changes handled, by result.
func (s *stack) handled() map[string]map[string]float64 {
	s.t.Helper()
	out := map[string]map[string]float64{}
	for name := range consumers {
		s.waitReady(name)
		c, err := s.changes(name)
		if err != nil {
			s.t.Fatal(err)
		}
		out[name] = c
	}
	return out
}

// waitHandled waits until the consumers have handled added messages more
// than before, between them, and returns their counts.
func (s *stack) waitHandled(before map[string]map[string]float64, added int64) map[string]map[string]float64 {
	s.t.Helper()
	sum := func(c map[string]float64) float64 {
		return c["applied"] + c["duplicate"] + c["superseded"] + c["dead_letter"] + c["tombstone"]
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		now := s.handled()
		n := 0.0
		for name, c := range now {
			n += sum(c) - sum(before[name])
		}
		if n >= float64(added) {
			return now
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the consumers handled %v of %d messages added (before %v, now %v)", n, added, before, now)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// backupConsumers stops balance and cache, copies their databases into
// backup_<db> and starts them again.
func (s *stack) backupConsumers() {
	s.t.Helper()
	s.eachConsumerTable(func(ctx context.Context, db *sql.DB, schema, table string) error {
		for _, q := range []string{
			"CREATE DATABASE IF NOT EXISTS backup_" + schema,
			fmt.Sprintf("CREATE TABLE backup_%[1]s.%[2]s LIKE %[1]s.%[2]s", schema, table),
			fmt.Sprintf("INSERT INTO backup_%[1]s.%[2]s SELECT * FROM %[1]s.%[2]s", schema, table),
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
}

// restoreConsumers stops balance and cache, puts back their databases as
// backupConsumers copied them and starts them again.
func (s *stack) restoreConsumers() {
	s.t.Helper()
	s.eachConsumerTable(func(ctx context.Context, db *sql.DB, schema, table string) error {
		for _, q := range []string{
			fmt.Sprintf("DELETE FROM %[1]s.%[2]s", schema, table),
			fmt.Sprintf("INSERT INTO %[1]s.%[2]s SELECT * FROM backup_%[1]s.%[2]s", schema, table),
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
}

// eachConsumerTable calls fn for every table of balance's and cache's
// databases with both stopped, then starts them again.
func (s *stack) eachConsumerTable(fn func(ctx context.Context, db *sql.DB, schema, table string) error) {
	s.t.Helper()
	names := make([]string, 0, len(consumers))
	for name := range consumers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		s.procs[name].Stop(15 * time.Second)
	}
	db, err := sqldb.Open(sqldb.Config{Addr: s.layout.ControlAddr(), User: "root"})
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for _, name := range names {
		schema := consumers[name].db
		var tables []string
		err := sqldb.Each(ctx, db, "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'",
			func(r *sql.Rows) error {
				var t string
				err := r.Scan(&t)
				tables = append(tables, t)
				return err
			}, schema)
		if err != nil {
			s.t.Fatal(err)
		}
		for _, table := range tables {
			if err := fn(ctx, db, schema, table); err != nil {
				s.t.Fatalf("%s.%s: %v", schema, table, err)
			}
		}
	}
	for _, name := range names {
		if err := s.procs[name].Start(); err != nil {
			s.t.Fatal(err)
		}
	}
}
