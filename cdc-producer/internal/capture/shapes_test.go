package capture

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	gomysql "github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
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
	cols, err := TableOf(table())
	if err != nil {
		t.Fatal(err)
	}
	row := cols.row([]any{int64(42), "1234.50", "2025-10-15 17:41:40.021", "2025-10-15 17:41:40.021345",
		[]byte(`{"a":[1,2.5,"x"]}`), int64(2), []byte("hello"), []byte{0xff, 0x00}})
	got, _ := json.Marshal(row)
	want := `{"amount":"1234.50","at":1760550100021,"at6":1760550100021345,"doc":"{\"a\":[1,2.5,\"x\"]}","id":42,"note":"hello","raw":"/wA=","type":"debit"}`
	if string(got) != want {
		t.Errorf("row = %s\nwant  %s", got, want)
	}
}

func TestMissingColumnNamesIsFatal(t *testing.T) {
	tm := table()
	tm.ColumnName = nil // binlog_row_metadata=MINIMAL
	if _, err := TableOf(tm); !errors.Is(err, ErrNoColumnNames) {
		t.Fatalf("TableOf without column names = %v, want ErrNoColumnNames", err)
	}
}

func TestMySQLGTIDAndV2RowsEvents(t *testing.T) {
	cfg := Config{Shard: 3, Database: "shop", TopicPrefix: "shop", Tables: map[string]Key{"t": {Columns: []string{"id"}}}}
	enc := NewEncoder(cfg, NewMetrics(prometheus.NewRegistry()))
	dec := NewDecoder(enc, cfg, nil, "binlog.000007", 1)
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
