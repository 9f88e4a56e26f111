package capture

// Transaction metadata (Debezium's provide.transaction.metadata): the
// BEGIN and END of each transaction with changes of the captured tables,
// on <prefix>.transaction, keyed by the transaction's id; the Decoder
// counts the changes and places each in its transaction (TxOrder).

import (
	"strconv"

	"github.com/segmentio/kafka-go"
)

// TxEvent is a transaction's BEGIN or END for the transaction topic.
type TxEvent struct {
	ID   string
	End  bool
	TsMs int64
	// Counts are the END's events per table, in order of first change.
	Counts []TableCount
}

// TableCount is a transaction's number of changes of one table.
type TableCount struct {
	Table string
	N     int64
}

// Transaction returns the message of a transaction's BEGIN or END on
// topic, as Debezium's provide.transaction.metadata writes them.
func (e *Encoder) Transaction(topic string, ev *TxEvent) kafka.Message {
	var k, v []byte
	if e.keySchemas {
		k = append(k, transactionKeySchema...)
	}
	k = append(k, `{"id":`...)
	k = appendString(k, ev.ID)
	k = append(k, '}')
	if e.keySchemas {
		k = append(k, '}')
	}
	if e.withSchema {
		v = append(v, transactionValueSchema...)
	}
	if !ev.End {
		v = append(v, `{"status":"BEGIN","id":`...)
		v = appendString(v, ev.ID)
		v = append(v, `,"event_count":null,"data_collections":null`...)
	} else {
		var total int64
		for _, c := range ev.Counts {
			total += c.N
		}
		v = append(v, `{"status":"END","id":`...)
		v = appendString(v, ev.ID)
		v = append(v, `,"event_count":`...)
		v = strconv.AppendInt(v, total, 10)
		v = append(v, `,"data_collections":[`...)
		for i, c := range ev.Counts {
			if i > 0 {
				v = append(v, ',')
			}
			v = append(v, `{"data_collection":`...)
			v = appendString(v, e.db+"."+c.Table)
			v = append(v, `,"event_count":`...)
			v = strconv.AppendInt(v, c.N, 10)
			v = append(v, '}')
		}
		v = append(v, ']')
	}
	v = append(v, `,"ts_ms":`...)
	v = strconv.AppendInt(v, ev.TsMs, 10)
	v = append(v, '}')
	if e.withSchema {
		v = append(v, '}')
	}
	return kafka.Message{Topic: topic, Key: k, Value: v}
}
