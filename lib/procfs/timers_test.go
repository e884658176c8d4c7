package procfs

import (
	"slices"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
)

func TestParseTimers(t *testing.T) {
	got, err := ParseTimers(testdata(t, "timers/three"))
	if err != nil {
		t.Fatal(err)
	}
	want := []image.PosixTimer{
		{ID: 0, Clock: 1, Notify: image.SigevSignal, Signo: 36, SigValue: 0x1234},
		{ID: 1, Clock: 0, Notify: image.SigevNone, Signo: 36, SigValue: 0x1234},
		{ID: 2, Clock: 1, Notify: image.SigevSignal | image.SigevThreadID, Signo: 12,
			SigValue: 0x1234, TID: 901},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestParseTimersBad(t *testing.T) {
	for _, in := range []string{
		"signal: 1/0\n",                    // before an ID
		"ID: x\n",                          // not a number
		"ID: 0\nsignal: 12\n",              // no value
		"ID: 0\nnotify: sometimes/pid.1\n", // unknown kind
		"ID: 0\nnotify: signal/task.1\n",   // neither pid nor tid
		"ID: 0\nnotify: signal/pid.x\n",    // not a number
		"ID: 0\nsignal: 12/zz\n",           // value not hex
		"ID: 0\nno colon here\n",           // no key
	} {
		if got, err := ParseTimers([]byte(in)); err == nil {
			t.Errorf("%q: parsed as %+v, want an error", in, got)
		}
	}
	if got, err := ParseTimers(nil); err != nil || len(got) != 0 {
		t.Errorf("empty file: %+v, %v", got, err)
	}
}

func FuzzParseTimers(f *testing.F) {
	seed(f, "timers/three")
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseTimers(b) })
}
