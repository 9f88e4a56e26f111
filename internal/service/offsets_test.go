package service

import (
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/consume"
)

func TestResetOf(t *testing.T) {
	shift := int64(-5)
	for _, tc := range []struct {
		earliest bool
		datetime string
		shift    *int64
		want     consume.Reset
		err      bool
	}{
		{want: consume.Reset{To: consume.ToEarliest}},
		{earliest: true, want: consume.Reset{To: consume.ToEarliest}},
		{datetime: "2026-11-23T06:00:00Z", want: consume.Reset{To: consume.ToDatetime, At: time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)}},
		{datetime: "2026-11-23T09:00:00.250+03:00", want: consume.Reset{To: consume.ToDatetime, At: time.Date(2026, 11, 23, 6, 0, 0, 250e6, time.UTC)}},
		{datetime: "2026-11-23T06:00:00.000", want: consume.Reset{To: consume.ToDatetime, At: time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)}},
		{shift: &shift, want: consume.Reset{To: consume.ShiftBy, Shift: -5}},
		{datetime: "yesterday", err: true},
		{datetime: "2026-11-23", err: true},
		{earliest: true, shift: &shift, err: true},
		{datetime: "2026-11-23T06:00:00Z", shift: &shift, err: true},
	} {
		got, err := resetOf(tc.earliest, tc.datetime, tc.shift)
		if (err != nil) != tc.err || !got.At.Equal(tc.want.At) || got.To != tc.want.To || got.Shift != tc.want.Shift {
			t.Errorf("resetOf(%v, %q, %v) = %+v, %v; want %+v, error %v", tc.earliest, tc.datetime, tc.shift, got, err, tc.want, tc.err)
		}
	}
}
