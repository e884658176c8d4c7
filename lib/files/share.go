package files

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/ckpt/ckpt/lib/image"
)

// shares finds, in each task, the fds that refer to one open file
// description (made by dup, or inherited that way) and points each at the
// lowest fd of its description, so restore opens the file once and dups
// it, and the shared offset and flags stay shared.
//
// Only fds of one task on one File can share a description, so kcmp runs
// only between those.
func (r *resolver) shares(fds []*image.Fd) error {
	byTask := map[int][]*image.Fd{}
	for _, fd := range fds {
		byTask[fd.PID] = append(byTask[fd.PID], fd)
	}
	for _, list := range byTask {
		list = slices.Clone(list)
		slices.SortFunc(list, func(a, b *image.Fd) int { return cmp.Compare(a.Fd, b.Fd) })
		if err := r.taskShares(list); err != nil {
			return err
		}
	}
	return nil
}

// taskShares handles the fds of one task, sorted by number.
func (r *resolver) taskShares(fds []*image.Fd) error {
	firsts := map[int][]*image.Fd{} // by File: the lowest fd of each description
	for _, fd := range fds {
		fd.Shares, fd.Shared = 0, false
		for _, first := range firsts[fd.FileID] {
			same, err := sameFile(fd.PID, first.Fd, fd.Fd)
			if err != nil {
				return &Error{Use: Use{Kind: UseFd, PID: fd.PID, Fd: fd.Fd}, Path: fd.Link,
					Err: fmt.Errorf("compare with fd %d: %w", first.Fd, err)}
			}
			if same {
				fd.Shares, fd.Shared = first.Fd, true
				r.sum.Shared++
				break
			}
		}
		if !fd.Shared {
			firsts[fd.FileID] = append(firsts[fd.FileID], fd)
		}
	}
	return nil
}
