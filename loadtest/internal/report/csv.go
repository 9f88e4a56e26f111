package report

import (
	"encoding/csv"
	"math"
	"os"
	"strconv"

	"github.com/shopledger/shopledger/loadtest/internal/load"
)

// Columns are series.csv's columns, one row per second of the run; an
// empty cell is a gauge that could not be read.
var Columns = []string{"second", "phase", "offered_events", "written_events", "write_errors",
	"split_events", "worker_events", "sender_events", "pipeline_split_rows", "pipeline_worker_rows", "pipeline_sender_rows",
	"cdc_rows", "cdc_lag_seconds", "balance_applied", "cache_applied", "balance_lag_messages", "cache_lag_messages",
	"reads", "read_errors", "read_p50_ms", "read_p99_ms", "e2e_balance_max_ms", "e2e_cache_max_ms"}

func writeCSV(path string, series []load.Second) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write(Columns)
	for _, s := range series {
		w.Write([]string{strconv.Itoa(s.T), string(s.Phase), strconv.Itoa(s.Offered), strconv.Itoa(s.Written), strconv.Itoa(s.WriteErrors),
			strconv.Itoa(s.Split), strconv.Itoa(s.Worked), strconv.Itoa(s.Sent), cell(s.RowsSplit), cell(s.RowsWorked), cell(s.RowsSent),
			cell(s.CDCRows), cell(s.CDCLag), cell(s.BalanceApplied), cell(s.CacheApplied), cell(s.BalanceLag), cell(s.CacheLag),
			strconv.Itoa(s.Reads), strconv.Itoa(s.ReadErrors), cell(s.ReadP50), cell(s.ReadP99), cell(s.BalanceE2EMax), cell(s.CacheE2EMax)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func cell(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
