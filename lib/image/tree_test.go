package image

import (
	"strings"
	"testing"
)

func TestCheckTree(t *testing.T) {
	task := func(pid, ppid, pgid, sid int) *Task {
		return &Task{PID: pid, PPID: ppid, PGID: pgid, SID: sid, Comm: "x"}
	}
	tests := []struct {
		name  string
		tasks []*Task
		want  string // "" for no error
	}{
		{"shell job", []*Task{task(10, 1, 10, 5), task(11, 10, 10, 5), task(12, 11, 10, 5)}, ""},
		{"outside group", []*Task{task(10, 1, 3, 5), task(11, 10, 3, 5)}, ""},
		{"own group and session", []*Task{task(10, 1, 10, 10), task(11, 10, 11, 10),
			task(12, 11, 11, 10), task(13, 10, 13, 13)}, ""},
		{"group of a sibling", []*Task{task(10, 1, 10, 10), task(11, 10, 11, 10),
			task(12, 10, 11, 10)}, ""},
		{"group leader gone", []*Task{task(10, 1, 10, 10), task(12, 10, 11, 10)},
			"process group 11, whose leader is gone"},
		{"leader in another session", []*Task{task(10, 1, 10, 10), task(11, 10, 11, 11),
			task(12, 10, 11, 10)}, "process group 11"},
		{"session leader gone", []*Task{task(10, 1, 10, 10), task(11, 10, 11, 11),
			task(12, 11, 12, 7)}, "session 7"},
		{"parent missing", []*Task{task(10, 1, 10, 10), task(12, 11, 10, 10)},
			"its parent 11 is not in the tree"},
	}
	for _, tt := range tests {
		err := CheckTree(tt.tasks)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil ||
			!strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}
