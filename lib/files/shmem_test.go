package files

import (
	"slices"
	"testing"
)

func TestNonZeroRuns(t *testing.T) {
	p := make([]byte, 10*8)
	for _, i := range []int{0, 9, 17, 23, 47, 79} {
		p[i] = 1 // pieces 0, 1, 2, 5 and 9 hold data
	}
	got := nonZeroRuns(p, 8)
	want := [][2]int{{0, 24}, {40, 48}, {72, 80}}
	if !slices.Equal(got, want) {
		t.Errorf("runs %v, want %v", got, want)
	}
	if got := nonZeroRuns(make([]byte, 4096*3), 4096); len(got) != 0 {
		t.Errorf("zeros give runs %v", got)
	}
	short := make([]byte, 4096+100)
	short[4096+99] = 7
	if got := nonZeroRuns(short, 4096); !slices.Equal(got, [][2]int{{4096, 4196}}) {
		t.Errorf("a short last piece gives runs %v", got)
	}
}
