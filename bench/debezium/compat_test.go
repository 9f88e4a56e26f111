package debezium

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/localdb"
	"github.com/shopledger/shopledger/internal/localstack"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/internal/topics"
	"github.com/shopledger/shopledger/schema"
)

// typesDDL has a column of every MariaDB type the producer renders (and
// defaults of several kinds, which json-with-schema carries).
const typesDDL = `CREATE TABLE compat_types (
  id BIGINT NOT NULL PRIMARY KEY,
  b BOOLEAN NULL, t1 TINYINT(1) NOT NULL DEFAULT 1, bit1 BIT(1) NULL, bit3 BIT(3) NULL,
  bit16 BIT(16) NOT NULL DEFAULT b'101', bit64 BIT(64) NULL,
  ti TINYINT NULL, tiu TINYINT UNSIGNED NULL, si SMALLINT NULL, siu SMALLINT UNSIGNED NULL,
  mi MEDIUMINT NULL, miu MEDIUMINT UNSIGNED NULL, i INT NOT NULL DEFAULT 7, iu INT UNSIGNED NULL,
  bi BIGINT NULL, biu BIGINT UNSIGNED NULL,
  f FLOAT NULL, d DOUBLE NULL, dec1 DECIMAL(18,2) NOT NULL DEFAULT 0, dec0 DECIMAL(10,0) NULL, decbig DECIMAL(65,30) NULL,
  dt DATE NULL, dtd DATE NOT NULL DEFAULT '2020-02-29', tm TIME NULL, tm6 TIME(6) NULL,
  dtm DATETIME NULL, dtm3 DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), dtm6 DATETIME(6) NULL,
  ts TIMESTAMP NULL, ts3 TIMESTAMP(3) NULL, ts6 TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  yr YEAR NULL, en ENUM('credit','debit','it''s') NOT NULL DEFAULT 'debit', st SET('a','b','c') NULL,
  js JSON NULL, ch CHAR(4) NULL, vc VARCHAR(32) NOT NULL DEFAULT 'x', tx TEXT NULL,
  bn BINARY(4) NULL, vb VARBINARY(8) NULL, bl BLOB NULL
)`

// typesRow is a row of compat_types with every column set (%d: its id).
const typesRow = `INSERT INTO compat_types VALUES (%d, TRUE, 0, b'1', b'101', b'0000000100000010',
  b'1000000000000000000000000000000000000000000000000000000000000001',
  -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
  0.1, 3.141592653589793, -12.50, 42, 12345678901234567890.123456789012345678901234567890,
  '1969-07-20', '1999-12-31', '-838:59:59', '12:34:56.789012',
  '2025-10-15 17:41:40', '2025-10-15 17:41:40.021', '1965-10-15 17:41:40.021345',
  '2025-10-15 17:41:40', '2025-10-15 17:41:40.020', '2025-10-15 17:41:40.000001',
  2025, 'it''s', 'a,c', '{"a": [1, 2.5, "x"], "é": null}',
  'ab', 'héllo "q" <&> \\ ✓', 'line1\nline2\ttab', x'0102', x'00ff', x'deadbeef')`

// Both captures run with the same logical name, so that source.name and
// the schema names agree; Debezium's topics are renamed dbz.<topic> by
// Kafka Connect's RegexRouter.
const (
	prefix   = "shop"
	dbzTopic = "dbz."
)

