package capture

import (
	"encoding/json"
	"testing"
)

// The hand-written encoder of the envelope writes any string as
// encoding/json does, invalid UTF-8, control characters and HTML
// characters included, so the messages are valid JSON whatever the rows
// hold.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "kettle", "a\"b\\c", "<&>", "\u2028\u2029", "tab\tnl\n", "\xff\xfe", "é🙂", "\x00\x1f\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}
