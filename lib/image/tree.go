package image

import "fmt"

// Tree decides how restore rebuilds the sessions and process groups of a
// dumped tree. Tasks are added in stream order, every parent before its
// children; the same rules serve ckpt-scan, which checks a tree while it
// can still let it go, and ckpt-restore, which follows them as the tasks
// stream in.
//
// The root leads a session and a group of its own, which stand for its
// old ones when their leaders were outside the tree. Every other process
// leads its session, or shares its parent's, or shares one whose leader
// is gone: a helper with the leader's PID, cloned from the process's
// parent, calls setsid and clones the process with CLONE_PARENT, so the
// process is its parent's child in the old session. A process leads its
// group or joins one in its session, whose leader is in the tree or gone:
// then a helper with the leader's PID, cloned from the group's first
// member, makes the group for the others to join. Helpers exit, and are
// reaped, once every process is in its group.
type Tree struct {
	byPID map[int]*placed
	order []*placed
	// sids and pgids map the root's old session and group, when their
	// leaders were outside the tree, to the root's PID.
	sids, pgids map[int]int
	helpers     map[int]*Helper
}

type placed struct {
	t         *Task
	sid, pgid int
}

// Helper is a task restore makes, with the PID of a session or group
// leader that is gone, to make that session or group again.
type Helper struct {
	PID int
	// Session is true for a session's helper: it calls setsid, which
	// makes both the session and the group PID. Otherwise it makes only
	// the group PID (setpgid), in the session it was cloned in.
	Session bool
	// Parent is the PID of the process the helper is cloned from, which
	// reaps it once it has exited.
	Parent int
}

// Place says how restore makes one process.
type Place struct {
	// SID and PGID are its session and group, as restored.
	SID, PGID int
	// Helper, when set, is the session helper to clone it from (with
	// CLONE_PARENT); NewHelper is true for the first process that needs
	// it, before which restore makes it.
	Helper    *Helper
	NewHelper bool
}

// NewTree returns an empty tree.
func NewTree() *Tree {
	return &Tree{byPID: map[int]*placed{}, sids: map[int]int{}, pgids: map[int]int{},
		helpers: map[int]*Helper{}}
}

func mapped(m map[int]int, id int) int {
	if v, ok := m[id]; ok {
		return v
	}
	return id
}

// Add places the next task of the stream, or says why restore could not.
func (tr *Tree) Add(t *Task) (Place, error) {
	if h := tr.helpers[t.PID]; h != nil {
		return Place{}, fmt.Errorf("pid %d (%s) leads session %d but comes after a process "+
			"of that session whose parent is outside it: restoring that is not supported yet",
			t.PID, t.Comm, t.SID)
	}
	if len(tr.order) == 0 {
		tr.sids[t.SID], tr.pgids[t.PGID] = t.PID, t.PID
		tr.add(t, t.PID, t.PID)
		return Place{SID: t.PID, PGID: t.PID}, nil
	}
	parent := tr.byPID[t.PPID]
	if parent == nil {
		return Place{}, fmt.Errorf("pid %d (%s): its parent %d is not in the tree",
			t.PID, t.Comm, t.PPID)
	}
	p := Place{SID: mapped(tr.sids, t.SID), PGID: mapped(tr.pgids, t.PGID)}
	if p.SID != t.PID && p.SID != parent.sid {
		if leader := tr.byPID[p.SID]; leader != nil {
			return Place{}, fmt.Errorf("pid %d (%s) is in session %d, which its parent %d "+
				"has left: restoring that is not supported yet", t.PID, t.Comm, t.SID, t.PPID)
		}
		h := tr.helpers[p.SID]
		if h == nil {
			h = &Helper{PID: p.SID, Session: true, Parent: t.PPID}
			tr.helpers[h.PID], p.NewHelper = h, true
		}
		if h.Parent != t.PPID {
			return Place{}, fmt.Errorf("pid %d (%s) is in session %d, whose leader is gone, "+
				"and so is a child of pid %d, but its parent is %d: one helper cannot "+
				"make both, restoring that is not supported yet",
				t.PID, t.Comm, t.SID, h.Parent, t.PPID)
		}
		p.Helper = h
	}
	tr.add(t, p.SID, p.PGID)
	return p, nil
}

func (tr *Tree) add(t *Task, sid, pgid int) {
	pl := &placed{t, sid, pgid}
	tr.byPID[t.PID] = pl
	tr.order = append(tr.order, pl)
}

// GroupHelpers checks every process's group once the whole tree is
// added, and returns the helpers for groups whose leader is gone and
// that no session helper makes, in stream order.
func (tr *Tree) GroupHelpers() ([]*Helper, error) {
	var out []*Helper
	for _, p := range tr.order {
		g := p.pgid
		if g == p.t.PID {
			continue
		}
		if leader := tr.byPID[g]; leader != nil {
			if leader.pgid != g || leader.sid != p.sid {
				return nil, fmt.Errorf("pid %d (%s) is in process group %d, whose leader has "+
					"left it: restoring that is not supported yet", p.t.PID, p.t.Comm, p.t.PGID)
			}
			continue
		}
		h := tr.helpers[g]
		if h == nil {
			h = &Helper{PID: g, Parent: p.t.PID}
			tr.helpers[g] = h
			out = append(out, h)
		}
		if session := tr.helperSession(h); session != p.sid {
			return nil, fmt.Errorf("pid %d (%s) is in process group %d, whose leader is gone, "+
				"in session %d, but the group is in session %d: the image is inconsistent",
				p.t.PID, p.t.Comm, p.t.PGID, p.t.SID, session)
		}
	}
	return out, nil
}

// helperSession is the session a helper's group is in.
func (tr *Tree) helperSession(h *Helper) int {
	if h.Session {
		return h.PID
	}
	return tr.byPID[h.Parent].sid
}

// CheckTree reports why restore could not rebuild the sessions and
// process groups of tasks, a dumped tree in stream order (the root
// first), or nil if it can; it also returns the helpers restore will
// make. A stage that can still let the tree go (ckpt-scan) checks it, so
// a dump with --kill never ends a tree that could not come back.
func CheckTree(tasks []*Task) ([]*Helper, error) {
	tr := NewTree()
	var helpers []*Helper
	for _, t := range tasks {
		p, err := tr.Add(t)
		if err != nil {
			return nil, err
		}
		if p.NewHelper {
			helpers = append(helpers, p.Helper)
		}
	}
	groups, err := tr.GroupHelpers()
	if err != nil {
		return nil, err
	}
	return append(helpers, groups...), nil
}
