package debezium

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// report counts what was compared and lists the differences found.
type report struct {
	compared, unwrapped, differences int
	found                            []string
}

func (r *report) diff(t *testing.T, where string, format string, args ...any) {
	r.differences++
	r.found = append(r.found, where+": "+fmt.Sprintf(format, args...))
}

// fail reports the differences found as t's errors.
func (r *report) fail(t *testing.T) {
	t.Helper()
	for i, d := range r.found {
		if i == 60 {
			t.Errorf("… and %d more", len(r.found)-i)
			break
		}
		t.Error(d)
	}
}

// decode parses JSON keeping numbers exact.
func decode(t *testing.T, b []byte) any {
	t.Helper()
	if b == nil {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("not JSON: %s: %v", b, err)
	}
	return v
}

// canonical renders v as JSON with sorted keys, for grouping.
func canonical(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// byKey groups a topic's messages by key payload, in offset order.
func byKey(t *testing.T, recs []record) (map[string][]record, []string) {
	groups := map[string][]record{}
	var keys []string
	for _, r := range recs {
		k := "null"
		if key, ok := decode(t, r.Key).(map[string]any); ok {
			k = canonical(key["payload"])
		}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	sort.Strings(keys)
	return groups, keys
}

// compareTable compares one table's topics key by key, message by message.
func (r *report) compareTable(t *testing.T, table string, ours, theirs []record) {
	t.Helper()
	og, okeys := byKey(t, ours)
	tg, tkeys := byKey(t, theirs)
	if !slices.Equal(okeys, tkeys) {
		r.diff(t, table, "keys differ: ours %v, Debezium's %v", okeys, tkeys)
	}
	for _, k := range tkeys {
		a, b := og[k], tg[k]
		if len(a) != len(b) {
			r.diff(t, table+" key "+k, "%d messages (%s), Debezium %d (%s)", len(a), ops(t, a), len(b), ops(t, b))
			continue
		}
		for i := range a {
			r.compared++
			r.compareMessage(t, fmt.Sprintf("%s key %s message %d (%s)", table, k, i, ops(t, b[i:i+1])), a[i], b[i])
		}
	}
}

// ops lists the ops of messages, "tombstone" for a null value.
func ops(t *testing.T, recs []record) string {
	var out []string
	for _, r := range recs {
		if r.Value == nil {
			out = append(out, "tombstone")
			continue
		}
		p, _ := decode(t, r.Value).(map[string]any)["payload"].(map[string]any)
		out = append(out, fmt.Sprint(p["op"]))
	}
	return strings.Join(out, ",")
}

// compareMessage compares a message of ours with Debezium's: the key and
// the value, schemas included, after normalize.
func (r *report) compareMessage(t *testing.T, where string, ours, theirs record) {
	t.Helper()
	for _, d := range deepDiff("key", decode(t, ours.Key), decode(t, theirs.Key)) {
		r.diff(t, where, "%s", d)
	}
	if (ours.Value == nil) != (theirs.Value == nil) {
		r.diff(t, where, "tombstone: ours %v, Debezium's %v", ours.Value == nil, theirs.Value == nil)
		return
	}
	if ours.Value == nil {
		return
	}
	a, b := decode(t, ours.Value).(map[string]any), decode(t, theirs.Value).(map[string]any)
	if err := normalize(a, true); err != nil {
		r.diff(t, where, "%v", err)
		return
	}
	if err := normalize(b, false); err != nil {
		t.Fatalf("%s: Debezium's message: %v", where, err)
	}
	for _, d := range deepDiff("value", a, b) {
		r.diff(t, where, "%s", d)
	}
}

// normalize takes out of a change event (json-with-schema) what may differ
// by design; each rule is a row of the README's table of deliberate
// differences:
//   - timing: the envelope's ts_ms/ts_us/ts_ns (when the message was made)
//     and, for snapshot rows, source.ts_ms/ts_us/ts_ns (when it was read);
//   - source.version, the producer's own;
//   - our source.shard and source.epoch (and their schema fields);
//   - source.row of a snapshot row: ours numbers the snapshot's rows (the
//     consumers order and dedupe by it), Debezium writes 0;
//   - TIMESTAMP(n) in snapshot rows: Debezium's snapshot trims trailing
//     zeros of the fraction ("…40.02Z") while its stream keeps the column's
//     digits ("…40.020Z"); ours keeps the digits in both. Compared as
//     instants.
func normalize(v map[string]any, ours bool) error {
	p, ok := v["payload"].(map[string]any)
	if !ok {
		return fmt.Errorf("no payload: %v", v)
	}
	for _, f := range []string{"ts_ms", "ts_us", "ts_ns"} {
		if _, ok := p[f]; !ok {
			return fmt.Errorf("envelope without %s", f)
		}
		delete(p, f)
	}
	src, ok := p["source"].(map[string]any)
	if !ok {
		return fmt.Errorf("no source block")
	}
	delete(src, "version")
	if ours {
		for _, f := range []string{"shard", "epoch"} {
			if _, ok := src[f]; !ok {
				return fmt.Errorf("source without our %s", f)
			}
			delete(src, f)
		}
		if f := field(v["schema"], "source"); f != nil {
			list, _ := f["fields"].([]any)
			f["fields"] = slices.DeleteFunc(list, func(g any) bool {
				name := g.(map[string]any)["field"]
				return name == "shard" || name == "epoch"
			})
		}
	}
	if p["op"] == "r" {
		for _, f := range []string{"ts_ms", "ts_us", "ts_ns", "row"} {
			delete(src, f)
		}
		zoned(field(v["schema"], "after"), p["after"])
	}
	return nil
}

// fields returns a struct schema's fields.
func fields(schema any) []map[string]any {
	m, _ := schema.(map[string]any)
	list, _ := m["fields"].([]any)
	var out []map[string]any
	for _, f := range list {
		if fm, ok := f.(map[string]any); ok {
			out = append(out, fm)
		}
	}
	return out
}

// field returns the struct schema's field called name, or nil.
func field(schema any, name string) map[string]any {
	for _, f := range fields(schema) {
		if f["field"] == name {
			return f
		}
	}
	return nil
}

// zoned rewrites the ZonedTimestamp fields of row (of struct schema s) as
// instants.
func zoned(s any, row any) {
	m, _ := row.(map[string]any)
	if m == nil {
		return
	}
	for _, c := range fields(s) {
		if c["name"] != "io.debezium.time.ZonedTimestamp" {
			continue
		}
		name, _ := c["field"].(string)
		if v, ok := m[name].(string); ok {
			if ts, err := time.Parse(time.RFC3339Nano, v); err == nil {
				m[name] = "instant " + ts.UTC().Format(time.RFC3339Nano)
			}
		}
	}
}

// deepDiff lists the differences between a and b under path.
func deepDiff(path string, a, b any) []string {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: ours %s, Debezium's %s", path, short(a), short(b))}
		}
		var out []string
		keys := map[string]bool{}
		for k := range x {
			keys[k] = true
		}
		for k := range y {
			keys[k] = true
		}
		names := make([]string, 0, len(keys))
		for k := range keys {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			av, aok := x[k]
			bv, bok := y[k]
			switch {
			case !aok:
				out = append(out, fmt.Sprintf("%s.%s: missing in ours, Debezium's %s", path, k, short(bv)))
			case !bok:
				out = append(out, fmt.Sprintf("%s.%s: ours %s, missing in Debezium's", path, k, short(av)))
			default:
				out = append(out, deepDiff(path+"."+k, av, bv)...)
			}
		}
		return out
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return []string{fmt.Sprintf("%s: ours %s, Debezium's %s", path, short(a), short(b))}
		}
		var out []string
		for i := range x {
			out = append(out, deepDiff(fmt.Sprintf("%s[%d]", path, i), x[i], y[i])...)
		}
		return out
	case json.Number:
		y, ok := b.(json.Number)
		if !ok || !sameNumber(x, y) {
			return []string{fmt.Sprintf("%s: ours %s, Debezium's %s", path, short(a), short(b))}
		}
		return nil
	}
	if a != b {
		return []string{fmt.Sprintf("%s: ours %s, Debezium's %s", path, short(a), short(b))}
	}
	return nil
}

