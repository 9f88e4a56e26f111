// Package money holds amounts of money as integer cents, so that no amount in
// shopledger ever passes through a float. It reads and writes the decimal text
// used by JSON events and by MySQL DECIMAL(18,2) columns.
package money

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Cents is an amount of money in hundredths of the currency unit.
type Cents int64

// ErrInvalid is returned by Parse for text that is not a decimal amount with at
// most two fractional digits.
var ErrInvalid = errors.New("invalid money amount")

// maxCents bounds amounts to what DECIMAL(18,2) can hold.
const maxCents = 999_999_999_999_999_999

// Parse reads a decimal amount such as "12", "-3.5" or "1234.56". It refuses
// exponents, more than two fractional digits and amounts beyond DECIMAL(18,2).
func Parse(s string) (Cents, error) {
	orig := s
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || len(frac) > 2 || (hasDot && frac == "") || !digits(whole) || !digits(frac) {
		return 0, fmt.Errorf("%w: %q", ErrInvalid, orig)
	}
	if len(whole) > 16 {
		return 0, fmt.Errorf("%w: %q exceeds DECIMAL(18,2)", ErrInvalid, orig)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrInvalid, orig)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	c := w*100 + f
	if c > maxCents {
		return 0, fmt.Errorf("%w: %q exceeds DECIMAL(18,2)", ErrInvalid, orig)
	}
	if neg {
		c = -c
	}
	return Cents(c), nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String renders the amount as decimal text with two fractional digits,
// the form MySQL accepts for DECIMAL(18,2).
func (c Cents) String() string {
	v := int64(c)
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
}

// MarshalJSON writes the amount as a JSON number with two decimals.
func (c Cents) MarshalJSON() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalJSON accepts a JSON number or a JSON string holding a decimal.
func (c *Cents) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := Parse(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Scan implements sql.Scanner for DECIMAL columns.
func (c *Cents) Scan(src any) error {
	switch v := src.(type) {
	case []byte:
		p, err := Parse(string(v))
		*c = p
		return err
	case string:
		p, err := Parse(v)
		*c = p
		return err
	case int64:
		*c = Cents(v * 100)
		return nil
	case nil:
		*c = 0
		return nil
	}
	return fmt.Errorf("money: cannot scan %T", src)
}
