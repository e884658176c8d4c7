package files

import (
	"slices"
	"strings"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// deletedSuffix is what the kernel appends to the name of a file whose
// name was unlinked. A file may really be named so; the suffix alone
// decides nothing.
const deletedSuffix = " (deleted)"

// verdict is what classify decided about one inode.
type verdict struct {
	Kind string // an image.File* kind
	// Path is the name that leads to the inode; for a ghost or a remap,
	// the name it had, without the deleted suffix the kernel added.
	Path string
}

// devices are the character devices a task may keep open by path: they
// hold no state, so restore opens them again. Keyed by rdev.
var devices = map[uint64]string{
	unix.Mkdev(1, 3): "null",
	unix.Mkdev(1, 5): "zero",
	unix.Mkdev(1, 7): "full",
	unix.Mkdev(1, 8): "random",
	unix.Mkdev(1, 9): "urandom",
}

// classify decides what an inode is, from facts. live is the inode as
// fstat through /proc sees it (fd/N, map_files, exe); names are what the
// kernel calls it in each of its uses, first use first. lstat looks a path
// up; shmDev is the device of the kernel's internal shmem mount.
//
// A name is tried as it is first, and with a " (deleted)" suffix cut only
// when no name as it is leads to the inode.
func classify(live stat, names []string, lookup func(string) (stat, error),
	shmDev uint64) (verdict, error) {
	if isFifo(live) {
		return classifyPipe(live, names, lookup)
	}
	if err := kernelObject(live, names[0]); err != nil {
		return verdict{}, err
	}
	path, err := findPath(live, names, lookup)
	if err != nil {
		return verdict{}, err
	}
	if path != "" {
		return reachable(live, path)
	}
	return unreachable(live, names[0], shmDev)
}

// oldName is the name a file had before it was unlinked: the kernel's
// name for it with one deleted suffix cut. A file really named
// "x (deleted)" reads "x (deleted) (deleted)" once unlinked.
func oldName(name string) string {
	if p, ok := strings.CutSuffix(name, deletedSuffix); ok && p != "" {
		return p
	}
	return name
}

// kernelObject refuses an inode that has no path at all (sockets, anon
// inodes, namespaces): the kernel names those without a leading slash.
func kernelObject(live stat, name string) error {
	if strings.HasPrefix(name, "/") {
		return nil
	}
	switch {
	case live.Mode&unix.S_IFMT == unix.S_IFSOCK:
		return notSupported("sockets")
	case strings.HasPrefix(name, "anon_inode:"):
		return notSupported("anon inodes")
	}
	return notSupported("kernel objects without a path")
}

// findPath returns the first of names (as they are, then without the
// deleted suffix) that leads to live's device and inode, or "".
func findPath(live stat, names []string, lookup func(string) (stat, error)) (string, error) {
	var cut []string
	for _, name := range names {
		if p, ok := strings.CutSuffix(name, deletedSuffix); ok && p != "" {
			cut = append(cut, p)
		}
	}
	for _, p := range slices.Concat(names, cut) {
		st, err := lookup(p)
		if notExist(err) {
			continue
		}
		if err != nil {
			return "", err
		}
		if st.Dev == live.Dev && st.Ino == live.Ino {
			return p, nil
		}
	}
	return "", nil
}

// reachable classifies an inode found at path.
func reachable(live stat, path string) (verdict, error) {
	switch live.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFDIR:
		return verdict{Kind: image.FileLinked, Path: path}, nil
	case unix.S_IFCHR:
		if _, ok := devices[live.Rdev]; ok {
			return verdict{Kind: image.FileDevice, Path: path}, nil
		}
	}
	return verdict{}, typeError(live)
}

// unreachable classifies an inode that no name leads to any more.
func unreachable(live stat, name string, shmDev uint64) (verdict, error) {
	if live.Dev == shmDev {
		// A memfd, a SysV segment, or the file behind MAP_SHARED|
		// MAP_ANONYMOUS (or a shared mapping of /dev/zero).
		return shmVerdict(name), nil
	}
	switch live.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if live.Nlink == 0 {
			return verdict{Kind: image.FileGhost, Path: oldName(name)}, nil
		}
		return verdict{Kind: image.FileRemap, Path: oldName(name)}, nil
	case unix.S_IFDIR:
		return verdict{}, notSupported("removed directories")
	}
	return verdict{}, typeError(live)
}

// typeError refuses an inode by its type.
func typeError(live stat) error {
	switch live.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		if isTerminal(live.Rdev) {
			return notSupported("terminals")
		}
		return notSupported("character devices")
	case unix.S_IFBLK:
		return notSupported("block devices")
	case unix.S_IFSOCK:
		return notSupported("sockets")
	case unix.S_IFLNK:
		return notSupported("symbolic links opened with O_PATH")
	}
	return notSupported("files of this type")
}

// isTerminal reports whether rdev is a tty, the console or a pseudo
// terminal (majors 4 and 5, and 136 to 143 for /dev/pts).
func isTerminal(rdev uint64) bool {
	major := unix.Major(rdev)
	return major == 4 || major == 5 || major >= 136 && major <= 143
}
