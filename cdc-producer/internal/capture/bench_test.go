package capture

import (
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/segmentio/kafka-go"
)

// eventsTable is a table map of the shard's events table (14 columns).
func eventsTable() *replication.TableMapEvent {
	names := []string{"id", "event_key", "event_type", "shop_id", "user_id", "order_id", "good_id", "timestamp", "shard",
		"status", "reason", "source_file", "source_line", "created_at"}
	tm := &replication.TableMapEvent{TableID: 9, Schema: []byte("shop"), Table: []byte("events"), ColumnCount: uint64(len(names)),
		ColumnType: []byte{mysql.MYSQL_TYPE_LONGLONG, mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_LONGLONG,
			mysql.MYSQL_TYPE_LONGLONG, mysql.MYSQL_TYPE_LONGLONG, mysql.MYSQL_TYPE_LONGLONG, mysql.MYSQL_TYPE_DATETIME2,
			mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VARCHAR,
			mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_DATETIME2},
		ColumnMeta: []uint16{0, uint16(mysql.MYSQL_TYPE_STRING)<<8 | 32, 0, 0, 0, 0, 0, 3, 0, uint16(mysql.MYSQL_TYPE_ENUM)<<8 | 1,
			1020, 64, 0, 3},
		EnumStrValue:  [][][]byte{{[]byte("applied"), []byte("rejected"), []byte("duplicate"), []byte("pending")}},
		ColumnCharset: []uint64{11, 45, 11},
	}
	for _, n := range names {
		tm.ColumnName = append(tm.ColumnName, []byte(n))
	}
	return tm
}

// BenchmarkDecodeInsert measures the binlog path from a decoded rows event
// of 100 inserted events rows to their messages (per row: ns, B, allocs).
func BenchmarkDecodeInsert(b *testing.B) {
	cfg := Config{Shard: 1, Database: "shop", TopicPrefix: "shop", Tables: map[string]Key{"events": {Ordering: true}}}
	dec := NewDecoder(NewEncoder(cfg, "mariadb", nil), nil, cfg, nil, "binlog.000001", 1)
	tm := eventsTable()
	if _, _, err := dec.Decode(b.Context(), nil, &replication.BinlogEvent{Header: &replication.EventHeader{}, Event: tm}); err != nil {
		b.Fatal(err)
	}
	rows := make([][]any, 100)
	for i := range rows {
		rows[i] = []any{int64(1000 + i), "0123456789abcdef0123456789abcdef", int8(1), int64(5), int64(7), int64(90000 + i), int64(3),
			"2025-10-15 17:41:40.021", int32(1), int64(1), nil, "20251015174140", int32(i), "2025-10-15 17:41:41.000"}
	}
	ev := &replication.BinlogEvent{Header: &replication.EventHeader{EventType: replication.WRITE_ROWS_EVENTv2, LogPos: 5000, EventSize: 900,
		Timestamp: 1760550100}, Event: &replication.RowsEvent{Table: tm, TableID: 9, Rows: rows}}
	msgs := make([]kafka.Message, 0, len(rows))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var err error
		if msgs, _, err = dec.Decode(b.Context(), msgs[:0], ev); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
}
