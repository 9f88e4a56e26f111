package money

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		want Cents
		err  bool
	}{
		{"0", 0, false},
		{"12", 1200, false},
		{"12.5", 1250, false},
		{"12.05", 1205, false},
		{"-3.10", -310, false},
		{"+7.01", 701, false},
		{"9999999999999999.99", 999999999999999999, false},
		{"12.345", 0, true},
		{"1e3", 0, true},
		{"", 0, true},
		{".5", 0, true},
		{"5.", 0, true},
		{"abc", 0, true},
		{"99999999999999999", 0, true},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if c.err {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%q) error = %v, want ErrInvalid", c.in, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %d, %v, want %d", c.in, got, err, c.want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, c := range []Cents{0, 1, -1, 99, 100, 123456, -987654321} {
		b, _ := json.Marshal(c)
		var back Cents
		if err := json.Unmarshal(b, &back); err != nil || back != c {
			t.Errorf("round trip of %d via %s = %d, %v", c, b, back, err)
		}
	}
	var s Cents
	if err := json.Unmarshal([]byte(`"15.20"`), &s); err != nil || s != 1520 {
		t.Errorf(`Unmarshal("15.20") = %d, %v, want 1520`, s, err)
	}
}
