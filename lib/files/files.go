// Package files resolves the files a dumped task uses: every open fd,
// every file mapping and the executable. It is the ckpt-files stage.
//
// Each file is identified by facts, never by the " (deleted)" text the
// kernel puts in /proc links: the inode seen through /proc/PID/fd/N,
// /proc/PID/map_files/START-END or /proc/PID/exe is compared with what its
// path leads to now. One File record stands for one device and inode,
// however many fds, mappings and tasks use it:
//
//	linked  the path leads to the same inode (a regular file or directory):
//	        restore opens the path
//	device  a stateless character device reached by its path (/dev/null,
//	        /dev/zero, /dev/full, /dev/random, /dev/urandom)
//	ghost   a regular file with link count 0: its contents follow as
//	        ghost-data records, data extents only, so holes stay holes
//	remap   a regular file unlinked at its path but linked elsewhere: a
//	        hidden hard link is made beside its old name, nothing is copied
//	shmem   the shmem inode behind MAP_SHARED|MAP_ANONYMOUS memory: its
//	        contents follow as ghost-data records, read through
//	        map_files, data extents only and all-zero pages left out
//	pipe    an anonymous pipe, and fifo a named pipe at its path: its
//	        buffer size, and its bytes in flight as ghost-data records,
//	        read without consuming them (tee)
//	memfd   a memfd, with its name, owner and seals; contents as shmem
//	sysv-shm  a System V segment a task has attached, with its identity
//	        (shmctl IPC_STAT); contents as shmem
//
// Eventfds, signalfds, timerfds and epolls, which all share one anon
// inode, are resolved by open file description instead: one File per
// description, of kind eventfd, signalfd, timerfd or epoll, with the
// state fdinfo shows (anonfd.go).
//
// Anything else is refused with an *Error that wraps ErrNotSupported and
// names the task, the fd or mapping and the file: sockets, other anon
// inodes, terminals and other devices, memfd and SysV shared memory on
// hugetlbfs, SysV segments of another IPC namespace, removed directories
// and named pipes, pipes in packet mode or with O_ASYNC, and an epoll
// entry whose fd was closed after it was added. A pipe that a process
// outside the tree holds too is refused with a *HeldOutsideError that
// names that process.
//
// Fds of one task that share an open file description (kcmp KCMP_FILE,
// which needs CONFIG_KCMP) point at the lowest fd of it (Fd.Shares).
package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stage"
)

// StageName is the name ckpt-files adds to the stream header.
const StageName = "ckpt-files"

// Run is the ckpt-files stage. It reads a stream from in, keeps its task
// and fd records and passes every other record on as it comes. At the end
// it resolves the files in the live tree and writes the File records,
// each ghost followed by its contents (ghost-data records), then the task
// records and the fd records in their order, with their file IDs set,
// then the end record. It calls report, if not nil, with what it resolved, and returns
// once the reader of out, if out is a pipe, has gone away (stage.Finish):
// that can be long after, when the stages downstream still read the tree.
//
// If it fails before its end record is written, it removes the hidden
// links it made for remaps.
func Run(ctx context.Context, in io.Reader, out io.Writer, opt Options,
	report func(*Summary)) (*Summary, error) {
	s, err := stage.Open(StageName, in, out)
	if err != nil {
		return nil, err
	}
	if err := s.CheckLocal(); err != nil {
		return nil, err
	}
	if slices.Contains(s.Header.Stages[:len(s.Header.Stages)-1], StageName) {
		return nil, errors.New("the stream has been through ckpt-files already")
	}

	tasks, fds, err := collect(s)
	if err != nil {
		return nil, err
	}

	start := time.Now()
	res, err := Resolve(ctx, tasks, fds, opt)
	if err != nil {
		return nil, err
	}

	err = write(ctx, s, res, opt, tasks, fds)
	if err == nil {
		err = s.Out.End()
	}
	if err != nil {
		return nil, errors.Join(err, res.Undo())
	}
	sum := res.Summary
	sum.Took = time.Since(start)
	if report != nil {
		report(sum)
	}
	return sum, stage.WaitReaderGone(out)
}

// collect reads the rest of the stream, keeping task and fd records and
// passing the others on.
func collect(s *stage.Stage) ([]*image.Task, []*image.Fd, error) {
	var tasks []*image.Task
	var fds []*image.Fd
	for {
		rec, err := s.In.Next()
		if err == io.EOF {
			return tasks, fds, nil
		}
		if err != nil {
			return nil, nil, err
		}
		switch rec.Kind {
		case image.KindTask:
			t := new(image.Task)
			if err := rec.Decode(t); err != nil {
				return nil, nil, s.In.Errorf("%w", err)
			}
			tasks = append(tasks, t)
		case image.KindFd:
			fd := new(image.Fd)
			if err := rec.Decode(fd); err != nil {
				return nil, nil, s.In.Errorf("%w", err)
			}
			fds = append(fds, fd)
		default:
			if err := s.Out.WriteRecord(rec); err != nil {
				return nil, nil, fmt.Errorf("write %s record: %w", rec.Kind, err)
			}
		}
	}
}

// write writes the files first, each ghost followed by its contents, so
// that every record that points at a file comes after it, then the tasks
// and fds.
func write(ctx context.Context, s *stage.Stage, res *Result, opt Options,
	tasks []*image.Task, fds []*image.Fd) error {
	g := newGhostWriter(s.Out, opt.MaxGhostSize)
	for i := range res.Files {
		f := &res.Files[i]
		if err := s.Out.Write(image.KindFile, f); err != nil {
			return fmt.Errorf("write file record: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		switch {
		case f.Kind == image.FileGhost || sharedMemory(f.Kind):
			err = res.writeGhost(g, f)
		case isPipeKind(f.Kind):
			err = res.writePipe(g, f)
		}
		if err != nil {
			return err
		}
	}
	for _, t := range tasks {
		if err := s.Out.Write(image.KindTask, t); err != nil {
			return fmt.Errorf("write task record of pid %d: %w", t.PID, err)
		}
	}
	for _, fd := range fds {
		if err := s.Out.Write(image.KindFd, fd); err != nil {
			return fmt.Errorf("write fd record of pid %d fd %d: %w", fd.PID, fd.Fd, err)
		}
	}
	return nil
}
