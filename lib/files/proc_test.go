package files

import (
	"os"
	"testing"
)

func TestParseStartTime(t *testing.T) {
	tests := map[string]uint64{
		"testdata/stat-cat":    61701,
		"testdata/stat-parens": 61463, // command name "we) ird (na)me"
	}
	for file, want := range tests {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseStartTime(b)
		if err != nil || got != want {
			t.Errorf("%s: got %d, %v; want %d", file, got, err, want)
		}
	}
}

func TestParseStartTimeBad(t *testing.T) {
	for _, s := range []string{"", "1 cat R 1", "1 (cat) R 1 2 3", "1 (cat)" + fields(19) + " x"} {
		if got, err := parseStartTime([]byte(s)); err == nil {
			t.Errorf("%q: got %d, want an error", s, got)
		}
	}
}

func fields(n int) string {
	s := ""
	for range n {
		s += " 0"
	}
	return s
}

func FuzzParseStartTime(f *testing.F) {
	for _, file := range []string{"testdata/stat-cat", "testdata/stat-parens"} {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseStartTime(b)
	})
}
