package files

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/procfs"
	"golang.org/x/sys/unix"
)

// holder is an fd of a process outside the dumped tree on a pipe of it.
type holder struct {
	pid  int
	comm string
	fd   int
	ends ends
}

// findHolders walks /proc/*/fd of every process but the tree's and this
// one, and returns, by File ID, the fds that hold one of the pipes of
// uses. An anonymous pipe is recognised by the inode number in its link
// ("pipe:[INO]"), a named pipe by its path, then by device and inode. It
// reads only links, and fdinfo and comm of what it finds.
//
// A process that exits during the walk is skipped, and so is one whose
// fds this process may not read (ptrace access, as for a process with
// capabilities it lacks); those are returned in unseen. A thread that has
// a file table of its own (unshare CLONE_FILES) is not looked at.
func findHolders(uses map[int]*pipeUse, tree map[int]bool) (found map[int][]holder,
	unseen []int, err error) {
	anon := map[string]*pipeUse{}  // by link, "pipe:[INO]"
	named := map[string]*pipeUse{} // by path
	for _, pu := range uses {
		if pu.file.Kind == image.FilePipe {
			anon[pu.file.Path] = pu
		} else {
			named[pu.file.Path] = pu
		}
	}
	procs, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, nil, err
	}
	found = map[int][]holder{}
	self := os.Getpid()
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || tree[pid] {
			continue
		}
		err = walkFds(pid, func(fd int, link string) error {
			pu := anon[link]
			if pu == nil && strings.HasPrefix(link, "/") {
				pu = named[link]
				if pu != nil && !sameInode(pid, fd, pu.file) {
					pu = nil
				}
			}
			if pu == nil {
				return nil
			}
			h, err := newHolder(pid, fd)
			if err == nil {
				found[pu.file.ID] = append(found[pu.file.ID], h)
			}
			return ignoreGone(err)
		})
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			unseen = append(unseen, pid)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return found, unseen, nil
}

// walkFds calls fn with every fd of pid and its link. A process or fd
// that is gone is skipped.
func walkFds(pid int, fn func(fd int, link string) error) error {
	dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return ignoreGone(err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		link, err := readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			if err = ignoreGone(err); err != nil {
				return err
			}
			continue
		}
		if err := fn(fd, link); err != nil {
			return err
		}
	}
	return nil
}

// sameInode reports whether fd of pid is the named pipe f.
func sameInode(pid, fd int, f *image.File) bool {
	st, err := statFollow(procPath(Use{Kind: UseFd, PID: pid, Fd: fd}))
	return err == nil && st.Dev == f.Dev && st.Ino == f.Ino
}

// newHolder reads which ends fd of pid holds, and the process's name.
func newHolder(pid, fd int) (holder, error) {
	info, err := procfs.ReadFdinfo(pid, fd)
	if err != nil {
		return holder{}, err
	}
	comm, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "comm"))
	if err != nil {
		return holder{}, err
	}
	return holder{pid: pid, comm: strings.TrimSuffix(string(comm), "\n"), fd: fd,
		ends: endsOf(info.Flags)}, nil
}

// ignoreGone drops an error that says a process or fd went away while
// /proc was read.
func ignoreGone(err error) error {
	if notExist(err) || errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}
