package files

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// Pipes and named pipes (FIFOs).
//
// One File stands for one pipe, however many fds of the tree hold it. Its
// bytes in flight are read without being consumed: ckpt-files opens a
// reader of its own on the pipe (/proc/PID/fd/N, O_RDONLY|O_NONBLOCK: a
// new open file description of the same pipe), duplicates the pipe's
// buffers into a pipe of its own with tee(2), which consumes nothing, and
// reads that copy. The dumped tasks find their pipes as they left them.

// isFifo reports whether st is a pipe or a named pipe.
func isFifo(st stat) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFIFO
}

// isPipeKind reports whether a File kind is a pipe or a named pipe.
func isPipeKind(kind string) bool {
	return kind == image.FilePipe || kind == image.FileFifo
}

// classifyPipe classifies a FIFO inode: an anonymous pipe, which the
// kernel names "pipe:[INO]", or a named pipe still reachable at one of
// names.
func classifyPipe(live stat, names []string,
	lookup func(string) (stat, error)) (verdict, error) {
	if names[0] == "pipe:["+strconv.FormatUint(live.Ino, 10)+"]" {
		return verdict{Kind: image.FilePipe, Path: names[0]}, nil
	}
	if !strings.HasPrefix(names[0], "/") {
		return verdict{}, notSupported("named pipes without a path")
	}
	path, err := findPath(live, names, lookup)
	if err != nil {
		return verdict{}, err
	}
	if path == "" {
		return verdict{}, notSupported("removed named pipes")
	}
	return verdict{Kind: image.FileFifo, Path: path}, nil
}

// pipeFile completes the File of a pipe: its buffer size, the bytes in
// flight and, for an anonymous pipe, its owner. It looks through a reader
// of its own, opened through the pipe's first use, and closes it again.
func pipeFile(f *image.File, in *inode) error {
	p, err := openPipe(procPath(in.uses[0].Use))
	if err != nil {
		return err
	}
	defer p.Close()

	if f.PipeSize, err = pipeSize(p); err != nil {
		return err
	}
	if f.Size, err = pipeBytes(p); err != nil {
		return err
	}
	if f.Kind == image.FilePipe {
		f.UID, f.GID = in.live.UID, in.live.GID
	}
	return nil
}

// checkPipeFds refuses a pipe that a task of the tree holds in a way
// restore cannot give back: in packet mode (pipe2 O_DIRECT), whose packet
// boundaries would be lost, or with O_ASYNC, whose signal owner is not
// saved. It returns the ends the tree holds of each pipe File, by ID,
// and the first fd that holds each.
func checkPipeFds(fds []*image.Fd, pipes map[int]*image.File) (map[int]*pipeUse, error) {
	uses := map[int]*pipeUse{}
	for _, fd := range fds {
		f := pipes[fd.FileID]
		if f == nil {
			continue
		}
		u := Use{Kind: UseFd, PID: fd.PID, Fd: fd.Fd}
		switch {
		case fd.Flags&unix.O_DIRECT != 0:
			return nil, &Error{Use: u, Path: fd.Link,
				Err: notSupported("packet-mode pipes (O_DIRECT)")}
		case fd.Flags&unix.O_ASYNC != 0:
			return nil, &Error{Use: u, Path: fd.Link, Err: notSupported("pipes with O_ASYNC")}
		}
		pu := uses[f.ID]
		if pu == nil {
			pu = &pipeUse{first: u, file: f}
			uses[f.ID] = pu
		}
		pu.ends |= endsOf(fd.Flags)
	}
	return uses, nil
}

// pipeUse is what the tree holds of one pipe.
type pipeUse struct {
	file  *image.File
	first Use  // the first fd that holds it
	ends  ends // the ends the tree holds
}

// ends is a set of ends of a pipe.
type ends uint8

const (
	readEnd ends = 1 << iota
	writeEnd
	bothEnds = readEnd | writeEnd
)

// endsOf returns the ends an fd opened with flags holds.
func endsOf(flags int) ends {
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		return readEnd
	case unix.O_WRONLY:
		return writeEnd
	}
	return bothEnds
}

func (e ends) String() string {
	switch e {
	case readEnd:
		return "the read end"
	case writeEnd:
		return "the write end"
	}
	return "both ends"
}

// checkPipes refuses a pipe of the tree that the dump cannot take whole:
// one held by a task in a way restore cannot give back (checkPipeFds), or
// one that a process outside the dumped tree holds too, which after
// restore would no longer be connected to it. Processes are looked for
// only when there is a pipe, in one walk of /proc/*/fd.
//
// It counts the processes it may not look into in the summary.
func (r *resolver) checkPipes(tasks []*image.Task, fds []*image.Fd, files []image.File) error {
	pipes := map[int]*image.File{}
	for i := range files {
		if isPipeKind(files[i].Kind) {
			pipes[files[i].ID] = &files[i]
		}
	}
	if len(pipes) == 0 {
		return nil
	}
	uses, err := checkPipeFds(fds, pipes)
	if err != nil {
		return err
	}
	tree := map[int]bool{}
	for _, t := range tasks {
		tree[t.PID] = true
	}
	found, unseen, err := findHolders(uses, tree)
	if err != nil {
		return err
	}
	r.sum.Unseen = len(unseen)
	for id, pu := range uses {
		if hs := found[id]; len(hs) > 0 {
			return &Error{Use: pu.first, Path: pu.file.Path, Err: outsideError(pu.ends, hs)}
		}
	}
	return nil
}

// HeldOutsideError says that a process outside the dumped tree holds a
// pipe of the tree.
type HeldOutsideError struct {
	PID  int
	Comm string
	Fd   int
	// Ends are what the process holds; Other is true when it holds an end
	// that no task of the tree holds.
	Ends  string
	Other bool
}

func (e *HeldOutsideError) Error() string {
	if e.Other {
		return fmt.Sprintf("the other end is held by pid %d (%s) outside the dumped tree",
			e.PID, e.Comm)
	}
	verb := "is"
	if e.Ends == bothEnds.String() {
		verb = "are"
	}
	return fmt.Sprintf("%s %s also held by pid %d (%s) outside the dumped tree",
		e.Ends, verb, e.PID, e.Comm)
}

// outsideError describes the outside holder that matters most: one that
// holds an end the tree lacks, else the first.
func outsideError(tree ends, hs []holder) error {
	h := hs[0]
	for _, x := range hs {
		if x.ends&^tree != 0 {
			h = x
			break
		}
	}
	return &HeldOutsideError{PID: h.pid, Comm: h.comm, Fd: h.fd, Ends: h.ends.String(),
		Other: h.ends&^tree != 0}
}
