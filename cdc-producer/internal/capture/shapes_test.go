package capture

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	gomysql "github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// These tests build go-mysql event values in the shapes a MySQL 8 server
// sends (binary JSON decoded by go-mysql, uuid GTID sets, v2 row events,
// DATETIME(6), ENUM, BLOB), since no MySQL 8 server runs here; MariaDB's
// shapes are covered by the integration tests.

func table() *replication.TableMapEvent {
	return &replication.TableMapEvent{
		TableID: 7, Schema: []byte("shop"), Table: []byte("t"), ColumnCount: 8,
		ColumnType: []byte{mysql.MYSQL_TYPE_LONGLONG, mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DATETIME2,
			mysql.MYSQL_TYPE_DATETIME2, mysql.MYSQL_TYPE_JSON, mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_BLOB, mysql.MYSQL_TYPE_BLOB},
		ColumnMeta: []uint16{0, 18<<8 | 2, 3, 6, 4, uint16(mysql.MYSQL_TYPE_ENUM)<<8 | 1, 2, 2},
		ColumnName: [][]byte{[]byte("id"), []byte("amount"), []byte("at"), []byte("at6"), []byte("doc"),
			[]byte("type"), []byte("note"), []byte("raw")},
		EnumStrValue: [][][]byte{{[]byte("credit"), []byte("debit")}},
		// Character columns in order (ENUM and SET are listed apart, in
		// EnumSetColumnCharset): note (TEXT, utf8mb4), raw (BLOB, binary).
		ColumnCharset: []uint64{255, 63},
	}
}

