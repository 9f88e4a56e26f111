package cdc

import (
	"testing"
)

type shopRow struct {
	ID     int64  `json:"id"`
	Active bool   `json:"active"`
	Price  string `json:"price"`
}

// The envelope as the producer writes it (Debezium's MariaDB shape, every
// source field, transaction block, ts_us/ts_ns), plain and with its
// schema, decodes to the same change.
func TestDecodeFormats(t *testing.T) {
	payload := `{"before":null,"after":{"id":1,"active":true,"price":"1.50"},"source":{"version":"shopledger-cdc-2",` +
		`"connector":"mariadb","name":"shop","ts_ms":1760550100000,"snapshot":"false","db":"shop","sequence":null,` +
		`"ts_us":1760550100000000,"ts_ns":1760550100000000000,"table":"shop","server_id":11,"gtid":"0-11-58",` +
		`"file":"binlog.000002","pos":17518,"row":0,"thread":null,"query":null,"shard":1,"epoch":3},` +
		`"transaction":{"id":"0-11-58","total_order":1,"data_collection_order":1},"op":"c","ts_ms":1760550100100,` +
		`"ts_us":1760550100100000,"ts_ns":1760550100100000000}`
	schema := `{"type":"struct","fields":[],"optional":false,"name":"shop.shop.shop.Envelope","version":2}`
	for name, value := range map[string]string{
		"json":             payload,
		"json-with-schema": `{"schema":` + schema + `,"payload":` + payload + `}`,
	} {
		e, err := Decode[shopRow]([]byte(value))
		if err != nil {
			t.Errorf("%s: Decode = %v", name, err)
			continue
		}
		if e.Op != OpCreate || e.After == nil || !e.After.Active || e.After.Price != "1.50" || e.Source.GTID != "0-11-58" ||
			e.Source.Connector != "mariadb" || e.Source.Epoch != 3 || e.Source.Pos != 17518 || e.Source.Thread != nil {
			t.Errorf("%s: Decode = %+v", name, e)
		}
		if p, err := e.Source.Position(e.Op); err != nil || p.Epoch != 3 || p.Seq != 2<<32|17518 || p.Snapshot {
			t.Errorf("%s: Position = %+v, %v", name, p, err)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, value := range []string{
		`{"schema":{"type":"struct"}}`, // no payload
		`{"schema":{},"payload":{"op":"x"}}`,
		`{"op":"d","before":null,"source":{"file":"binlog.000001","pos":4}}`,
		`{"op":"c","after":{"id":1},"source":{"file":"binlog","pos":4}}`,
	} {
		if _, err := Decode[shopRow]([]byte(value)); err == nil {
			t.Errorf("Decode(%s) succeeded, want an error", value)
		}
	}
}
