package spool

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestReadLines(t *testing.T) {
	long := strings.Repeat("x", 3<<20)
	cases := []struct {
		text  string
		limit int
		want  []string // "!" + length for a line set aside
	}{
		{"a\nbb\n", 10, []string{"a", "bb"}},
		{"a\nbb", 10, []string{"a", "bb"}},
		{"\n\nc\n", 10, []string{"", "", "c"}},
		{"", 10, nil},
		{"0123456789\n01234567890\nz", 10, []string{"0123456789", "!11", "z"}},
		{"a\n" + long + "\nb\n", 1 << 20, []string{"a", "!3145728", "b"}},
		{long + "\n", 4 << 20, []string{long}},
	}
	for i, c := range cases {
		path := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(path, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		var got []string
		err := ReadLines(path, c.limit, func(l Line) error {
			if l.N != len(got)+1 {
				t.Errorf("case %d: line number %d, want %d", i, l.N, len(got)+1)
			}
			if l.TooLong() {
				got = append(got, "!"+strconv.Itoa(l.Len))
			} else {
				got = append(got, string(l.Bytes))
			}
			return nil
		})
		if err != nil || strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("case %d: ReadLines = %.80q, %v; want %.80q", i, got, err, c.want)
		}
	}
}
