// Package audit checks the shards against the rules and the event files:
// every balance is the sum of its account transactions, no stock is below
// zero, every purchase's debit and returned quantity match its rows, every
// line of every file that reached mysql-sender done on all its shards is
// accounted for exactly once (applied, rejected, duplicate or pending on
// one shard, set aside as malformed by the splitter, or held by the splitter
// for its purchase), and no (file, shard) row has failed or stayed in a
// stage for too long.
package audit

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/spool"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// Sources are the databases and the shared folder the audit reads.
type Sources struct {
	Shards   []*sql.DB // shard i at index i
	Pipeline *sql.DB   // pipeline_db
	Splitter *sql.DB   // splitter_db
	Spool    spool.Dir
	// StuckAfter is how long a (file, shard) row may stay in one stage
	// before it counts as stuck; 0 means 10 minutes.
	StuckAfter time.Duration
}

// Report is what the audit found.
type Report struct {
	Problems []string
	Files    int            // files checked line by line
	Lines    int            // lines in those files
	Outcomes map[string]int // applied, rejected, duplicate, pending, malformed, held
	Users    int
	Stock    int
	// InFlight are rows not done yet and not stuck: work under way.
	InFlight []string
}

// OK reports whether nothing is inconsistent.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

func (r *Report) add(format string, args ...any) {
	if len(r.Problems) < 1000 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	} else if len(r.Problems) == 1000 {
		r.Problems = append(r.Problems, "... more problems not shown")
	}
}

// Print writes the report for a person.
func (r *Report) Print(w io.Writer) {
	for _, p := range r.Problems {
		fmt.Fprintln(w, "INCONSISTENT:", p)
	}
	keys := make([]string, 0, len(r.Outcomes))
	for k := range r.Outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "checked %d users, %d stock rows, %d files with %d lines:", r.Users, r.Stock, r.Files, r.Lines)
	for _, k := range keys {
		fmt.Fprintf(w, " %s %d", k, r.Outcomes[k])
	}
	fmt.Fprintln(w)
	for _, f := range r.InFlight {
		fmt.Fprintln(w, "in flight:", f)
	}
	if r.OK() {
		fmt.Fprintln(w, "audit clean")
	} else {
		fmt.Fprintf(w, "audit found %d problems\n", len(r.Problems))
	}
}

// Run audits everything. An error means the audit itself could not run.
func Run(ctx context.Context, src Sources) (*Report, error) {
	r := &Report{Outcomes: map[string]int{}}
	for i, db := range src.Shards {
		if err := r.shardInvariants(ctx, i, db); err != nil {
			return nil, fmt.Errorf("shard %d: %w", i, err)
		}
	}
	if err := r.lines(ctx, src); err != nil {
		return nil, err
	}
	stuck := src.StuckAfter
	if stuck == 0 {
		stuck = 10 * time.Minute
	}
	if err := r.unfinished(ctx, src.Pipeline, stuck); err != nil {
		return nil, fmt.Errorf("unfinished rows: %w", err)
	}
	return r, nil
}

