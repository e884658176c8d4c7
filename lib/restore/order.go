package restore

import (
	"fmt"

	"github.com/ckpt/ckpt/lib/image"
)

// checkOrder refuses a task record that comes where the stream's order
// (docs/FORMAT.md, "Kinds and order") does not allow it: twice, a first
// task that is not the header's root, or a process whose parent is not
// restored before it.
func (rs *restorer) checkOrder(tk *image.Task) error {
	if rs.byPID[tk.PID] != nil {
		return fmt.Errorf("pid %d: the image lists it twice", tk.PID)
	}
	if len(rs.procs) == 0 {
		if rs.rootPID != 0 && tk.PID != rs.rootPID {
			return fmt.Errorf("pid %d comes first, not the root %d: the image does not "+
				"list every parent before its children", tk.PID, rs.rootPID)
		}
		return nil
	}
	if parent := rs.byPID[tk.PPID]; parent == nil || parent.tk.Zombie {
		return fmt.Errorf("pid %d: its parent %d is not restored before it: "+
			"the image does not list every parent before its children", tk.PID, tk.PPID)
	}
	return nil
}
