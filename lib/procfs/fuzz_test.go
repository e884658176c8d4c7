package procfs

import (
	"bytes"
	"testing"
)

// The parsers read files of /proc; they must never panic on any input.

func seed(f *testing.F, names ...string) {
	for _, n := range names {
		f.Add(testdata(f, n))
	}
}

func FuzzParseStat(f *testing.F) {
	seed(f, "python3/stat", "stat.weirdcomm", "stat.zombie")
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseStat(b) })
}

func FuzzParseStatus(f *testing.F) {
	seed(f, "python3/status", "status.groups")
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseStatus(bytes.NewReader(b)) })
}

func FuzzParseSmaps(f *testing.F) {
	seed(f, "sleep/smaps", "python3/maps")
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseSmaps(bytes.NewReader(b))
		_, _ = ParseMaps(bytes.NewReader(b))
	})
}

func FuzzParseAuxv(f *testing.F) {
	seed(f, "python3/auxv")
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseAuxv(b) })
}

func FuzzParseLimits(f *testing.F) {
	seed(f, "python3/limits")
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseLimits(bytes.NewReader(b)) })
}

func FuzzParseFdinfo(f *testing.F) {
	seed(f, "python3/fdinfo.3")
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseFdinfo(bytes.NewReader(b))
		_, _ = ParseChildren(b)
		_, _ = ParsePersonality(b)
	})
}

func FuzzParseAnonFdinfo(f *testing.F) {
	seed(f, "anonfd/eventfd", "anonfd/signalfd", "anonfd/timerfd", "anonfd/epoll")
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseEventfd(b)
		_, _ = ParseSignalfd(b)
		_, _ = ParseTimerfd(b)
		_, _ = ParseEpoll(b)
	})
}
