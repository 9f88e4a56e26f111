package sqldb

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestText(t *testing.T) {
	cases := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven char", 10, "eleven ch…"},
		{strings.Repeat("é", 300), 255, strings.Repeat("é", 254) + "…"},
		{strings.Repeat("🙂", 3), 2, "🙂…"},
		{"bad \xff byte", 20, "bad \uFFFD byte"},
	}
	for _, c := range cases {
		got := Text(c.in, c.max)
		if got != c.want || !utf8.ValidString(got) || utf8.RuneCountInString(got) > c.max {
			t.Errorf("Text(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}
