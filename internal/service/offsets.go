package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shopledger/shopledger/internal/cli"
	"github.com/shopledger/shopledger/internal/consume"
)

// ErrSkips is returned by reset-offsets without --force when the reset
// would move a partition forward past what the group consumed.
var ErrSkips = errors.New("the reset skips changes the group has not consumed")

// resetOffsets is the reset-offsets command: kafka-consumer-groups
// --reset-offsets for the consumer's own group and topics.
func resetOffsets(fs *flag.FlagSet) cli.Runner[Config] {
	earliest := fs.Bool("to-earliest", false, "move every partition to its first offset (the default)")
	datetime := fs.String("to-datetime", "", "move every partition to its first message at or after `T` (RFC 3339, e.g. 2026-11-23T06:00:00Z; "+
		"no zone means UTC), or to its end when none is that recent")
	var shift *int64
	fs.Func("shift-by", "move every partition's committed offset by `N` (negative: back), within the partition's first offset and end", func(s string) error {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", s)
		}
		shift = &n
		return nil
	})
	dryRun := fs.Bool("dry-run", false, "print the plan per partition and change nothing")
	force := fs.Bool("force", false, "do it even if it moves partitions forward past what the group consumed (those changes are then never applied: see README)")
	return cli.NoArgs(func(ctx context.Context, cfg *Config, _ []string) error {
		r, err := resetOf(*earliest, *datetime, shift)
		if err != nil {
			return cli.Exit(cli.ExitUsage, err)
		}
		plan, err := consume.PlanReset(ctx, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Kafka.Topics, r)
		if err != nil {
			return err
		}
		printPlan(os.Stdout, cfg.Kafka.Group, plan)
		skipped, parts := 0, 0
		for _, p := range plan {
			if n := p.Skipped(); n > 0 {
				skipped += int(n)
				parts++
			}
		}
		var skips error
		if skipped > 0 {
			skips = fmt.Errorf("%w: %d partitions move forward past the group's offset, skipping %d changes that the state would then never get "+
				"(later changes move the watermarks past them; only a rebuild restores them)", ErrSkips, parts, skipped)
		}
		if *dryRun {
			if skips != nil {
				fmt.Printf("warning: %v\n", skips)
			}
			fmt.Printf("dry run: nothing changed\n")
			return nil
		}
		if skips != nil && !*force {
			return fmt.Errorf("%w; add --force to do it anyway", skips)
		}
		if err := consume.CommitPlan(ctx, cfg.Kafka.Brokers, cfg.Kafka.Group, plan); err != nil {
			return err
		}
		fmt.Printf("group %s: %d partitions reset\n", cfg.Kafka.Group, len(plan))
		return nil
	})
}

// resetOf reads the reset options: one of them at most.
func resetOf(earliest bool, datetime string, shift *int64) (consume.Reset, error) {
	n := 0
	for _, set := range []bool{earliest, datetime != "", shift != nil} {
		if set {
			n++
		}
	}
	if n > 1 {
		return consume.Reset{}, errors.New("--to-earliest, --to-datetime and --shift-by exclude each other")
	}
	switch {
	case datetime != "":
		at, err := ParseDatetime(datetime)
		if err != nil {
			return consume.Reset{}, err
		}
		return consume.Reset{To: consume.ToDatetime, At: at}, nil
	case shift != nil:
		return consume.Reset{To: consume.ShiftBy, Shift: *shift}, nil
	}
	return consume.Reset{To: consume.ToEarliest}, nil
}

// ParseDatetime reads an RFC 3339 time, or one without zone in UTC (as
// kafka-consumer-groups reads 2026-11-23T06:00:00.000).
func ParseDatetime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02T15:04:05.999999999", s, time.UTC); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--to-datetime %q: want an RFC 3339 time such as 2026-11-23T06:00:00Z or 2026-11-23T09:00:00.000+03:00", s)
}

// printPlan writes the plan as a table, as kafka-consumer-groups does, with
// the current offset and the partition's range.
func printPlan(w io.Writer, group string, plan []consume.Planned) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "GROUP\tTOPIC\tPARTITION\tCURRENT-OFFSET\tNEW-OFFSET\tLOG-START\tLOG-END\tNOTE\n")
	for _, p := range plan {
		cur := "-"
		if p.Current != consume.NoOffset {
			cur = strconv.FormatInt(p.Current, 10)
		}
		var note []string
		if n := p.Skipped(); n > 0 {
			note = append(note, fmt.Sprintf("skips %d", n))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\t%s\n", group, p.Topic, p.Partition, cur, p.New, p.Start, p.End, strings.Join(note, " "))
	}
	tw.Flush()
}