func TestConvertMySQL8Row(t *testing.T) {
	cols, err := tableOf(table(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := cols.appendRow(nil, []any{int64(42), "1234.50", "2025-10-15 17:41:40.021", "2025-10-15 17:41:40.021345",
		`{"a":[1,2.5,"x"]}`, int64(2), []byte("hello"), []byte{0xff, 0x00}})
	want := `{"id":42,"amount":"1234.50","at":1760550100021,"at6":1760550100021345,"doc":"{\"a\":[1,2.5,\"x\"]}","type":"debit","note":"hello","raw":"/wA="}`
	if string(got) != want {
		t.Errorf("row = %s\nwant  %s", got, want)
	}
}

func TestMissingColumnNamesIsFatal(t *testing.T) {
	tm := table()
	tm.ColumnName = nil // binlog_row_metadata=MINIMAL
	if _, err := tableOf(tm, nil); !errors.Is(err, ErrNoColumnNames) {
		t.Fatalf("TableOf without column names = %v, want ErrNoColumnNames", err)
	}
}

func TestMySQLGTIDAndV2RowsEvents(t *testing.T) {
	cfg := Config{Shard: 3, Database: "shop", TopicPrefix: "shop", Tables: map[string]Key{"t": {Columns: []string{"id"}}}}
	enc := NewEncoder(cfg, "mysql", NewMetrics(prometheus.NewRegistry()))
	dec := NewDecoder(enc, nil, cfg, nil, "binlog.000007", 1)
	sid := []byte{0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62}
	tm := table()
	for _, ev := range []*replication.BinlogEvent{
		{Header: &replication.EventHeader{EventType: replication.GTID_EVENT}, Event: &replication.GTIDEvent{SID: sid, GNO: 23}},
		{Header: &replication.EventHeader{EventType: replication.TABLE_MAP_EVENT}, Event: tm},
	} {
		if _, _, err := dec.Decode(t.Context(), nil, ev); err != nil {
			t.Fatal(err)
		}
	}
	if dec.gtid != "3e11fa47-71ca-11e1-9e33-c80aa9429562:23" {
		t.Errorf("gtid = %s, want uuid:gno", dec.gtid)
	}
	before := []any{int64(1), "1.00", nil, nil, nil, int64(1), nil, nil}
	after := []any{int64(1), "2.00", nil, nil, nil, int64(2), nil, nil}
	h := &replication.EventHeader{EventType: replication.UPDATE_ROWS_EVENTv2, ServerID: 9, EventSize: 100, LogPos: 1100, Timestamp: 1760550100}
	msgs, end, err := dec.Decode(t.Context(), nil, &replication.BinlogEvent{Header: h, Event: &replication.RowsEvent{Version: 2, Table: tm, TableID: 7, Rows: [][]any{before, after}}})
	if err != nil || end != nil {
		t.Fatal(end, err)
	}
	if len(msgs) != 1 {
		t.Fatalf("an update of one row gave %d messages, want 1", len(msgs))
	}
	var env Envelope
	json.Unmarshal(msgs[0].Value, &env)
	if env.Op != OpUpdate || env.Before["amount"] != "1.00" || env.After["type"] != "debit" ||
		env.Source.Pos != 1000 || env.Source.File != "binlog.000007" || env.Source.GTID != dec.gtid || env.Source.Shard != 3 ||
		env.Source.Epoch != 1 || string(msgs[0].Key) != `{"id":1}` || msgs[0].Topic != "shop.t" {
		t.Errorf("message = %s %s %+v", msgs[0].Topic, msgs[0].Key, env)
	}

	// A checkpoint's GTID set of MySQL, and of MariaDB, survives a round trip.
	for flavor, set := range map[string]string{
		mysql.MySQLFlavor:   "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23,4e11fa47-71ca-11e1-9e33-c80aa9429562:1-5",
		mysql.MariaDBFlavor: "0-11-151,1-12-7",
	} {
		g, err := mysql.ParseGTIDSet(flavor, set)
		if err != nil || g.String() != set {
			t.Errorf("ParseGTIDSet(%s, %s) = %v, %v", flavor, set, g, err)
		}
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\\back`, "nl\ncr\rtab\tnul\x00bell\x07", "<a & b>", "line\u2028sep\u2029",
		"привет, 世界 🙂", "bad\xffutf8\xc3", "é"} {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
	for _, v := range []any{int8(-5), int16(300), int32(-70000), int64(1 << 60), uint64(1 << 63), 2.5, float32(0.1), true, nil} {
		want, _ := json.Marshal(v)
		if got := appendValue(nil, v); string(got) != string(want) {
			t.Errorf("appendValue(%v) = %s, want %s", v, got, want)
		}
	}
}

func TestDSNEscapesThePassword(t *testing.T) {
	cfg, err := gomysql.ParseDSN(dsn(Config{Addr: "db:3306", User: "cdc", Password: "p@ss/w:rd?", Database: "shop"}))
	if err != nil || cfg.Passwd != "p@ss/w:rd?" || cfg.Addr != "db:3306" || cfg.DBName != "shop" || cfg.ParseTime {
		t.Errorf("dsn round trip = %+v, %v", cfg, err)
	}
}

// mysqlTable is a MySQL 8 table map with full metadata: a boolean
// (TINYINT(1), known from information_schema), an unsigned BIGINT, BIT(3),
// SET, TIMESTAMP(3), JSON.
func mysqlTable() (*replication.TableMapEvent, []infoColumn) {
	tm := &replication.TableMapEvent{
		TableID: 9, Schema: []byte("shop"), Table: []byte("t8"), ColumnCount: 7,
		ColumnType: []byte{mysql.MYSQL_TYPE_LONGLONG, mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_LONGLONG, mysql.MYSQL_TYPE_BIT,
			mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_TIMESTAMP2, mysql.MYSQL_TYPE_JSON},
		ColumnMeta: []uint16{0, 0, 0, 3, uint16(mysql.MYSQL_TYPE_SET)<<8 | 1, 3, 4},
		ColumnName: [][]byte{[]byte("id"), []byte("active"), []byte("big"), []byte("flags"), []byte("tags"), []byte("at"), []byte("doc")},
		// id, active, big are numeric: big is unsigned.
		SignednessBitmap: []byte{0b00100000},
		NullBitmap:       []byte{0b11111110},
		SetStrValue:      [][][]byte{{[]byte("a"), []byte("b"), []byte("c")}},
		PrimaryKey:       []uint64{0},
	}
	def := "1"
	info := []infoColumn{{name: "id", dataType: "bigint", columnType: "bigint", keySeq: 1},
		{name: "active", dataType: "tinyint", columnType: "tinyint(1)", nullable: true, def: &def}}
	return tm, info
}

// A MySQL 8 transaction (GTID, BEGIN with its thread, table map, rows,
// XID) gives Debezium's MySQL shapes: connector mysql, gtid uuid:gno, the
// thread, BEGIN and END on the transaction topic around the changes with
// their transaction blocks, json-with-schema with the MySQL Source schema
// and the JSON column's io.debezium.data.Json, a tombstone after a delete.
func TestMySQL8Transaction(t *testing.T) {
	tm, info := mysqlTable()
	cfg := Config{Shard: 2, Database: "shop", TopicPrefix: "shop", Tables: map[string]Key{"t8": {}}, ValueFormat: FormatJSONWithSchema,
		KeyFormat: FormatJSON, Tombstones: true, TransactionMetadata: true}
	dec := NewDecoder(NewEncoder(cfg, "mysql", nil), nil, cfg, nil, "binlog.000003", 4)
	dec.tables[tm.TableID], _ = tableOf(tm, info) // as a Schema would complete it
	dec.scratch = appendFingerprint(nil, tm)
	sid := []byte{0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62}
	row := []any{int64(1), int8(1), uint64(1 << 63), int64(5), int64(6), "2025-10-15 17:41:40.020", `{"a":[1,2.5]}`}
	var msgs []kafka.Message
	var end *End
	for _, ev := range []*replication.BinlogEvent{
		{Header: &replication.EventHeader{EventType: replication.GTID_EVENT}, Event: &replication.GTIDEvent{SID: sid, GNO: 23}},
		{Header: &replication.EventHeader{EventType: replication.QUERY_EVENT}, Event: &replication.QueryEvent{SlaveProxyID: 42, Query: []byte("BEGIN")}},
		{Header: &replication.EventHeader{EventType: replication.TABLE_MAP_EVENT}, Event: tm},
		{Header: &replication.EventHeader{EventType: replication.WRITE_ROWS_EVENTv2, ServerID: 9, EventSize: 100, LogPos: 1100, Timestamp: 1760550100},
			Event: &replication.RowsEvent{Version: 2, Table: tm, TableID: 9, Rows: [][]any{row}}},
		{Header: &replication.EventHeader{EventType: replication.DELETE_ROWS_EVENTv2, ServerID: 9, EventSize: 100, LogPos: 1200, Timestamp: 1760550100},
			Event: &replication.RowsEvent{Version: 2, Table: tm, TableID: 9, Rows: [][]any{row}}},
		{Header: &replication.EventHeader{EventType: replication.XID_EVENT, LogPos: 1231, Timestamp: 1760550101}, Event: &replication.XIDEvent{}},
	} {
		var err error
		if msgs, end, err = dec.Decode(t.Context(), msgs, ev); err != nil {
			t.Fatal(err)
		}
	}
	if end == nil || end.Pos != 1231 || end.File != "binlog.000003" {
		t.Fatalf("end = %+v, want the XID's position", end)
	}
	var topics []string
	for _, m := range msgs {
		topics = append(topics, m.Topic)
	}
	if want := "shop.transaction shop.t8 shop.t8 shop.t8 shop.transaction"; strings.Join(topics, " ") != want {
		t.Fatalf("topics = %v, want %s (BEGIN, insert, delete, tombstone, END)", topics, want)
	}
	if msgs[3].Value != nil || string(msgs[3].Key) != `{"id":1}` {
		t.Errorf("after the delete: %s %s, want the tombstone of {\"id\":1}", msgs[3].Key, msgs[3].Value)
	}
	var insert struct {
		Schema struct {
			Fields []struct {
				Field  string
				Name   string
				Fields []struct{ Field, Type, Name string }
			}
		}
		Payload struct {
			After  map[string]any
			Source map[string]any
			Tx     map[string]any `json:"transaction"`
		}
	}
	if err := json.Unmarshal(msgs[1].Value, &insert); err != nil {
		t.Fatalf("%s: %v", msgs[1].Value, err)
	}
	p := insert.Payload
	if p.After["active"] != true || p.After["big"] != -9.223372036854776e18 || p.After["flags"] != "BQ==" || p.After["tags"] != "b,c" ||
		p.After["at"] != "2025-10-15T17:41:40.020Z" || p.After["doc"] != `{"a":[1,2.5]}` {
		t.Errorf("after = %v", p.After)
	}
	if p.Source["connector"] != "mysql" || p.Source["gtid"] != "3e11fa47-71ca-11e1-9e33-c80aa9429562:23" || p.Source["thread"] != 42.0 ||
		p.Source["pos"] != 1000.0 || p.Source["epoch"] != 4.0 || p.Source["shard"] != 2.0 {
		t.Errorf("source = %v", p.Source)
	}
	if p.Tx["id"] != "3e11fa47-71ca-11e1-9e33-c80aa9429562:23" || p.Tx["total_order"] != 1.0 {
		t.Errorf("transaction = %v", p.Tx)
	}
	if f := insert.Schema.Fields; len(f) != 8 || f[2].Name != "io.debezium.connector.mysql.Source" || f[1].Fields[6].Name != "io.debezium.data.Json" ||
		f[1].Fields[1].Type != "boolean" {
		t.Errorf("schema fields = %+v", f)
	}
	if !strings.Contains(string(msgs[4].Value), `"status":"END","id":"3e11fa47-71ca-11e1-9e33-c80aa9429562:23","event_count":2,"data_collections":[{"data_collection":"shop.t8","event_count":2}]`) {
		t.Errorf("END = %s", msgs[4].Value)
	}
}

// A table id mapped to a captured table and then (after a server restart
// or a DDL) to one that is not captured must not publish the other
// table's rows as the first's.
func TestTableIDReusedByAnotherTable(t *testing.T) {
	cfg := Config{Shard: 1, Database: "shop", TopicPrefix: "shop", Tables: map[string]Key{"t": {}}}
	dec := NewDecoder(NewEncoder(cfg, "mariadb", nil), nil, cfg, nil, "binlog.000001", 1)
	captured := table()
	other := table()
	other.Table = []byte("pending_return")
	row := []any{int64(1), "1.00", nil, nil, nil, int64(1), nil, nil}
	insert := func(tm *replication.TableMapEvent) *replication.BinlogEvent {
		return &replication.BinlogEvent{Header: &replication.EventHeader{EventType: replication.WRITE_ROWS_EVENTv2, LogPos: 500, EventSize: 50},
			Event: &replication.RowsEvent{Table: tm, TableID: tm.TableID, Rows: [][]any{row}}}
	}
	var msgs []kafka.Message
	for _, ev := range []*replication.BinlogEvent{
		{Header: &replication.EventHeader{}, Event: captured}, insert(captured),
		{Header: &replication.EventHeader{}, Event: other}, insert(other), // the same id, another table
		{Header: &replication.EventHeader{}, Event: &replication.RotateEvent{NextLogName: []byte("binlog.000002")}},
		insert(captured), // no table map since the rotation
	} {
		var err error
		if msgs, _, err = dec.Decode(t.Context(), msgs, ev); err != nil {
			t.Fatal(err)
		}
	}
	if len(msgs) != 1 || msgs[0].Topic != "shop.t" {
		t.Errorf("messages = %d, want only the captured table's one insert", len(msgs))
	}
}
