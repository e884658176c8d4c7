package files

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ckpt/ckpt/lib/image"
)

// Summary counts what Resolve found.
type Summary struct {
	Tasks    int            // task records
	Fds      int            // fd records
	Mappings int            // file mappings
	Files    map[string]int // File records by kind
	Shared   int            // fds that share an earlier fd's open file description
	// GhostBytes counts the contents of ghosts written to the stream (data
	// extents only), set by Run.
	GhostBytes int64
	// PipeBytes counts the bytes in flight of pipes written to the
	// stream, set by Run.
	PipeBytes int64
	// Unseen counts the processes whose fds ckpt-files may not read
	// (ptrace access) when it looks for processes outside the tree that
	// hold one of its pipes.
	Unseen int
	Took   time.Duration // time spent resolving and saving ghosts, in Run
}

// Options tune how files are resolved.
type Options struct {
	// MaxGhostSize, when positive, is the most data (bytes in data
	// extents, holes not counted) one ghost may hold: a bigger one stops
	// the dump. Zero means no limit.
	MaxGhostSize int64
	// GhostClone keeps each ghost in a hidden file beside its old name
	// (FICLONE on btrfs and XFS, copy_file_range elsewhere) instead of
	// in the stream, where the filesystem allows; those become
	// ghost-clone Files. MaxGhostSize does not apply to them.
	GhostClone bool
}

// Result is what Resolve found: one File per inode, and for ghosts and
// remaps the use through which ckpt-files reaches the file.
type Result struct {
	Files   []image.File
	Summary *Summary
	sources map[int]*usage // by File ID: ghosts and remaps
}

// devIno identifies an inode.
type devIno struct{ dev, ino uint64 }

// usage is one use of a file, found in the live tree.
type usage struct {
	Use
	names []string // what the kernel calls the file: live link first, then the scan's
	live  stat     // fstat through the use's /proc link
	id    *int     // the record field that gets the File's ID
}

// inode gathers every use of one device and inode.
type inode struct {
	live stat
	uses []*usage
}

type resolver struct {
	opt     Options
	shmDev  uint64
	inodes  map[devIno]*inode
	order   []*inode // in order of first use
	sources map[int]*usage
	anon    anonFiles // eventfds, signalfds, timerfds, epolls
	sum     Summary
}

// Resolve finds the file behind every exe, file mapping and fd of tasks
// and fds, in the live tree as it is now, and returns one File per
// distinct device and inode, with IDs from 1 in order of first use (exe
// and mappings of each task, then fds). It sets Task.ExeFileID,
// Vma.FileID, Fd.FileID, Fd.Shares and Fd.Shared in place.
//
// For every remap it makes a hidden hard link (File.RemapPath), and with
// Options.GhostClone a hidden clone of every ghost it can (ClonePath); if
// Resolve fails it removes those it made, and after it succeeds
// Result.Undo does.
//
// Preconditions: the tasks are held still (ckpt-scan holds them frozen)
// and the caller may ptrace them (kcmp and map_files need it).
func Resolve(ctx context.Context, tasks []*image.Task, fds []*image.Fd,
	opt Options) (*Result, error) {
	shm, err := shmemDev()
	if err != nil {
		shm = ^uint64(0) // no memfd here: nothing lives on the shmem mount
	}
	r := &resolver{opt: opt, shmDev: shm, inodes: map[devIno]*inode{},
		sources: map[int]*usage{}}
	r.sum.Files = map[string]int{}

	if err := r.collect(ctx, tasks, fds); err != nil {
		return nil, err
	}

	files, err := r.resolve(ctx)
	if err == nil {
		files, err = r.resolveAnon(files, fds)
	}
	if err != nil {
		return nil, err
	}

	if err := r.shares(fds); err != nil {
		return nil, err
	}

	if err := r.checkPipes(tasks, fds, files); err != nil {
		return nil, err
	}

	res := &Result{Files: files, Summary: &r.sum, sources: r.sources}
	err = res.linkRemaps()
	if err == nil && opt.GhostClone {
		err = res.cloneGhosts()
	}
	if err != nil {
		return nil, errors.Join(err, res.Undo())
	}
	return res, nil
}

// collect finds every use of a file and stats it through /proc.
func (r *resolver) collect(ctx context.Context, tasks []*image.Task, fds []*image.Fd) error {
	known := map[int]bool{}
	for _, t := range tasks {
		if err := checkTask(t); err != nil {
			return err
		}
		known[t.PID] = true
		if err := r.collectTask(ctx, t); err != nil {
			return err
		}
	}
	for _, fd := range fds {
		u := Use{Kind: UseFd, PID: fd.PID, Fd: fd.Fd}
		if !known[fd.PID] {
			return &Error{Use: u, Path: fd.Link, Err: fmt.Errorf("no task record for pid %d", fd.PID)}
		}
		add := r.add
		if isAnon(fd.Link) {
			add = r.addAnon
		}
		if err := add(u, fd.Link, devIno{fd.Dev, fd.Ino}, &fd.FileID); err != nil {
			return err
		}
		r.sum.Fds++
	}
	return ctx.Err()
}

