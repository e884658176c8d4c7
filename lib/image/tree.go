package image

import "fmt"

// CheckTree reports why restore could not rebuild the sessions and
// process groups of tasks, a dumped tree in stream order (the root
// first), or nil if it can. Restore makes the root lead a session and a
// group of its own, which stand for the root's old ones when their
// leaders were outside the tree; every other process must lead its
// session or share its parent's, and lead its group or share one whose
// leader is in the tree, in the same session. A stage that can still
// let the tree go (ckpt-scan) checks it, so a dump with --kill never
// ends a tree that could not come back.
func CheckTree(tasks []*Task) error {
	if len(tasks) == 0 {
		return nil
	}
	root := tasks[0]
	sids := map[int]int{root.SID: root.PID}
	pgids := map[int]int{root.PGID: root.PID}
	mapped := func(m map[int]int, id int) int {
		if v, ok := m[id]; ok {
			return v
		}
		return id
	}
	byPID := map[int]*Task{}
	for _, t := range tasks {
		byPID[t.PID] = t
	}
	sid := func(t *Task) int { return mapped(sids, t.SID) }
	pgid := func(t *Task) int { return mapped(pgids, t.PGID) }
	for _, t := range tasks[1:] {
		parent := byPID[t.PPID]
		if parent == nil {
			return fmt.Errorf("pid %d (%s): its parent %d is not in the tree", t.PID, t.Comm, t.PPID)
		}
		if s := sid(t); s != t.PID && s != sid(parent) {
			return fmt.Errorf("pid %d (%s) is in session %d, which neither it nor its parent "+
				"%d leads, and whose leader is gone: restoring that is not supported yet",
				t.PID, t.Comm, t.SID, t.PPID)
		}
		g := pgid(t)
		if g == t.PID {
			continue
		}
		if leader := byPID[g]; leader == nil || pgid(leader) != g || sid(leader) != sid(t) {
			return fmt.Errorf("pid %d (%s) is in process group %d, whose leader is gone: "+
				"restoring that is not supported yet", t.PID, t.Comm, t.PGID)
		}
	}
	return nil
}
