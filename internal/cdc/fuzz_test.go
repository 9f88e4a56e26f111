package cdc

import (
	"encoding/json"
	"reflect"
	"testing"
)

// Decode never panics; what it accepts has a position, and encoding the
// decoded envelope again decodes to the same envelope.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"before":null,"after":{"id":1,"user_id":7,"amount":"10.50","type":"credit"},"source":{"version":"x","connector":"mariadb","name":"shop","ts_ms":1,"snapshot":"false","db":"shop","table":"account_transaction","server_id":11,"gtid":"0-11-5","file":"binlog.000002","pos":4711,"row":0,"shard":1,"epoch":3},"op":"c","ts_ms":2}`,
		`{"before":{"id":1},"after":null,"source":{"file":"binlog.000001","pos":4,"row":2},"op":"d"}`,
		`{"before":{"id":1},"after":{"id":1},"source":{"file":"mysql-bin.999999","pos":4294967295,"row":999999999,"epoch":999999999},"op":"u"}`,
		`{"after":{"id":1},"source":{"file":"binlog","pos":1},"op":"r"}`, `null`, `{"op":"x"}`,
		`{"before":{"id":2,"active":false},"after":null,"source":{"version":"shopledger-cdc-2","connector":"mariadb","name":"shop","ts_ms":1,"snapshot":"false","db":"shop","sequence":null,"ts_us":1000,"ts_ns":1000000,"table":"shop","server_id":11,"gtid":null,"file":"binlog.000003","pos":9,"row":1,"thread":7,"query":null,"shard":0,"epoch":1},"transaction":{"id":"0-11-5","total_order":2,"data_collection_order":1},"op":"d","ts_ms":2,"ts_us":2000,"ts_ns":2000000}`,
		`{"schema":{"type":"struct","optional":false,"name":"shop.shop.shop.Envelope","version":2},"payload":{"after":{"id":1,"active":true},"source":{"file":"binlog.000001","pos":4,"snapshot":"last"},"op":"r"}}`,
		`{"schema":null,"payload":null}`, ` {"schema":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		e, err := Decode[map[string]any](value)
		if err != nil {
			return
		}
		p, err := e.Source.Position(e.Op)
		if err == nil && (p.Version() == "" || p.After(p)) {
			t.Fatalf("position %+v of %q: version %q", p, value, p.Version())
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("encode %+v: %v", e, err)
		}
		again, err := Decode[map[string]any](b)
		if err != nil {
			t.Fatalf("%s decoded, encoded as %s, then refused: %v", value, b, err)
		}
		if !reflect.DeepEqual(again, e) {
			t.Fatalf("%s decodes to %+v, encoded and decoded again to %+v", value, e, again)
		}
	})
}