// TestCompat runs Debezium's MariaDB connector and the cdc-producer over
// the same shard and the same changes (a snapshot, every column type,
// inserts, updates, deletes, a multi-table transaction, ADD COLUMN
// mid-stream) and compares the two streams message by message: keys,
// values with their schemas (json-with-schema), tombstones, the order per
// key, transaction metadata and heartbeats. Only the differences the
// README lists as deliberate are allowed (see normalize). Then both
// streams go through Kafka's JsonConverter and Debezium's
// ExtractNewRecordState, as a JDBC sink would read them, and must give the
// same rows.
func TestCompat(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB, Apache Kafka, Debezium and the cdc-producer")
	}
	start := time.Now()
	jar := buildRunner(t)
	inst := stacktest.MariaDB(t)
	db := stacktest.Database(t, inst, "shop", schema.Shard)
	kc := stacktest.Kafka(t, 1)
	brokers := strings.Join(kc.Brokers(), ",")
	mustExec(t, db, typesDDL)
	for _, q := range []string{
		fmt.Sprintf(typesRow, 1),
		"INSERT INTO compat_types (id) VALUES (2)",
		"INSERT INTO shop (id, good_id, count, active, price) VALUES (1, 1, 5, TRUE, 1.50), (1, 2, 0, TRUE, 2.00), (2, 1, 3, FALSE, 0.99)",
		"INSERT INTO account_transaction (user_id, amount, type, reason, idempotency_key) VALUES (7, 10.00, 'credit', 'initial', 'k1')",
		"INSERT INTO good (id, name, brand, price) VALUES (3, 'kettle', 'acme', 12.50)",
		"INSERT INTO user (id, name, balance) VALUES (7, 'ann', 7.50)",
	} {
		mustExec(t, db, q)
	}
	// Every table the producer captures by default, and compat_types.
	tables := append([]string{"compat_types"}, topics.CDCTables...)
	slices.Sort(tables)
	const snapshotRows = 8

	// Debezium: the runner with TINYINT(1) as boolean (its
	// TinyIntOneToBooleanConverter), the keys ours are configured with, and
	// transaction metadata and heartbeats on.
	dbz := startCapture(t, jar, "--port", strconv.Itoa(inst.Port), "--user", "root", "--database", "shop",
		"--tables", strings.Join(tables, ","), "--server-id", "5401", "--topic-prefix", prefix, "--kafka", brokers, "--schemas", "true",
		"--set", "converters=boolean", "--set", "boolean.type=io.debezium.connector.binlog.converters.TinyIntOneToBooleanConverter",
		"--set", "message.key.columns=shop.shop:id;shop.account_transaction:user_id",
		"--set", "provide.transaction.metadata=true", "--set", "heartbeat.interval.ms=1000",
		"--set", "transforms=route", "--set", "transforms.route.type=org.apache.kafka.connect.transforms.RegexRouter",
		"--set", "transforms.route.regex=(.*)", "--set", "transforms.route.replacement="+dbzTopic+"$1")
	_ = dbz
	startProducer(t, inst, kc.Brokers(), tables)

	// Both snapshots done (each side's last snapshot row seen), then the changes.
	waitFor(t, "both snapshots", func() (bool, string) {
		ours, theirs := countAll(t, kc.Brokers(), tables, ourTopic), countAll(t, kc.Brokers(), tables, theirTopic)
		return ours == snapshotRows && theirs == snapshotRows, fmt.Sprintf("snapshot rows: ours %d, Debezium's %d, want %d", ours, theirs, snapshotRows)
	})
	for _, q := range []string{
		fmt.Sprintf(typesRow, 3),
		"INSERT INTO compat_types (id, b, bit1, st, ts3) VALUES (4, FALSE, b'0', '', '2025-10-15 17:41:40.100')",
		"UPDATE compat_types SET b = NULL, t1 = 1, bit3 = b'010', st = 'b,c', en = 'credit', ts3 = '2030-01-01 00:00:00', tm6 = '-00:00:00.5' WHERE id = 3",
		"BEGIN",
		"INSERT INTO shop (id, good_id, count, active, price) VALUES (3, 1, 1, TRUE, 5.00)",
		"UPDATE shop SET active = FALSE, count = count + 1 WHERE id = 1",
		"INSERT INTO account_transaction (user_id, amount, type, reason, idempotency_key) VALUES (7, 2.50, 'debit', 'purchase', 'k2')",
		"COMMIT",
		"DELETE FROM compat_types WHERE id = 2",
		"DELETE FROM shop WHERE id = 2",
		`INSERT INTO events (event_key, event_type, shop_id, user_id, order_id, good_id, timestamp, shard, status, source_file, source_line)
		  VALUES ('k1', 1, 5, 7, 900, 3, '2025-10-15 17:41:40.021', 0, 'applied', '20251015174140', 1)`,
		"ALTER TABLE compat_types ADD COLUMN extra VARCHAR(8) NULL DEFAULT 'e', ADD COLUMN tsd TIMESTAMP(3) NOT NULL DEFAULT '2020-01-01 00:00:00.500'",
		"INSERT INTO compat_types (id, extra) VALUES (5, 'z')",
		"UPDATE compat_types SET extra = 'y', i = 9 WHERE id = 3",
		"UPDATE user SET balance = balance - 2.50 WHERE id = 7",
		"INSERT INTO compat_types (id) VALUES (999)", // the last change
	} {
		mustExec(t, db, q)
	}
	waitFor(t, "both streams", func() (bool, string) {
		ours := readTopic(t, kc.Brokers(), ourTopic("compat_types"))
		theirs := readTopic(t, kc.Brokers(), theirTopic("compat_types"))
		return hasKey(ours, `{"id":999}`) && hasKey(theirs, `{"id":999}`), fmt.Sprintf("compat_types: ours %d, Debezium's %d messages", len(ours), len(theirs))
	})
	time.Sleep(2 * time.Second) // heartbeats and the last transaction's END

	var r report
	for _, table := range tables {
		ours, theirs := readTopic(t, kc.Brokers(), ourTopic(table)), readTopic(t, kc.Brokers(), theirTopic(table))
		dump(t, ourTopic(table), ours)
		dump(t, theirTopic(table), theirs)
		r.compareTable(t, table, ours, theirs)
	}
	for _, pair := range [][2]string{{prefix + ".transaction", dbzTopic + prefix + ".transaction"},
		{prefix + ".heartbeat", dbzTopic + "__debezium-heartbeat." + prefix}} {
		ours, theirs := readTopic(t, kc.Brokers(), pair[0]), readTopic(t, kc.Brokers(), pair[1])
		dump(t, pair[0], ours)
		dump(t, pair[1], theirs)
		if strings.HasSuffix(pair[0], ".transaction") {
			r.compareTransactions(t, ours, theirs)
		} else {
			r.compareHeartbeats(t, ours, theirs)
		}
	}
	checkAcceptance(t, readTopic(t, kc.Brokers(), ourTopic("shop")))

	// As a JDBC sink reads them: JsonConverter, then ExtractNewRecordState.
	var ourTopics, theirTopics []string
	for _, table := range tables {
		ourTopics, theirTopics = append(ourTopics, ourTopic(table)), append(theirTopics, theirTopic(table))
	}
	r.compareSink(t, sink(t, jar, brokers, ourTopics), sink(t, jar, brokers, theirTopics))
	r.fail(t)
	t.Logf("compat: %d messages compared (%d after ExtractNewRecordState), %d differences; took %s",
		r.compared, r.unwrapped, r.differences, time.Since(start).Round(time.Second))
}

