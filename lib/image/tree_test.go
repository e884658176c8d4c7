package image

import (
	"fmt"
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
		{"group leader gone", []*Task{task(10, 1, 10, 10), task(12, 10, 11, 10),
			task(13, 10, 11, 10)}, "helpers 11/12"},
		{"leader in another session", []*Task{task(10, 1, 10, 10), task(11, 10, 11, 11),
			task(12, 10, 11, 10)}, "process group 11, whose leader has left it"},
		{"leader left its group", []*Task{task(10, 1, 10, 10), task(11, 10, 12, 10),
			task(12, 10, 12, 10), task(13, 10, 11, 10)}, "process group 11"},
		{"session leader gone", []*Task{task(10, 1, 10, 10), task(12, 10, 7, 7),
			task(13, 10, 13, 7), task(14, 13, 7, 7)}, "helpers s7/10"},
		{"session and group leaders gone", []*Task{task(10, 1, 10, 10), task(12, 10, 8, 7),
			task(13, 12, 8, 7)}, "helpers s7/10 8/12"},
		{"session leader gone, two parents", []*Task{task(10, 1, 10, 10), task(11, 10, 11, 11),
			task(12, 10, 12, 7), task(13, 11, 13, 7)}, "and so is a child of pid 10"},
		{"session left by the parent", []*Task{task(10, 1, 10, 10), task(11, 10, 11, 11),
			task(12, 11, 12, 10)}, "session 10, which its parent 11 has left"},
		{"session leader after its member", []*Task{task(10, 1, 10, 10),
			task(12, 10, 12, 11), task(11, 10, 11, 11)}, "pid 11 (x) leads session 11"},
		{"group across sessions", []*Task{task(10, 1, 10, 10), task(11, 10, 11, 11),
			task(12, 10, 9, 10), task(13, 11, 9, 11)}, "the image is inconsistent"},
		{"parent missing", []*Task{task(10, 1, 10, 10), task(12, 11, 10, 10)},
			"its parent 11 is not in the tree"},
	}
	for _, tt := range tests {
		helpers, err := CheckTree(tt.tasks)
		got := "helpers"
		for _, h := range helpers {
			kind := ""
			if h.Session {
				kind = "s"
			}
			got += fmt.Sprintf(" %s%d/%d", kind, h.PID, h.Parent)
		}
		if err != nil {
			got = err.Error()
		}
		if tt.want == "" && got != "helpers" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("%s: %s, want %q", tt.name, got, tt.want)
		}
	}
}
