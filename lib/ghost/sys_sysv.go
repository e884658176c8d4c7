package ghost

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// shmNextID is the sysctl that asks the kernel for the shmid of the next
// segment made in this IPC namespace (CONFIG_CHECKPOINT_RESTORE). The
// kernel takes the first free slot from the one asked, and forgets the
// request once a segment is made.
const shmNextID = "/proc/sys/kernel/shm_next_id"

// Bits of shm_perm.mode besides the permissions.
const (
	shmDest   = 0o1000 // SHM_DEST: marked for removal
	shmLocked = 0o2000 // SHM_LOCKED: locked in memory
)

// shmLock is shmctl's SHM_LOCK command.
const shmLock = 11

// errNoSegment says that no segment has a shmid.
var errNoSegment = errors.New("no such segment")

// segState is what IPC_STAT tells of a segment.
type segState struct {
	key        int32
	size       int64
	cuid, cgid uint32
	removed    bool
	attached   int
}

// statSysV reads segment id (shmctl IPC_STAT); errNoSegment if there is
// none.
func statSysV(id int) (segState, error) {
	var ds unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &ds); err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EIDRM) {
			return segState{}, errNoSegment
		}
		return segState{}, fmt.Errorf("shmctl %d IPC_STAT: %w", id, err)
	}
	return segState{key: ds.Perm.Key, size: int64(ds.Segsz), cuid: ds.Perm.Cuid,
		cgid: ds.Perm.Cgid, removed: ds.Perm.Mode&shmDest != 0,
		attached: int(ds.Nattch)}, nil
}

// keyTaken reports whether a segment has key.
func keyTaken(key int32) bool {
	_, err := unix.SysvShmGet(int(key), 0, 0)
	return err == nil
}

// makeSysV makes segment seg of size bytes with key, at seg's shmid.
func makeSysV(seg *image.SysVShm, size int64, key int32) error {
	// 1. Ask for the shmid.
	if err := os.WriteFile(shmNextID, []byte(strconv.Itoa(seg.ID)), 0); err != nil {
		return fmt.Errorf("ask for shmid %d: %w", seg.ID, err)
	}

	// 2. Make the segment; its mode for now is the restorer's alone.
	id, err := unix.SysvShmGet(int(key), int(size), unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	if err != nil {
		// The request stays for the next segment anyone makes: use it up.
		err = fmt.Errorf("shmget key %#x, %d bytes: %w", uint32(key), size, err)
		return errors.Join(err, dropNextID())
	}

	// 3. The kernel gives the next free slot when the one asked is taken
	// by a segment of another sequence number.
	if id != seg.ID {
		err := fmt.Errorf("asked for shmid %d, the kernel gave %d: its slot is taken "+
			"by another segment", seg.ID, id)
		return errors.Join(err, removeSysV(id))
	}
	return nil
}

// dropNextID uses up a pending shm_next_id request by making a segment
// and removing it at once.
func dropNextID() error {
	b, err := os.ReadFile(shmNextID)
	if err != nil || strings.TrimSpace(string(b)) == "-1" {
		return err
	}
	id, err := unix.SysvShmGet(unix.IPC_PRIVATE, 1, unix.IPC_CREAT|0o600)
	if err != nil {
		return fmt.Errorf("use up %s: shmget: %w", shmNextID, err)
	}
	return removeSysV(id)
}

// openSysV returns a file of segment id, of size bytes, open read-write:
// it attaches the segment, opens it through map_files (which needs
// CAP_SYS_ADMIN, or CAP_CHECKPOINT_RESTORE on Linux 5.9+) and detaches.
func openSysV(id int, size int64) (*os.File, error) {
	mem, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("shmat %d: %w", id, err)
	}
	page := int64(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	end := start + uintptr((size+page-1)/page*page)
	path := fmt.Sprintf("/proc/self/map_files/%x-%x", start, end)
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	})
	if derr := unix.SysvShmDetach(mem); derr != nil && err == nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shmdt %d: %w", id, derr)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("SysV segment %d", id)), nil
}

// punch empties size bytes of file: holes, read as zeros.
func punch(file *os.File, size int64) error {
	err := unix.Fallocate(int(file.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE,
		0, size)
	if err != nil {
		return fmt.Errorf("empty the segment: fallocate: %w", err)
	}
	return nil
}

// setSysV gives segment seg its owner and mode (IPC_SET), and locks it
// in memory if it was (SHM_LOCK). Its creator stays the restorer.
func setSysV(seg *image.SysVShm) error {
	var ds unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(seg.ID, unix.IPC_STAT, &ds); err != nil {
		return fmt.Errorf("shmctl %d IPC_STAT: %w", seg.ID, err)
	}
	ds.Perm.Uid, ds.Perm.Gid, ds.Perm.Mode = seg.UID, seg.GID, seg.Mode&0o777
	if _, err := unix.SysvShmCtl(seg.ID, unix.IPC_SET, &ds); err != nil {
		return fmt.Errorf("shmctl %d IPC_SET: %w", seg.ID, err)
	}
	if !seg.Locked {
		return nil
	}
	if _, err := unix.SysvShmCtl(seg.ID, shmLock, nil); err != nil {
		return fmt.Errorf("shmctl %d SHM_LOCK: %w", seg.ID, err)
	}
	return nil
}

// removeSysV marks segment id for removal (IPC_RMID).
func removeSysV(id int) error {
	if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
		return fmt.Errorf("shmctl %d IPC_RMID: %w", id, err)
	}
	return nil
}
