package capture

// Column values as Debezium renders them in JSON, from either input: the
// values go-mysql decodes from the binlog (integers, float32/float64,
// strings for DECIMAL and times, []byte for BLOB, an index for ENUM, a bit
// mask for SET, an int64 for BIT) or the text protocol's bytes of the
// snapshot (and information_schema's default literals). Both go through
// appendColumn, so a row reads the same from either.

import (
	"encoding/base64"
	"math"
	"strconv"
	"time"
	"unsafe"
)

// text is a value in its text form.
type text interface{ string | []byte }

// str views s as a string without copying; the result must not outlive s
// nor be kept.
func str[T text](s T) string {
	if b, ok := any(s).([]byte); ok {
		return unsafe.String(unsafe.SliceData(b), len(b))
	}
	return any(s).(string)
}

// raw views s as bytes without copying; the result must not be changed.
func raw[T text](s T) []byte {
	if str, ok := any(s).(string); ok {
		return unsafe.Slice(unsafe.StringData(str), len(str))
	}
	return any(s).([]byte)
}

// appendColumn appends v, a value of column c, as JSON.
func appendColumn(b []byte, c *column, v any) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	switch x := v.(type) {
	case []byte:
		return appendText(b, c, x)
	case string:
		return appendText(b, c, x)
	}
	switch c.kind {
	case kindInteger, kindYear:
		if c.kind == kindInteger && c.intType == "int64" && c.unsigned {
			if u, ok := v.(uint64); ok {
				return strconv.AppendInt(b, int64(u), 10) // bigint.unsigned.handling.mode=long
			}
		}
		if n, ok := toInt(v); ok {
			return strconv.AppendInt(b, n, 10)
		}
	case kindBoolean:
		if n, ok := toInt(v); ok {
			return strconv.AppendBool(b, n != 0)
		}
	case kindBits:
		if n, ok := toInt(v); ok {
			return appendBits(b, c, n)
		}
	case kindFloat:
		switch f := v.(type) {
		case float32:
			return appendFloat(b, float64(f), 32)
		case float64:
			return appendFloat(b, f, 32)
		}
	case kindDouble:
		switch f := v.(type) {
		case float32:
			return appendFloat(b, float64(f), 64)
		case float64:
			return appendFloat(b, f, 64)
		}
	case kindEnum:
		if n, ok := toInt(v); ok {
			if n >= 1 && int(n) <= len(c.labels) {
				return appendString(b, c.labels[n-1])
			}
			return append(b, `""`...)
		}
	case kindSet:
		if n, ok := toInt(v); ok {
			b = append(b, '"')
			first := true
			for i, label := range c.labels {
				if n&(1<<i) != 0 {
					if !first {
						b = append(b, ',')
					}
					first = false
					b = appendStringBody(b, label)
				}
			}
			return append(b, '"')
		}
	}
	return appendValue(b, v) // what no column type expects: as encoding/json writes it
}

