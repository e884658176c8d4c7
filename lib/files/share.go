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
// Only fds on one File can share a description. kcmp orders
// descriptions, so the fds of each File are sorted by description and
// the fds of one description come out side by side: O(n log n) kcmp calls
// for n fds, not one per pair (10 000 fds on one file took 21 s that way).
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
	byFile := map[int][]*image.Fd{} // in stream order
	var files []int
	for _, fd := range list {
		fd.Shares, fd.Shared, fd.SharesPID = 0, false, 0
		if _, ok := byFile[fd.FileID]; !ok {
			files = append(files, fd.FileID)
		}
		byFile[fd.FileID] = append(byFile[fd.FileID], fd)
	}
	for _, id := range files {
		if err := r.fileShares(byFile[id]); err != nil {
			return err
		}
	}
	return nil
}

// fileShares handles the fds of one File, in stream order.
func (r *resolver) fileShares(fds []*image.Fd) error {
	if len(fds) < 2 {
		return nil
	}
	rank := map[*image.Fd]int{}
	for i, fd := range fds {
		rank[fd] = i
	}
	var failed error
	byDesc := slices.Clone(fds)
	slices.SortStableFunc(byDesc, func(a, b *image.Fd) int {
		c, err := fileOrder(a.PID, a.Fd, b.PID, b.Fd)
		if err != nil && failed == nil {
			failed = &Error{Use: Use{Kind: UseFd, PID: b.PID, Fd: b.Fd}, Path: b.Link,
				Err: fmt.Errorf("compare with pid %d fd %d: %w", a.PID, a.Fd, err)}
		}
		return c
	})
	if failed != nil {
		return failed
	}
	for start := 0; start < len(byDesc); {
		end := start + 1
		for end < len(byDesc) {
			c, err := fileOrder(byDesc[start].PID, byDesc[start].Fd, byDesc[end].PID, byDesc[end].Fd)
			if err != nil {
				return &Error{Use: Use{Kind: UseFd, PID: byDesc[end].PID, Fd: byDesc[end].Fd},
					Path: byDesc[end].Link, Err: err}
			}
			if c != 0 {
				break
			}
			end++
		}
		r.markShared(byDesc[start:end], rank)
		start = end
	}
	return nil
}

// markShared points every fd of one description at the first of them in
// stream order.
func (r *resolver) markShared(desc []*image.Fd, rank map[*image.Fd]int) {
	first := slices.MinFunc(desc, func(a, b *image.Fd) int { return rank[a] - rank[b] })
	for _, fd := range desc {
		if fd == first {
			continue
		}
		fd.Shares, fd.Shared = first.Fd, true
		if first.PID != fd.PID {
			fd.SharesPID = first.PID
		}
		r.sum.Shared++
	}
}
