// Package audit checks the shards against the rules and the event files:
// every balance is the sum of its account transactions, no stock is below
// zero, every purchase's debit and returned quantity match its rows, and
// every line of every file that reached mysql-sender done on all its shards
// is accounted for exactly once: applied, rejected, duplicate or pending on
// one shard, set aside as malformed by the splitter, or held by the splitter
// for its purchase.
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

	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/spool"
)

// Sources are the databases and the shared folder the audit reads.
type Sources struct {
	Shards   []*sql.DB // shard i at index i
	Pipeline *sql.DB   // pipeline_db
	Splitter *sql.DB   // splitter_db
	Spool    spool.Dir
}

// Report is what the audit found.
type Report struct {
	Problems []string
	Files    int            // files checked line by line
	Lines    int            // lines in those files
	Outcomes map[string]int // applied, rejected, duplicate, pending, malformed, held
	Users    int
	Stock    int
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

// lines accounts for every line of every file finished on all its shards.
func (r *Report) lines(ctx context.Context, src Sources) error {
	rows, err := src.Pipeline.QueryContext(ctx, `SELECT filename FROM pipeline_tracking GROUP BY filename
		HAVING SUM(mysql_sender_status <> 'done') = 0 ORDER BY filename`)
	if err != nil {
		return fmt.Errorf("finished files: %w", err)
	}
	var files []string
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			rows.Close()
			return err
		}
		files = append(files, f)
	}
	rows.Close()
	finished := map[string]bool{}
	// seen[file][line] counts how many places account for the line.
	seen := map[string][]uint8{}
	for _, f := range files {
		n, err := countLines(src.Spool.EventsFile(f))
		if err != nil {
			r.add("file %s reached mysql-sender done but its events file cannot be read: %v", f, err)
			continue
		}
		finished[f] = true
		seen[f] = make([]uint8, n+1)
		r.Files++
		r.Lines += n
	}
	mark := func(file string, line int, outcome, where string) {
		s, ok := seen[file]
		if !ok {
			return // a file not finished everywhere yet
		}
		if line < 1 || line >= len(s) {
			r.add("file %s: %s names line %d, but the file has %d lines", file, where, line, len(s)-1)
			return
		}
		s[line]++
		r.Outcomes[outcome]++
		if s[line] == 2 {
			r.add("file %s line %d is accounted for more than once (again %s as %s)", file, line, where, outcome)
		}
	}
	for i, db := range src.Shards {
		rows, err := db.QueryContext(ctx, "SELECT source_file, source_line, status FROM events")
		if err != nil {
			return fmt.Errorf("shard %d events: %w", i, err)
		}
		for rows.Next() {
			var file, status string
			var line int
			if err := rows.Scan(&file, &line, &status); err != nil {
				rows.Close()
				return err
			}
			mark(file, line, status, fmt.Sprintf("on shard %d", i))
		}
		rows.Close()
	}
	for f := range finished {
		err := spool.ReadLines(src.Spool.MalformedFile(f), spool.MaxLine, func(l spool.Line) error {
			var m struct {
				Line int `json:"line"`
			}
			if err := json.Unmarshal(l.Bytes, &m); err != nil {
				return err
			}
			mark(f, m.Line, "malformed", "by the splitter")
			return nil
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			r.add("file %s: malformed-lines file unreadable: %v", f, err)
		}
	}
	if src.Splitter != nil {
		rows, err := src.Splitter.QueryContext(ctx, "SELECT filename, line FROM held_return WHERE released_in IS NULL")
		if err != nil {
			return fmt.Errorf("held returns: %w", err)
		}
		for rows.Next() {
			var file string
			var line int
			if err := rows.Scan(&file, &line); err != nil {
				rows.Close()
				return err
			}
			mark(file, line, "held", "held by the splitter")
		}
		rows.Close()
	}
	names := make([]string, 0, len(seen))
	for f := range seen {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		for line, n := range seen[f][1:] {
			if n == 0 {
				r.add("file %s line %d is not accounted for anywhere", f, line+1)
			}
		}
	}
	return nil
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
