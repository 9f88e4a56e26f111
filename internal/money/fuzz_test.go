package money

import (
	"encoding/json"
	"strings"
	"testing"
)

// Parse never panics; what it accepts formats back to text it reads as the
// same amount, with exactly two decimals, within DECIMAL(18,2); and JSON
// round-trips the amount.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "12.5", "-3.10", "+7.01", "9999999999999999.99", "1e3", ".5", "00012.00", "-0", "١٢"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			return
		}
		text := c.String()
		back, err := Parse(text)
		if err != nil || back != c {
			t.Fatalf("Parse(%q) = %d, formatted %q, parsed back %d, %v", s, c, text, back, err)
		}
		if i := strings.IndexByte(text, '.'); i < 0 || len(text)-i-1 != 2 {
			t.Fatalf("%d formats as %q, want two decimals", c, text)
		}
		if c > maxCents || c < -maxCents {
			t.Fatalf("Parse(%q) = %d, beyond DECIMAL(18,2)", s, c)
		}
		b, err := json.Marshal(c)
		var j Cents
		if err != nil || json.Unmarshal(b, &j) != nil || j != c {
			t.Fatalf("JSON of %d = %s (%v), read back %d", c, b, err, j)
		}
	})
}