// appendText appends a value given as text (or as a binary string).
func appendText[T text](b []byte, c *column, s T) []byte {
	switch c.kind {
	case kindText, kindJSON, kindDecimal, kindEnum, kindSet:
		return appendString(b, str(s))
	case kindBinary:
		return appendBinary(b, c, s)
	case kindInteger, kindYear:
		if n, err := strconv.ParseInt(str(s), 10, 64); err == nil {
			return strconv.AppendInt(b, n, 10)
		}
		if u, err := strconv.ParseUint(str(s), 10, 64); err == nil {
			return strconv.AppendInt(b, int64(u), 10)
		}
	case kindBoolean:
		if c.size == 1 { // BIT(1): one raw byte
			return strconv.AppendBool(b, len(s) > 0 && s[len(s)-1] != 0)
		}
		if n, err := strconv.ParseInt(str(s), 10, 64); err == nil {
			return strconv.AppendBool(b, n != 0)
		}
	case kindBits: // the raw bytes, big-endian
		var n int64
		for i := 0; i < len(s); i++ {
			n = n<<8 | int64(s[i])
		}
		return appendBits(b, c, n)
	case kindFloat, kindDouble:
		bits := 64
		if c.kind == kindFloat {
			bits = 32
		}
		if f, err := strconv.ParseFloat(str(s), bits); err == nil {
			return appendFloat(b, f, bits)
		}
	case kindDate:
		if y, m, d, ok := parseDate(s); ok && m > 0 && d > 0 {
			return strconv.AppendInt(b, time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).Unix()/86400, 10)
		}
		return append(b, "null"...)
	case kindTime:
		if us, ok := parseTime(s); ok {
			return strconv.AppendInt(b, us, 10)
		}
	case kindDatetime, kindDatetimeMicro:
		t, ok := parseDatetime(s)
		if !ok {
			return append(b, "null"...)
		}
		if c.kind == kindDatetimeMicro {
			return strconv.AppendInt(b, t.UnixMicro(), 10)
		}
		return strconv.AppendInt(b, t.UnixMilli(), 10)
	case kindTimestamp:
		return appendTimestamp(b, c, s)
	}
	return appendString(b, str(s))
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case int:
		return int64(n), true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		return int64(n), true
	case bool:
		if n {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// appendFloat appends f as the JSON number of a float (bits 32) or double.
func appendFloat(b []byte, f float64, bits int) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// appendBits appends the bits n of a BIT(size) column as Debezium's Bits:
// (size+7)/8 bytes, least significant first, in base64.
func appendBits(b []byte, c *column, n int64) []byte {
	var le [8]byte
	size := min((c.size+7)/8, 8)
	for i := range size {
		le[i] = byte(n >> (8 * i))
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, le[:size])
	return append(b, '"')
}

// appendBinary appends bytes in base64; a BINARY(n) value is padded with
// zero bytes to n, as the server stores it (the binlog drops the padding).
func appendBinary[T text](b []byte, c *column, s T) []byte {
	b = append(b, '"')
	pad := c.size - len(s)
	if pad <= 0 {
		b = base64.StdEncoding.AppendEncode(b, raw(s))
		return append(b, '"')
	}
	var small [64]byte
	var padded []byte
	if c.size <= len(small) {
		padded = small[:c.size]
	} else {
		padded = make([]byte, c.size)
	}
	clear(padded[copy(padded, s):])
	b = base64.StdEncoding.AppendEncode(b, padded)
	return append(b, '"')
}

// appendTimestamp appends a TIMESTAMP, given as UTC text
// "YYYY-MM-DD HH:MM:SS[.ffffff]", as ISO-8601 with the column's fractional
// digits: "YYYY-MM-DDTHH:MM:SS[.fff]Z".
func appendTimestamp[T text](b []byte, c *column, s T) []byte {
	if len(s) < 19 || (s[0] == '0' && s[1] == '0' && s[2] == '0' && s[3] == '0') {
		return append(b, "null"...) // the zero timestamp
	}
	b = append(b, '"')
	b = append(b, s[:10]...)
	b = append(b, 'T')
	b = append(b, s[11:19]...)
	if c.size > 0 {
		b = append(b, '.')
		frac := s[min(len(s), 20):]
		for i := range c.size {
			if i < len(frac) {
				b = append(b, frac[i])
			} else {
				b = append(b, '0')
			}
		}
	}
	return append(b, 'Z', '"')
}

// digits reads s[i:j] as a decimal number.
func digits[T text](s T, i, j int) (int, bool) {
	if i < 0 || j > len(s) || i >= j {
		return 0, false
	}
	n := 0
	for k := i; k < j; k++ {
		c := s[k]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// parseDate reads "YYYY-MM-DD".
func parseDate[T text](s T) (y, m, d int, ok bool) {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return 0, 0, 0, false
	}
	y, ok1 := digits(s, 0, 4)
	m, ok2 := digits(s, 5, 7)
	d, ok3 := digits(s, 8, 10)
	return y, m, d, ok1 && ok2 && ok3
}

// parseDatetime reads "YYYY-MM-DD HH:MM:SS[.ffffff]" as UTC; a zero date
// (or one with a zero month or day) is not a time.
func parseDatetime[T text](s T) (time.Time, bool) {
	y, m, d, ok := parseDate(s)
	if !ok || m == 0 || d == 0 || len(s) < 19 || s[10] != ' ' && s[10] != 'T' {
		return time.Time{}, false
	}
	hh, ok1 := digits(s, 11, 13)
	mm, ok2 := digits(s, 14, 16)
	ss, ok3 := digits(s, 17, 19)
	if !ok1 || !ok2 || !ok3 {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(m), d, hh, mm, ss, fraction(s, 19)*1000, time.UTC), true
}

// fraction reads ".ffffff" at s[i:] as microseconds (0 when absent).
func fraction[T text](s T, i int) int {
	if i >= len(s) || s[i] != '.' {
		return 0
	}
	us := 0
	for k := range 6 {
		us *= 10
		if j := i + 1 + k; j < len(s) && s[j] >= '0' && s[j] <= '9' {
			us += int(s[j] - '0')
		}
	}
	return us
}

// parseTime reads "[-]HHH:MM:SS[.ffffff]" as microseconds.
func parseTime[T text](s T) (int64, bool) {
	neg := len(s) > 0 && s[0] == '-'
	i := 0
	if neg {
		i = 1
	}
	colon := i
	for colon < len(s) && s[colon] != ':' {
		colon++
	}
	h, ok1 := digits(s, i, colon)
	m, ok2 := digits(s, colon+1, colon+3)
	sec, ok3 := digits(s, colon+4, colon+6)
	if !ok1 || !ok2 || !ok3 || colon+3 >= len(s) || s[colon+3] != ':' {
		return 0, false
	}
	us := (int64(h)*3600+int64(m)*60+int64(sec))*1_000_000 + int64(fraction(s, colon+6))
	if neg {
		us = -us
	}
	return us, true
}