// startProducer runs the cdc-producer binary on shard 0 of inst with the
// settings the comparison needs: json-with-schema, transaction metadata,
// heartbeats every second, the keys given to Debezium.
func startProducer(t *testing.T, inst *localdb.Instance, brokers []string, tables []string) {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`shard = 0
[database]
addr = %q
[capture]
tables = [%s]
format = "json-with-schema"
transaction_metadata = true
[capture.keys]
events = "id"
shop = "id"
account_transaction = "user_id"
[heartbeat]
interval = "1s"
[kafka]
brokers = [%q]
topic_prefix = %q
checkpoint_topic = "ours.cdc-checkpoints"
partitions = 1
[server]
port = -1
`, inst.Addr(), `"`+strings.Join(tables, `","`)+`"`, strings.Join(brokers, `","`), prefix)
	path := filepath.Join(dir, "cdc-producer.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logs, err := os.Create(filepath.Join(dir, "producer.log"))
	if err != nil {
		t.Fatal(err)
	}
	p := &localstack.Process{Name: "cdc-producer-0", Bin: stacktest.Binary(t, "cdc-producer"), Args: []string{"--config", path},
		Out: &localstack.PrefixWriter{W: logs}}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(10 * time.Second)
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("cdc-producer log:\n%s", tail(string(b), 8000))
		}
	})
}

func mustExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// waitFor polls cond for up to a minute.
func waitFor(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %s", what, state)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// record is a Kafka message as read: nil Value for a tombstone.
type record struct {
	Key, Value []byte
	Offset     int64
}

// readTopic reads every message of topic's single partition; none if the
// topic does not exist yet.
func readTopic(t testing.TB, brokers []string, topic string) []record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	meta, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	_, err = meta.ReadPartitions(topic)
	meta.Close()
	if err != nil { // no such topic (yet): Debezium creates a table's on its first message
		return nil
	}
	conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, 0)
	if err != nil { // a topic just created may have no leader yet
		t.Logf("read %s: %v", topic, err)
		return nil
	}
	first, last, err := conn.ReadOffsets()
	conn.Close()
	if err != nil {
		t.Logf("read %s: %v", topic, err)
		return nil
	}
	if last <= first {
		return nil
	}
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond})
	defer rd.Close()
	if err := rd.SetOffset(first); err != nil {
		t.Fatal(err)
	}
	var out []record
	for {
		m, err := rd.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %s: %v", topic, err)
		}
		out = append(out, record{Key: m.Key, Value: m.Value, Offset: m.Offset})
		if m.Offset >= last-1 {
			return out
		}
	}
}

// ourTopic and theirTopic are the topics of table: <prefix>.<table>, and
// Debezium's <prefix>.<db>.<table> renamed.
func ourTopic(table string) string   { return prefix + "." + table }
func theirTopic(table string) string { return dbzTopic + prefix + ".shop." + table }

// countAll counts the snapshot rows (op r) in the topics of tables.
func countAll(t *testing.T, brokers []string, tables []string, topicOf func(string) string) int {
	n := 0
	for _, table := range tables {
		for _, r := range readTopic(t, brokers, topicOf(table)) {
			if strings.Contains(string(r.Value), `"op":"r"`) {
				n++
			}
		}
	}
	return n
}

// dump writes recs as JSON lines to $COMPAT_DUMP/<topic>.jsonl when
// COMPAT_DUMP names a folder, for a person to read both streams.
func dump(t *testing.T, topic string, recs []record) {
	dir := os.Getenv("COMPAT_DUMP")
	if dir == "" {
		return
	}
	var b strings.Builder
	for _, r := range recs {
		v := string(r.Value)
		if r.Value == nil {
			v = "null"
		}
		fmt.Fprintf(&b, "{\"key\":%s,\"value\":%s}\n", r.Key, v)
	}
	if err := os.WriteFile(filepath.Join(dir, topic+".jsonl"), []byte(b.String()), 0o644); err != nil {
		t.Error(err)
	}
}

func hasKey(recs []record, payload string) bool {
	for _, r := range recs {
		if strings.Contains(string(r.Key), `"payload":`+payload) {
			return true
		}
	}
	return false
}