// sameNumber compares JSON numbers by value: Java writes 1.0E10 where Go
// writes 1e+10, and a reader sees the same number.
func sameNumber(a, b json.Number) bool {
	if a == b {
		return true
	}
	if x, err := strconv.ParseInt(string(a), 10, 64); err == nil {
		y, err := strconv.ParseInt(string(b), 10, 64)
		return err == nil && x == y
	}
	x, err1 := strconv.ParseFloat(string(a), 64)
	y, err2 := strconv.ParseFloat(string(b), 64)
	return err1 == nil && err2 == nil && x == y
}

func short(v any) string {
	s := canonical(v)
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// txEvent is a transaction metadata message without its time.
type txEvent struct {
	status, id string
	count      string
	tables     string
}

// transactions reads a transaction topic: its events, BEGINs without an
// END dropped (Debezium opens one for a DDL statement, whose schema change
// we do not publish, and never closes it), and its key and value schemas.
func transactions(t *testing.T, recs []record) ([]txEvent, any, any) {
	var out []txEvent
	ended := map[string]bool{}
	var keySchema, valueSchema any
	for _, r := range recs {
		k, _ := decode(t, r.Key).(map[string]any)
		v, _ := decode(t, r.Value).(map[string]any)
		keySchema, valueSchema = k["schema"], v["schema"]
		p, _ := v["payload"].(map[string]any)
		var tables []string
		for _, c := range asList(p["data_collections"]) {
			m, _ := c.(map[string]any)
			tables = append(tables, fmt.Sprintf("%v=%v", m["data_collection"], m["event_count"]))
		}
		sort.Strings(tables)
		e := txEvent{status: fmt.Sprint(p["status"]), id: fmt.Sprint(p["id"]), count: fmt.Sprint(p["event_count"]), tables: strings.Join(tables, ",")}
		if e.status == "END" {
			ended[e.id] = true
		}
		out = append(out, e)
	}
	out = slices.DeleteFunc(out, func(e txEvent) bool { return e.status == "BEGIN" && !ended[e.id] })
	return out, keySchema, valueSchema
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// compareTransactions compares the transaction topics: the same BEGINs
// and ENDs in the same order, with the same counts and schemas.
func (r *report) compareTransactions(t *testing.T, ours, theirs []record) {
	t.Helper()
	a, aks, avs := transactions(t, ours)
	b, bks, bvs := transactions(t, theirs)
	if len(b) == 0 {
		t.Fatal("Debezium published no transaction metadata")
	}
	r.compared += len(a)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		r.diff(t, "transaction topic", "ours %v\nDebezium's %v", a, b)
	}
	for _, d := range append(deepDiff("transaction key schema", aks, bks), deepDiff("transaction value schema", avs, bvs)...) {
		r.diff(t, "transaction topic", "%s", d)
	}
}

// compareHeartbeats compares the heartbeats' shapes: schemas, and fields
// (ours is keyed by the producer's name, Debezium's by its logical name).
func (r *report) compareHeartbeats(t *testing.T, ours, theirs []record) {
	t.Helper()
	if len(ours) == 0 || len(theirs) == 0 {
		r.diff(t, "heartbeats", "ours %d, Debezium's %d", len(ours), len(theirs))
		return
	}
	r.compared++
	ak, av := decode(t, ours[0].Key).(map[string]any), decode(t, ours[0].Value).(map[string]any)
	bk, bv := decode(t, theirs[0].Key).(map[string]any), decode(t, theirs[0].Value).(map[string]any)
	for _, d := range append(deepDiff("heartbeat key schema", ak["schema"], bk["schema"]), deepDiff("heartbeat value schema", av["schema"], bv["schema"])...) {
		r.diff(t, "heartbeats", "%s", d)
	}
	if name, ok := ak["payload"].(map[string]any)["serverName"].(string); !ok || name == "" {
		r.diff(t, "heartbeats", "key %v without serverName", ak["payload"])
	}
	if _, ok := av["payload"].(map[string]any)["ts_ms"].(json.Number); !ok {
		r.diff(t, "heartbeats", "value %v without ts_ms", av["payload"])
	}
}

// checkAcceptance checks what a reader of shop.shop sees: booleans as
// true/false, a delete followed by its tombstone.
func checkAcceptance(t *testing.T, recs []record) {
	t.Helper()
	active, tombstone := false, false
	for i, r := range recs {
		if bytes.Contains(r.Value, []byte(`"active":true`)) {
			active = true
		}
		if bytes.Contains(r.Value, []byte(`"op":"d"`)) {
			tombstone = i+1 < len(recs) && recs[i+1].Value == nil && bytes.Equal(recs[i+1].Key, r.Key)
		}
	}
	if !active || !tombstone {
		t.Errorf("shop.shop: \"active\":true seen %v, a delete followed by its tombstone %v", active, tombstone)
	}
}

// compareSink compares what a sink reads of both, after JsonConverter and
// ExtractNewRecordState: our messages must all convert, and give the rows
// Debezium's give.
func (r *report) compareSink(t *testing.T, ours, theirs []sinkRecord) {
	t.Helper()
	group := func(recs []sinkRecord, mine bool) (map[string][]sinkRecord, []string) {
		out := map[string][]sinkRecord{}
		var keys []string
		for _, s := range recs {
			if s.Error != "" {
				if mine {
					r.diff(t, "sink", "our %s offset %d refused: %s", s.Topic, s.Offset, s.Error)
				} else {
					t.Fatalf("sink refused Debezium's %s offset %d: %s", s.Topic, s.Offset, s.Error)
				}
				continue
			}
			table := s.Topic[strings.LastIndexByte(s.Topic, '.')+1:]
			k := table + " " + canonical(payloadOf(decode(t, s.Key)))
			if _, ok := out[k]; !ok {
				keys = append(keys, k)
			}
			out[k] = append(out[k], s)
		}
		sort.Strings(keys)
		return out, keys
	}
	og, okeys := group(ours, true)
	tg, tkeys := group(theirs, false)
	if !slices.Equal(okeys, tkeys) {
		r.diff(t, "sink", "keys differ: ours %v, Debezium's %v", okeys, tkeys)
	}
	for _, k := range tkeys {
		a, b := og[k], tg[k]
		if len(a) != len(b) {
			r.diff(t, "sink "+k, "%d records, Debezium's %d", len(a), len(b))
			continue
		}
		for i := range a {
			r.unwrapped++
			if a[i].Dropped != b[i].Dropped {
				r.diff(t, "sink "+k, "record %d dropped: ours %v, Debezium's %v", i, a[i].Dropped, b[i].Dropped)
				continue
			}
			av, bv := decode(t, a[i].Value), decode(t, b[i].Value)
			for _, v := range []any{av, bv} {
				if m, ok := v.(map[string]any); ok {
					zoned(m["schema"], m["payload"])
				}
			}
			for _, d := range append(deepDiff("key", decode(t, a[i].Key), decode(t, b[i].Key)), deepDiff("row", av, bv)...) {
				r.diff(t, fmt.Sprintf("sink %s record %d", k, i), "%s", d)
			}
		}
	}
}

func payloadOf(v any) any {
	if m, ok := v.(map[string]any); ok {
		return m["payload"]
	}
	return v
}

// The comparison finds what it should: a boolean as a number, a missing
// tombstone, a source field of another value, a missing field, a schema of
// another type, the order of a key's messages. (A comparison that cannot
// fail proves nothing.)
func TestCompareFindsDifferences(t *testing.T) {
	theirs := []record{
		{Key: []byte(keyJSON), Value: []byte(fmt.Sprintf(valueJSON, `"boolean"`, `true`, `"c"`, 17518))},
		{Key: []byte(keyJSON), Value: []byte(fmt.Sprintf(valueJSON, `"boolean"`, `false`, `"d"`, 17600))},
		{Key: []byte(keyJSON)},
	}
	ourSource := `,"shard":0,"epoch":1}`
	ours := func(schemaType, active, op string, pos int) record {
		v := fmt.Sprintf(valueJSON, schemaType, active, op, pos)
		v = strings.Replace(v, `"query":null}`, `"query":null`+ourSource, 1)
		v = strings.Replace(v, `{"type":"string","optional":true,"field":"query"}`,
			`{"type":"string","optional":true,"field":"query"},{"type":"int32","optional":false,"field":"shard"},{"type":"int64","optional":false,"field":"epoch"}`, 1)
		return record{Key: []byte(keyJSON), Value: []byte(v)}
	}
	same := []record{ours(`"boolean"`, `true`, `"c"`, 17518), ours(`"boolean"`, `false`, `"d"`, 17600), {Key: []byte(keyJSON)}}
	var r report
	r.compareTable(t, "shop", same, theirs)
	if r.differences != 0 {
		t.Fatalf("the same messages differ: %v", r.found)
	}
	for name, recs := range map[string][]record{
		"boolean as a number": {ours(`"int16"`, `1`, `"c"`, 17518), same[1], same[2]},
		"no tombstone":        same[:2],
		"another position":    {same[0], ours(`"boolean"`, `false`, `"d"`, 17601), same[2]},
		"another order":       {same[1], same[0], same[2]},
		"a missing field":     {{Key: same[0].Key, Value: bytes.Replace(same[0].Value, []byte(`"gtid":"0-101-58",`), nil, 1)}, same[1], same[2]},
	} {
		var r report
		r.compareTable(t, "shop", recs, theirs)
		if r.differences == 0 {
			t.Errorf("%s: no difference found", name)
		}
	}
}

const keyJSON = `{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],"optional":false,` +
	`"name":"shop.shop.shop.Key"},"payload":{"id":1}}`

// valueJSON is a Debezium change event of shop.shop with schema: the
// active column's schema type, its value, the op, the position.
const valueJSON = `{"schema":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"},` +
	`{"type":%s,"optional":false,"field":"active"}],"optional":true,"name":"shop.shop.shop.Value","field":"after"},` +
	`{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"gtid"},` +
	`{"type":"string","optional":true,"field":"query"}],"optional":false,"name":"io.debezium.connector.mariadb.Source","field":"source"}],` +
	`"optional":false,"name":"shop.shop.shop.Envelope","version":2},"payload":{"after":{"id":1,"active":%s},` +
	`"source":{"version":"x","gtid":"0-101-58","query":null},"op":%s,"pos":%d,"ts_ms":1,"ts_us":1,"ts_ns":1}}`
