package files

import (
	"fmt"
	"os"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// Bits of shm_perm.mode besides the permissions.
const (
	shmDest   = 0o1000 // SHM_DEST: marked for removal
	shmLocked = 0o2000 // SHM_LOCKED: locked in memory
)

// memfdSeals returns the seals of the memfd that the /proc link path
// leads to (F_GET_SEALS).
func memfdSeals(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return 0, fmt.Errorf("fcntl F_GET_SEALS: %w", err)
	}
	return seals, nil
}

// sysvStat returns the identity and size of SysV segment id (shmctl
// IPC_STAT), in the caller's IPC namespace.
func sysvStat(id int) (*image.SysVShm, int64, error) {
	var ds unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &ds); err != nil {
		return nil, 0, fmt.Errorf("shmctl IPC_STAT: %w", err)
	}
	p := ds.Perm
	seg := &image.SysVShm{
		ID: id, Key: p.Key, Mode: p.Mode & 0o777,
		UID: p.Uid, GID: p.Gid, CUID: p.Cuid, CGID: p.Cgid,
		Removed:  p.Mode&shmDest != 0,
		Locked:   p.Mode&shmLocked != 0,
		Attached: int(ds.Nattch),
	}
	return seg, int64(ds.Segsz), nil
}

// sameIPCNamespace reports whether task pid is in the caller's IPC
// namespace, where shmctl finds its segments.
func sameIPCNamespace(pid int) (bool, error) {
	var mine, its unix.Stat_t
	if err := unix.Stat("/proc/self/ns/ipc", &mine); err != nil {
		return false, fmt.Errorf("stat /proc/self/ns/ipc: %w", err)
	}
	path := fmt.Sprintf("%s/%d/ns/ipc", procRoot, pid)
	if err := unix.Stat(path, &its); err != nil {
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	return mine.Dev == its.Dev && mine.Ino == its.Ino, nil
}

// onHugetlbfs reports whether the file the /proc link path leads to lives
// on hugetlbfs.
func onHugetlbfs(path string) (bool, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return false, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	return fs.Type == unix.HUGETLBFS_MAGIC, nil
}
