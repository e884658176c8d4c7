package ghost

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ckpt/ckpt/lib/image"
)

// A SysV shared memory segment is made again with its key and its shmid,
// which the tasks may hold in their memory: the shmid is asked of the
// kernel through /proc/sys/kernel/shm_next_id (CONFIG_CHECKPOINT_RESTORE,
// and CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN to write it). A segment
// marked for removal has the key IPC_PRIVATE, but is made with the key its
// name tells, so that maps names it as before, and marked again by Close,
// once every task has attached it.
//
// The segment may still be there: after a dump that killed the tree, a
// segment not marked for removal outlives it. A segment with the dumped
// shmid, key, size and creator is taken as the dumped one, once no
// process has it attached (Add waits SysVWait for the dumped processes to
// let go); its contents are replaced by the image's. Any other segment
// at that shmid or with that key makes Add fail, naming it.
//
// The restorer fills the segment through a file of its own: it attaches
// the segment, opens it through /proc/self/map_files, and detaches it.

// sysvPrefix is how the kernel's name of a SysV segment starts.
const sysvPrefix = "/SYSV"

// addSysV makes (or takes) the segment of o and opens it for Write.
func (s *Shmem) addSysV(o *shmemObj) error {
	seg := o.f.SysV
	if seg == nil {
		return errors.New("the file record has no SysV identity")
	}
	if uint64(seg.ID) != o.f.Ino || seg.ID < 0 {
		return fmt.Errorf("shmid %d, but inode %d", seg.ID, o.f.Ino)
	}
	reuse, err := s.existing(seg, o.f.Size)
	if err != nil {
		return err
	}
	if !reuse {
		if err := makeSysV(seg, o.f.Size, createKey(o.f.Path, seg)); err != nil {
			return err
		}
		o.made = true
	}
	err = o.openSysV(reuse)
	if err != nil && o.made {
		err = errors.Join(err, removeSysV(seg.ID))
	}
	return err
}

// openSysV opens the segment's file, empties a segment taken as it was,
// and gives the segment its owner, mode and lock.
func (o *shmemObj) openSysV(reuse bool) error {
	seg := o.f.SysV
	file, err := openSysV(seg.ID, o.f.Size)
	if err != nil {
		return err
	}
	o.file = file
	if reuse {
		err = punch(file, o.f.Size)
	}
	if err == nil {
		err = setSysV(seg)
	}
	if err != nil {
		file.Close()
		o.file = nil
	}
	return err
}

// createKey is the key to make seg with: its own, or for one marked for
// removal (key IPC_PRIVATE since), the key its name path tells, if no
// other segment has it now.
func createKey(path string, seg *image.SysVShm) int32 {
	if !seg.Removed {
		return seg.Key
	}
	hex, ok := strings.CutPrefix(path, sysvPrefix)
	k, err := strconv.ParseUint(hex, 16, 32)
	if !ok || err != nil || k == 0 || keyTaken(int32(k)) {
		return 0
	}
	return int32(k)
}

// existing reports whether seg's shmid holds the dumped segment still,
// waiting for its last attacher to let go. The shmid free gives false;
// another segment there, or one attached after the wait, an error.
func (s *Shmem) existing(seg *image.SysVShm, size int64) (bool, error) {
	deadline := time.Now().Add(s.SysVWait)
	said := false
	for {
		cur, err := statSysV(seg.ID)
		if errors.Is(err, errNoSegment) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if cur.key != seg.Key || cur.size != size || cur.cuid != seg.CUID ||
			cur.cgid != seg.CGID || cur.removed != seg.Removed {
			return false, fmt.Errorf("shmid %d is taken by another segment (key %#x, %d "+
				"bytes, made by uid %d)", seg.ID, uint32(cur.key), cur.size, cur.cuid)
		}
		if cur.attached == 0 {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("shmid %d (key %#x) is still there and attached by %d "+
				"mappings of other processes: restoring it would change their memory",
				seg.ID, uint32(seg.Key), cur.attached)
		}
		if !said && s.Note != nil {
			s.Note(fmt.Sprintf("SysV segment %d is still attached %d times; waiting up to %v "+
				"for the processes to let go", seg.ID, cur.attached, s.SysVWait))
			said = true
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// finishSysV marks the segment for removal, if it was: every task has
// attached it, so it lives on until the last one detaches.
func (o *shmemObj) finishSysV() error {
	if !o.f.SysV.Removed {
		return nil
	}
	return removeSysV(o.f.SysV.ID)
}
