package files

import (
	"fmt"
	"strings"

	"github.com/ckpt/ckpt/lib/image"
)

// Prefixes of the names the kernel gives memfd files ("/memfd:NAME") and
// System V shared memory segments ("/SYSV%08x", the key it was made with).
const (
	memfdPrefix = "/memfd:"
	sysvPrefix  = "/SYSV"
)

// shmVerdict classifies an inode of the kernel's internal shmem mount by
// the name the kernel gave it when it made it: a memfd, a SysV segment,
// or else the object behind shared anonymous memory ("/dev/zero").
func shmVerdict(name string) verdict {
	path := oldName(name)
	switch {
	case strings.HasPrefix(name, memfdPrefix):
		return verdict{Kind: image.FileMemfd, Path: path}
	case strings.HasPrefix(name, sysvPrefix):
		return verdict{Kind: image.FileSysVShm, Path: path}
	}
	return verdict{Kind: image.FileShmem, Path: path}
}

// sharedMemory reports whether kind is an object of the shmem mount whose
// contents ckpt-files sends once, all-zero pages left out.
func sharedMemory(kind string) bool {
	switch kind {
	case image.FileShmem, image.FileMemfd, image.FileSysVShm:
		return true
	}
	return false
}

// sysvKeyBit marks the inode key of a SysV segment. Its inode number is
// its shmid, which another object of the shmem mount may have as its
// inode number too; shmids are below 1<<31.
const sysvKeyBit = 1 << 63

// inodeKey is the key under which a use of the inode live, named name by
// the kernel, is filed.
func (r *resolver) inodeKey(live stat, name string) devIno {
	key := devIno{live.Dev, live.Ino}
	if live.Dev == r.shmDev && strings.HasPrefix(name, sysvPrefix) {
		key.ino |= sysvKeyBit
	}
	return key
}

// refuseHugetlb refuses a memfd or SysV segment made on hugetlbfs
// (MFD_HUGETLB, SHM_HUGETLB), which lives outside the shmem mount.
func (r *resolver) refuseHugetlb(link, name string, live stat) error {
	if live.Dev == r.shmDev ||
		!strings.HasPrefix(name, memfdPrefix) && !strings.HasPrefix(name, sysvPrefix) {
		return nil
	}
	huge, err := onHugetlbfs(link)
	if err != nil || !huge {
		return err
	}
	if strings.HasPrefix(name, memfdPrefix) {
		return notSupported("memfd files on hugetlbfs (MFD_HUGETLB)")
	}
	return notSupported("SysV shared memory segments on hugetlbfs (SHM_HUGETLB)")
}

// describeShm completes the File of a memfd (its owner and seals) or of a
// SysV segment (its identity from IPC_STAT), read through src.
func describeShm(f *image.File, src *usage) error {
	switch f.Kind {
	case image.FileMemfd:
		f.UID, f.GID = src.live.UID, src.live.GID
		seals, err := memfdSeals(procPath(src.Use))
		if err != nil {
			return err
		}
		f.Seals = seals
	case image.FileSysVShm:
		seg, err := describeSysV(f, src.PID)
		if err != nil {
			return err
		}
		f.SysV = seg
	}
	return nil
}

// describeSysV reads the identity of the SysV segment f, whose inode
// number is its shmid, and checks that it is the segment the kernel
// named f.Path, in the IPC namespace of task pid.
func describeSysV(f *image.File, pid int) (*image.SysVShm, error) {
	same, err := sameIPCNamespace(pid)
	if err != nil {
		return nil, err
	}
	if !same {
		return nil, notSupported("SysV shared memory segments of another IPC namespace")
	}
	seg, size, err := sysvStat(int(f.Ino))
	if err != nil {
		return nil, fmt.Errorf("shmid %d: %w", f.Ino, err)
	}
	if size != f.Size {
		return nil, fmt.Errorf("shmid %d holds %d bytes, its file %d: %w", f.Ino, size,
			f.Size, ErrChanged)
	}
	name := sysvName(seg.Key)
	if !seg.Removed && name != f.Path {
		return nil, fmt.Errorf("shmid %d has key %#x, so it would be named %s: %w",
			f.Ino, uint32(seg.Key), name, ErrChanged)
	}
	return seg, nil
}

// sysvName is the name the kernel gives the file of a SysV segment made
// with key.
func sysvName(key int32) string {
	return fmt.Sprintf("%s%08x", sysvPrefix, uint32(key))
}