func (r *Report) shardInvariants(ctx context.Context, shard int, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `SELECT u.id, u.balance, COALESCE(t.total, 0) FROM user u LEFT JOIN (
		SELECT user_id, SUM(IF(type = 'credit', amount, -amount)) AS total FROM account_transaction GROUP BY user_id) t
		ON t.user_id = u.id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id int64
		var bal, sum money.Cents
		if err := rows.Scan(&id, &bal, &sum); err != nil {
			rows.Close()
			return err
		}
		r.Users++
		if bal != sum {
			r.add("shard %d: user %d balance %s != sum of account transactions %s", shard, id, bal, sum)
		}
		if bal < 0 {
			r.add("shard %d: user %d balance %s is negative", shard, id, bal)
		}
	}
	rows.Close()
	checks := []struct{ query, what string }{
		{`SELECT CONCAT('user ', t.user_id) FROM account_transaction t LEFT JOIN user u ON u.id = t.user_id WHERE u.id IS NULL GROUP BY t.user_id`,
			"has account transactions but no user row"},
		{`SELECT CONCAT('shop ', id, ' good ', good_id, ' count ', count) FROM shop WHERE count < 0`, "is below zero"},
		{`SELECT CONCAT('order ', p.order_id) FROM purchase_history p LEFT JOIN account_transaction t
			ON t.idempotency_key = CONCAT('purchase:', p.order_id)
			WHERE COALESCE(t.amount, 0) <> p.qty * p.price_at_order OR (t.id IS NOT NULL AND t.type <> 'debit')`,
			"debit does not equal qty × price_at_order"},
		{`SELECT CONCAT('order ', p.order_id) FROM purchase_history p LEFT JOIN (
			SELECT order_id, SUM(qty) q, SUM(amount) a FROM order_return GROUP BY order_id) r ON r.order_id = p.order_id
			WHERE p.returned_qty <> COALESCE(r.q, 0) OR p.refunded <> COALESCE(r.a, 0) OR p.returned_qty > p.qty`,
			"returned quantity or refund does not match its returns"},
		{`SELECT CONCAT('shop ', s.id) FROM shop s JOIN shop_state st ON st.shop_id = s.id WHERE s.active <> st.active GROUP BY s.id`,
			"has goods whose active flag differs from the shop's state"},
		{`SELECT CONCAT('events row ', id) FROM events WHERE shard <> ` + fmt.Sprint(shard), "belongs to another shard"},
	}
	for _, c := range checks {
		rows, err := db.QueryContext(ctx, c.query)
		if err != nil {
			return fmt.Errorf("%s: %w", c.what, err)
		}
		for rows.Next() {
			var what string
			if err := rows.Scan(&what); err != nil {
				rows.Close()
				return err
			}
			r.add("shard %d: %s %s", shard, what, c.what)
		}
		rows.Close()
	}
	var stock int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM shop").Scan(&stock); err != nil {
		return err
	}
	r.Stock += stock
	return nil
}

// lines accounts for every line of every file finished on all its shards,
// one file at a time, so memory grows with the largest file, not with all
// of them. The splitter's release files have no events file of their own:
// their lines belong to the files they were held from.
func (r *Report) lines(ctx context.Context, src Sources) error {
	var files []string
	err := sqldb.Each(ctx, src.Pipeline, `SELECT filename FROM pipeline_tracking GROUP BY filename
		HAVING SUM(mysql_sender_status <> 'done') = 0 AND MAX(producer) <> ? ORDER BY filename`, func(rows *sql.Rows) error {
		var f string
		err := rows.Scan(&f)
		files = append(files, f)
		return err
	}, pipeline.ReleaseProducer)
	if err != nil {
		return fmt.Errorf("finished files: %w", err)
	}
	for _, f := range files {
		if err := r.file(ctx, src, f); err != nil {
			return err
		}
	}
	return nil
}

// file accounts for every line of finished file f.
func (r *Report) file(ctx context.Context, src Sources, f string) error {
	n, err := countLines(src.Spool.EventsFile(f))
	if err != nil {
		r.add("file %s reached mysql-sender done but its events file cannot be read: %v", f, err)
		return nil
	}
	r.Files++
	r.Lines += n
	seen := make([]uint8, n+1) // how many places account for each line
	mark := func(line int, outcome, where string) {
		if line < 1 || line > n {
			r.add("file %s: %s names line %d, but the file has %d lines", f, where, line, n)
			return
		}
		seen[line]++
		r.Outcomes[outcome]++
		if seen[line] == 2 {
			r.add("file %s line %d is accounted for more than once (again %s as %s)", f, line, where, outcome)
		}
	}
	for i, db := range src.Shards {
		err := sqldb.Each(ctx, db, "SELECT source_line, status FROM events WHERE source_file = ?", func(rows *sql.Rows) error {
			var line int
			var status string
			if err := rows.Scan(&line, &status); err != nil {
				return err
			}
			mark(line, status, fmt.Sprintf("on shard %d", i))
			return nil
		}, f)
		if err != nil {
			return fmt.Errorf("shard %d events of %s: %w", i, f, err)
		}
	}
	err = spool.ReadLines(src.Spool.MalformedFile(f), spool.MaxLine, func(l spool.Line) error {
		var m struct {
			Line int `json:"line"`
		}
		if err := json.Unmarshal(l.Bytes, &m); err != nil {
			return fmt.Errorf("line %d: %w", l.N, err)
		}
		mark(m.Line, "malformed", "by the splitter")
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		r.add("file %s: malformed-lines file unreadable: %v", f, err)
	}
	if src.Splitter != nil {
		err := sqldb.Each(ctx, src.Splitter, "SELECT line FROM held_return WHERE filename = ? AND released_in IS NULL", func(rows *sql.Rows) error {
			var line int
			if err := rows.Scan(&line); err != nil {
				return err
			}
			mark(line, "held", "held by the splitter")
			return nil
		}, f)
		if err != nil {
			return fmt.Errorf("held returns of %s: %w", f, err)
		}
	}
	for line, k := range seen[1:] {
		if k == 0 {
			r.add("file %s line %d is not accounted for anywhere", f, line+1)
		}
	}
	return nil
}

// unfinished lists every (file, shard) row with a stage not done: its first
// such stage, status, owner and age. A failed row, or one unchanged for
// longer than stuckAfter, is a problem; younger rows are work in flight.
func (r *Report) unfinished(ctx context.Context, db *sql.DB, stuckAfter time.Duration) error {
	return sqldb.Each(ctx, db, `SELECT filename, shard, event_ingest_status, shard_splitter_status, shard_worker_status,
		mysql_sender_status, COALESCE(owner, ''), TIMESTAMPDIFF(MICROSECOND, COALESCE(started_at, updated_at), CURRENT_TIMESTAMP(6))
		FROM pipeline_tracking WHERE mysql_sender_status <> 'done' ORDER BY created_at, filename, shard`, func(rows *sql.Rows) error {
		var file, owner string
		var shard int
		var st [4]pipeline.Status
		var ageUs int64
		if err := rows.Scan(&file, &shard, &st[0], &st[1], &st[2], &st[3], &owner, &ageUs); err != nil {
			return err
		}
		i := 0
		for i < 3 && st[i] == pipeline.StatusDone {
			i++
		}
		age := time.Duration(ageUs) * time.Microsecond
		what := fmt.Sprintf("file %s shard %d: %s %s for %s", file, shard, pipeline.Stages[i], st[i], age.Round(time.Second))
		if owner != "" && st[i] == pipeline.StatusStarted {
			what += " by " + owner
		}
		switch {
		case st[i] == pipeline.StatusFailed:
			r.add("%s (retry it: POST /stages/%s/retry once the cause is mended)", what, pipeline.Stages[i])
		case age > stuckAfter:
			r.add("%s: stuck longer than %s", what, stuckAfter)
		default:
			r.InFlight = append(r.InFlight, what)
		}
		return nil
	})
}

func countLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	br := bufio.NewReaderSize(f, 1<<20)
	buf := make([]byte, 1<<20)
	last := byte('\n')
	for {
		k, err := br.Read(buf)
		for _, c := range buf[:k] {
			if c == '\n' {
				n++
			}
		}
		if k > 0 {
			last = buf[k-1]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if last != '\n' {
		n++ // a last line without newline
	}
	return n, nil
}
