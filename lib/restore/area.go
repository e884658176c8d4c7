package restore

import (
	"fmt"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/ptrace"
	"golang.org/x/sys/unix"
)

// moveArea gives a task cloned from its parent an injection area of its
// own where its saved mappings leave room: the one it inherited lies
// where the parent's saved layout left room, which may be in the way of
// its own. It does nothing when the inherited area is free in both.
func (t *task) moveArea(saved []image.Vma) error {
	clash := false
	for _, v := range saved {
		if v.Start < t.area+areaSize+0x10000 && t.area < v.End+0x10000 {
			clash = true
			break
		}
	}
	if !clash {
		return nil
	}
	cur, err := readMaps(t.pid)
	if err != nil {
		return err
	}
	area, err := freeRange(areaSize, saved, cur)
	if err != nil {
		return fmt.Errorf("%s: %w", t.who, err)
	}
	_, err = t.call("mmap injection area", unix.SYS_MMAP, area, areaSize,
		unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0)
	if err != nil {
		return err
	}
	// syscall; int3 — as in the stub's area.
	if err := ptrace.WriteMem(t.pid, area, []byte{0x0f, 0x05, 0xcc}); err != nil {
		return fmt.Errorf("%s: %w", t.who, err)
	}
	old := t.area
	t.j.SetSyscallAddr(area)
	t.area = area
	_, err = t.call("munmap inherited injection area", unix.SYS_MUNMAP, old, areaSize)
	return err
}
