package capture

import (
	"testing"
)

// A value reads the same whether go-mysql decoded it from the binlog or
// the snapshot's query returned it as text: both go through appendColumn.
func TestBinlogAndSnapshotValuesAgree(t *testing.T) {
	for _, tc := range []struct {
		name   string
		col    column
		binlog any    // as go-mysql decodes it
		text   string // as the text protocol returns it
		want   string
	}{
		{"tinyint(1) true", column{kind: kindBoolean}, int8(1), "1", `true`},
		{"tinyint(1) false", column{kind: kindBoolean}, int8(0), "0", `false`},
		{"bit(1)", column{kind: kindBoolean, size: 1}, int64(1), "\x01", `true`},
		{"bit(3)", column{kind: kindBits, size: 3}, int64(5), "\x05", `"BQ=="`},
		{"bit(16) little-endian", column{kind: kindBits, size: 16}, int64(0x0102), "\x01\x02", `"AgE="`},
		{"bit(64)", column{kind: kindBits, size: 64}, int64(-9223372036854775807), "\x80\x00\x00\x00\x00\x00\x00\x01", `"AQAAAAAAAIA="`},
		{"tinyint unsigned", column{kind: kindInteger, intType: "int16", unsigned: true}, uint8(255), "255", `255`},
		{"bigint unsigned wraps (long mode)", column{kind: kindInteger, intType: "int64", unsigned: true}, uint64(18446744073709551615), "18446744073709551615", `-1`},
		{"bigint", column{kind: kindInteger, intType: "int64"}, int64(-9223372036854775808), "-9223372036854775808", `-9223372036854775808`},
		{"float", column{kind: kindFloat}, float32(0.1), "0.1", `0.1`},
		{"double", column{kind: kindDouble}, 3.141592653589793, "3.141592653589793", `3.141592653589793`},
		{"decimal", column{kind: kindDecimal}, "-12.50", "-12.50", `"-12.50"`},
		{"date", column{kind: kindDate}, "1969-07-20", "1969-07-20", `-165`},
		{"zero date", column{kind: kindDate}, "0000-00-00", "0000-00-00", `null`},
		{"time negative", column{kind: kindTime}, "-838:59:59", "-838:59:59", `-3020399000000`},
		{"time(6)", column{kind: kindTime, size: 6}, "12:34:56.789012", "12:34:56.789012", `45296789012`},
		{"datetime(3)", column{kind: kindDatetime, size: 3}, "2025-10-15 17:41:40.021", "2025-10-15 17:41:40.021", `1760550100021`},
		{"datetime(6) before 1970", column{kind: kindDatetimeMicro, size: 6}, "1965-10-15 17:41:40.021345", "1965-10-15 17:41:40.021345", `-132905899978655`},
		{"timestamp", column{kind: kindTimestamp}, "2025-10-15 17:41:40", "2025-10-15 17:41:40", `"2025-10-15T17:41:40Z"`},
		{"timestamp(3) keeps its digits", column{kind: kindTimestamp, size: 3}, "2025-10-15 17:41:40.020", "2025-10-15 17:41:40.020", `"2025-10-15T17:41:40.020Z"`},
		{"year", column{kind: kindYear}, 2025, "2025", `2025`},
		{"enum", column{kind: kindEnum, labels: []string{"credit", "debit"}}, int64(2), "debit", `"debit"`},
		{"set", column{kind: kindSet, labels: []string{"a", "b", "c"}}, int64(5), "a,c", `"a,c"`},
		{"empty set", column{kind: kindSet, labels: []string{"a"}}, int64(0), "", `""`},
		{"mysql json", column{kind: kindJSON}, `{"a":1}`, `{"a":1}`, `"{\"a\":1}"`},
		{"text", column{kind: kindText}, "héllo \"q\"", "héllo \"q\"", `"héllo \"q\""`},
		{"binary(4) padded", column{kind: kindBinary, size: 4}, "\x01\x02", "\x01\x02\x00\x00", `"AQIAAA=="`},
		{"blob", column{kind: kindBinary}, []byte{0xde, 0xad}, "\xde\xad", `"3q0="`},
	} {
		if got := string(appendColumn(nil, &tc.col, tc.binlog)); got != tc.want {
			t.Errorf("%s: from the binlog %#v = %s, want %s", tc.name, tc.binlog, got, tc.want)
		}
		if got := string(appendColumn(nil, &tc.col, []byte(tc.text))); got != tc.want {
			t.Errorf("%s: from the snapshot %q = %s, want %s", tc.name, tc.text, got, tc.want)
		}
	}
}

// information_schema's defaults become the schema's, as Debezium writes
// them.
func TestDefaults(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		ic   infoColumn
		want string
	}{
		{infoColumn{dataType: "tinyint", columnType: "tinyint(1)", def: str("1"), quoted: true}, `true`},
		{infoColumn{dataType: "bit", columnType: "bit(16)", numericPrecision: 16, def: str("b'101'"), quoted: true}, `"BQA="`},
		{infoColumn{dataType: "int", columnType: "int(11)", def: str("7"), quoted: true}, `7`},
		{infoColumn{dataType: "decimal", columnType: "decimal(18,2)", def: str("0.00"), quoted: true}, `"0.00"`},
		{infoColumn{dataType: "datetime", columnType: "datetime(3)", datetimePrecision: 3, def: str("current_timestamp(3)"), quoted: true}, `0`},
		{infoColumn{dataType: "timestamp", columnType: "timestamp(6)", datetimePrecision: 6, def: str("current_timestamp(6)"), quoted: true}, `"1970-01-01T00:00:00Z"`},
		{infoColumn{dataType: "timestamp", columnType: "timestamp(3)", datetimePrecision: 3, def: str("'2020-01-01 00:00:00.500'"), quoted: true}, `"2020-01-01T00:00:00.500Z"`},
		{infoColumn{dataType: "date", columnType: "date", def: str("'2020-02-29'"), quoted: true}, `18321`},
		{infoColumn{dataType: "enum", columnType: "enum('credit','debit','it''s')", def: str("'it''s'"), quoted: true}, `"it's"`},
		{infoColumn{dataType: "varchar", columnType: "varchar(32)", def: str("'x'"), quoted: true}, `"x"`},
		{infoColumn{dataType: "varchar", columnType: "varchar(32)", def: str("NULL"), quoted: true, nullable: true}, ``},
		{infoColumn{dataType: "varchar", columnType: "varchar(32)", def: str("uuid()"), quoted: true}, ``},
		// MySQL: literals unquoted, expressions marked DEFAULT_GENERATED.
		{infoColumn{dataType: "varchar", columnType: "varchar(32)", def: str("x")}, `"x"`},
		{infoColumn{dataType: "datetime", columnType: "datetime(3)", datetimePrecision: 3, def: str("CURRENT_TIMESTAMP(3)"), extra: "DEFAULT_GENERATED"}, `0`},
		{infoColumn{dataType: "bigint", columnType: "bigint", extra: "auto_increment"}, ``},
	} {
		var c column
		if err := c.fromInfo(&tc.ic); err != nil {
			t.Fatal(err)
		}
		if string(c.def) != tc.want {
			t.Errorf("default of %s %v = %s, want %s", tc.ic.columnType, tc.ic.def, c.def, tc.want)
		}
	}
	if got := parseLabels("set('a','b''c','d\\\\e')"); len(got) != 3 || got[1] != "b'c" || got[2] != `d\e` {
		t.Errorf("parseLabels = %q", got)
	}
}