func (r *resolver) collectTask(ctx context.Context, t *image.Task) error {
	r.sum.Tasks++
	if t.Exe != "" {
		u := Use{Kind: UseExe, PID: t.PID}
		if err := r.add(u, t.Exe, devIno{}, &t.ExeFileID); err != nil {
			return err
		}
	}
	for i := range t.Vmas {
		v := &t.Vmas[i]
		if v.Kind != image.VmaFile && !sharedAnon(v) {
			continue
		}
		u := Use{Kind: UseMapping, PID: t.PID, Start: v.Start, End: v.End}
		// Only the inode is compared: a scan that took the device from the
		// maps line has another number than stat on btrfs and overlayfs.
		if err := r.add(u, v.Name, devIno{0, v.Ino}, &v.FileID); err != nil {
			return err
		}
		r.sum.Mappings++
	}
	return ctx.Err()
}

// sharedAnon reports whether v is MAP_SHARED anonymous memory, whose
// shmem inode is used like a mapped file: one File per inode, its
// contents saved once for every mapping of it.
func sharedAnon(v *image.Vma) bool {
	return v.Kind == image.VmaAnon && v.Shared && v.Ino != 0
}

// checkTask makes sure the live task at t.PID is the one the scan saw.
func checkTask(t *image.Task) error {
	u := Use{PID: t.PID}
	st, err := startTime(t.PID)
	if err != nil {
		return &Error{Use: u, Err: fmt.Errorf("task is gone: %w", err)}
	}
	if st != t.StartTime {
		return &Error{Use: u, Err: fmt.Errorf(
			"another task has this pid (started at tick %d, the scanned one at %d): %w",
			st, t.StartTime, ErrChanged)}
	}
	return nil
}

// add stats one use through its /proc link and files it under its inode.
// want is the identity the scan recorded: a zero inode is none, a zero
// device is any.
func (r *resolver) add(u Use, name string, want devIno, id *int) error {
	link := procPath(u)
	live, err := statFollow(link)
	if err != nil {
		return &Error{Use: u, Path: name, Err: err}
	}
	if want.ino != 0 && (want.ino != live.Ino || want.dev != 0 && want.dev != live.Dev) {
		return &Error{Use: u, Path: name, Err: fmt.Errorf(
			"the scan saw inode %s/%d, it is %s/%d now: %w",
			devString(want.dev), want.ino, devString(live.Dev), live.Ino, ErrChanged)}
	}
	now, err := readlink(link)
	if err != nil {
		return &Error{Use: u, Path: name, Err: err}
	}
	if err := r.refuseHugetlb(link, now, live); err != nil {
		return &Error{Use: u, Path: now, Err: err}
	}
	key := r.inodeKey(live, now)
	us := &usage{Use: u, names: []string{now}, live: live, id: id}
	if name != "" && name != now {
		us.names = append(us.names, name)
	}

	in := r.inodes[key]
	if in == nil {
		in = &inode{live: live}
		r.inodes[key] = in
		r.order = append(r.order, in)
	}
	in.uses = append(in.uses, us)
	return nil
}

// resolve classifies every inode and makes its File.
func (r *resolver) resolve(ctx context.Context) ([]image.File, error) {
	files := make([]image.File, 0, len(r.order))
	for _, in := range r.order {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f, err := r.file(in)
		if err != nil {
			first := in.uses[0]
			return nil, &Error{Use: first.Use, Path: first.names[0], Err: err}
		}
		f.ID = len(files) + 1
		for _, us := range in.uses {
			*us.id = f.ID
		}
		if f.Kind == image.FileGhost || f.Kind == image.FileRemap || sharedMemory(f.Kind) ||
			isPipeKind(f.Kind) {
			src := source(in)
			r.sources[f.ID] = src
			if err := r.checkGhost(&f, src); err != nil {
				return nil, &Error{Use: src.Use, Path: src.names[0], Err: err}
			}
			if err := describeShm(&f, src); err != nil {
				return nil, &Error{Use: src.Use, Path: src.names[0], Err: err}
			}
		}
		files = append(files, f)
		r.sum.Files[f.Kind]++
	}
	return files, nil
}

// file classifies one inode and describes it for restore.
func (r *resolver) file(in *inode) (image.File, error) {
	var names []string // each name once: a library has many uses
	seen := map[string]bool{}
	for _, us := range in.uses {
		for _, name := range us.names {
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	v, err := classify(in.live, names, lstat, r.shmDev)
	if err != nil {
		return image.File{}, err
	}

	st := in.live
	f := image.File{
		Kind:    v.Kind,
		Path:    v.Path,
		Dev:     st.Dev,
		Ino:     st.Ino,
		Mode:    st.Mode,
		Size:    st.Size,
		MtimeNs: st.MtimeNs,
		Rdev:    st.Rdev,
	}
	if v.Kind == image.FileGhost {
		f.UID, f.GID = st.UID, st.GID
	}
	if isPipeKind(v.Kind) {
		return f, pipeFile(&f, in)
	}
	return f, nil
}

// source picks the use through which a ghost's contents are read or a
// remap's hidden link is made: an fd if there is one (the cheapest to
// open), else a mapping, else the exe.
func source(in *inode) *usage {
	best := in.uses[0]
	for _, us := range in.uses {
		if us.Kind == UseFd {
			return us
		}
		if us.Kind == UseMapping && best.Kind == UseExe {
			best = us
		}
	}
	return best
}
