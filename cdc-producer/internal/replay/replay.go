package replay

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/segmentio/kafka-go"
)

// Encoder turns the events of the transactions taken into the messages the
// live capture publishes for them.
type Encoder interface {
	// Event takes one event of a transaction taken, read from file, and
	// returns its messages; they are valid until the next call.
	Event(file string, ev *replication.BinlogEvent) ([]kafka.Message, error)
}

// Sink takes the messages of each transaction, in binlog order.
type Sink interface {
	Write(ctx context.Context, msgs []kafka.Message) error
	// Close flushes what is buffered and ends the output; failed is the
	// replay's error (nil: it completed), so that a file of a failed
	// replay is not left behind as if it were whole.
	Close(failed error) error
}

// Summary is what a replay did.
type Summary struct {
	Transactions int
	Messages     int
	// Rows counts the row changes read, by table and op (c, u, d).
	Rows map[string]map[string]int
	// Reached is the position the replay ended at.
	Reached mysql.Position
	Took    time.Duration
}

// TotalRows is the sum of Rows.
func (s Summary) TotalRows() int {
	n := 0
	for _, ops := range s.Rows {
		for _, c := range ops {
			n += c
		}
	}
	return n
}

// Format writes the summary as a table of tables and ops.
func (s Summary) Format(w io.Writer) {
	fmt.Fprintf(w, "%d transactions, %d row changes, %d messages in %s; reached %s:%d\n",
		s.Transactions, s.TotalRows(), s.Messages, s.Took.Round(time.Millisecond), s.Reached.Name, s.Reached.Pos)
	tables := make([]string, 0, len(s.Rows))
	for t := range s.Rows {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, t := range tables {
		ops := s.Rows[t]
		fmt.Fprintf(w, "  %-24s c %-8d u %-8d d %d\n", t, ops["c"], ops["u"], ops["d"])
	}
}

// Options are what a replay reads and where it writes.
type Options struct {
	Plan *Plan
	// Database and Tables select the row changes counted; the encoder has
	// its own list of the tables it encodes.
	Database string
	Tables   map[string]bool
	// Encoder and Sink are nil for a dry run, which only counts.
	Encoder Encoder
	Sink    Sink
	// Progress, if set, is told of the position reached and the rows read.
	Progress func(at mysql.Position, rows int)
}

// Run replays the plan's range.
func Run(ctx context.Context, o Options) (Summary, error) {
	start := time.Now()
	s := Summary{Rows: map[string]map[string]int{}}
	rows := 0
	err := o.Plan.Walk(ctx, func(file string, ev *replication.BinlogEvent) error {
		if e, ok := ev.Event.(*replication.RowsEvent); ok && string(e.Table.Schema) == o.Database && o.Tables[string(e.Table.Table)] {
			op, n := rowsOp(ev.Header.EventType, len(e.Rows))
			table := string(e.Table.Table)
			if s.Rows[table] == nil {
				s.Rows[table] = map[string]int{}
			}
			s.Rows[table][op] += n
			rows += n
		}
		if ends(ev) {
			s.Transactions++
		}
		if o.Encoder == nil {
			return nil
		}
		msgs, err := o.Encoder.Event(file, ev)
		if err != nil || len(msgs) == 0 {
			return err
		}
		s.Messages += len(msgs)
		return o.Sink.Write(ctx, msgs)
	}, func(at mysql.Position) {
		s.Reached = at
		if o.Progress != nil {
			o.Progress(at, rows)
		}
	})
	if o.Sink != nil {
		if cerr := o.Sink.Close(err); err == nil {
			err = cerr
		}
	}
	s.Took = time.Since(start)
	return s, err
}

// rowsOp is the op and row count of a rows event with n rows (an update
// has two images per row).
func rowsOp(t replication.EventType, n int) (string, int) {
	switch t {
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2,
		replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1, replication.PARTIAL_UPDATE_ROWS_EVENT:
		return "u", n / 2
	case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2,
		replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		return "d", n
	}
	return "c", n
}

// Line is one message of a replay written as JSON lines: the key and value
// as the topic would hold them (null for a tombstone's value).
type Line struct {
	Topic   string            `json:"topic"`
	Key     json.RawMessage   `json:"key"`
	Value   json.RawMessage   `json:"value"`
	Headers map[string]string `json:"headers,omitempty"`
}

// LineOf is the JSON line of a message. Keys and values that are not JSON
// are written as JSON strings.
func LineOf(m kafka.Message) Line {
	l := Line{Topic: m.Topic, Key: raw(m.Key), Value: raw(m.Value)}
	for _, h := range m.Headers {
		if l.Headers == nil {
			l.Headers = map[string]string{}
		}
		l.Headers[h.Key] = string(h.Value)
	}
	return l
}

func raw(b []byte) json.RawMessage {
	if b == nil {
		return json.RawMessage("null")
	}
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// Lines writes messages as JSON lines.
type Lines struct {
	w     *bufio.Writer
	close func(failed error) error
}

// NewLines writes to w; close, if set, is called by Close after the flush,
// with the replay's error, or the flush's.
func NewLines(w io.Writer, close func(failed error) error) *Lines {
	return &Lines{w: bufio.NewWriterSize(w, 1<<20), close: close}
}

// Write implements Sink.
func (l *Lines) Write(_ context.Context, msgs []kafka.Message) error {
	for _, m := range msgs {
		b, err := json.Marshal(LineOf(m))
		if err != nil {
			return err
		}
		l.w.Write(b)
		if err := l.w.WriteByte('\n'); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
}

// Close implements Sink.
func (l *Lines) Close(failed error) error {
	err := l.w.Flush()
	if l.close != nil {
		if failed == nil {
			failed = err
		}
		if cerr := l.close(failed); err == nil {
			err = cerr
		}
	}
	return err
}

// Topics publishes to Kafka, in batches of up to Batch messages.
type Topics struct {
	W     *kafka.Writer
	Batch int
	buf   []kafka.Message
}

// Write implements Sink. A batch is written synchronously, so the replay
// never runs far ahead of what Kafka acknowledged.
func (t *Topics) Write(ctx context.Context, msgs []kafka.Message) error {
	t.buf = append(t.buf, msgs...)
	if len(t.buf) < t.Batch {
		return nil
	}
	return t.flush(ctx)
}

func (t *Topics) flush(ctx context.Context) error {
	if len(t.buf) == 0 {
		return nil
	}
	if err := t.W.WriteMessages(ctx, t.buf...); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	t.buf = t.buf[:0]
	return nil
}

// Close implements Sink: what was buffered is published either way (the
// consumers take a message once, however often it comes).
func (t *Topics) Close(error) error {
	err := t.flush(context.Background())
	if cerr := t.W.Close(); err == nil {
		err = cerr
	}
	return err
}

// UnknownTables returns the names in want that are not in known.
func UnknownTables(want []string, known map[string]bool) []string {
	var out []string
	for _, t := range want {
		if !known[strings.TrimSpace(t)] {
			out = append(out, t)
		}
	}
	return out
}
