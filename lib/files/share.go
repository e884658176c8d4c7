package files

import (
	"fmt"
	"slices"

	"github.com/ckpt/ckpt/lib/image"
)

// shares finds the fds that refer to one open file description (made by
// dup, or inherited across fork) and points each at the first fd of its
// description, in stream order: tasks in the order the stream lists
// them, the fds of one task by number. Restore opens the file once for
// that first fd and dups it (or, from another task, takes it with
// pidfd_getfd), so the shared offset and flags stay shared.
//
// Only fds on one File can share a description, so kcmp runs only between
// those.
func (r *resolver) shares(fds []*image.Fd) error {
	order := map[int]int{} // task PID: its place in the stream
	for _, fd := range fds {
		if _, ok := order[fd.PID]; !ok {
			order[fd.PID] = len(order)
		}
	}
	list := slices.Clone(fds)
	slices.SortStableFunc(list, func(a, b *image.Fd) int {
		if a.PID != b.PID {
			return order[a.PID] - order[b.PID]
		}
		return a.Fd - b.Fd
	})
	firsts := map[int][]*image.Fd{} // by File: the first fd of each description
	for _, fd := range list {
		fd.Shares, fd.Shared, fd.SharesPID = 0, false, 0
		first, err := firstOf(fd, firsts[fd.FileID])
		if err != nil {
			return err
		}
		if first == nil {
			firsts[fd.FileID] = append(firsts[fd.FileID], fd)
			continue
		}
		fd.Shares, fd.Shared = first.Fd, true
		if first.PID != fd.PID {
			fd.SharesPID = first.PID
		}
		r.sum.Shared++
	}
	return nil
}

// firstOf returns the fd among firsts whose description fd shares, or nil.
func firstOf(fd *image.Fd, firsts []*image.Fd) (*image.Fd, error) {
	for _, first := range firsts {
		same, err := sameFile(first.PID, first.Fd, fd.PID, fd.Fd)
		if err != nil {
			return nil, &Error{Use: Use{Kind: UseFd, PID: fd.PID, Fd: fd.Fd}, Path: fd.Link,
				Err: fmt.Errorf("compare with pid %d fd %d: %w", first.PID, first.Fd, err)}
		}
		if same {
			return first, nil
		}
	}
	return nil, nil
}
