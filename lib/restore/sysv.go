package restore

import (
	"cmp"
	"fmt"
	"os"
	"slices"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// sysvAttach is one attach of a SysV segment in a task: the segment's
// mappings that lie at one base address (a mapping's start less its
// offset), several when mprotect or munmap split it.
type sysvAttach struct {
	f    *image.File
	base uint64
	vmas []image.Vma
}

// splitSysV splits vmas into the mappings of SysV segments, by attach,
// and the others, which are mapped as usual.
func (rs *restorer) splitSysV(vmas []image.Vma) (other []image.Vma, attaches []*sysvAttach) {
	for _, v := range vmas {
		f := rs.files[v.FileID]
		if v.FileID == 0 || f == nil || f.Kind != image.FileSysVShm {
			other = append(other, v)
			continue
		}
		base := v.Start - v.Pgoff
		i := slices.IndexFunc(attaches, func(a *sysvAttach) bool {
			return a.f == f && a.base == base
		})
		if i < 0 {
			attaches = append(attaches, &sysvAttach{f: f, base: base})
			i = len(attaches) - 1
		}
		attaches[i].vmas = append(attaches[i].vmas, v)
	}
	return other, attaches
}

// attachSysV attaches every SysV segment in t as the dumped task had it
// attached: the whole segment at its base address with shmat (read-only
// with SHM_RDONLY when no mapping of it could be made writable), the
// parts the task had unmapped unmapped again, each mapping given its
// protection. It runs before the other mappings are made, since shmat
// refuses an address range that anything overlaps.
func (rs *restorer) attachSysV(t *task, attaches []*sysvAttach) error {
	if len(attaches) == 0 {
		return nil
	}
	cur, err := readMaps(t.pid)
	if err != nil {
		return err
	}
	for _, a := range attaches {
		if err := t.attach(a, cur); err != nil {
			return fmt.Errorf("pid %d: SysV segment %d (%s) at %#x: %w", t.pid, a.f.SysV.ID,
				a.f.Path, a.base, err)
		}
	}
	return nil
}

func (t *task) attach(a *sysvAttach, cur []mapsRange) error {
	if a.f.SysV == nil {
		return fmt.Errorf("the file record has no SysV identity")
	}
	page := uint64(os.Getpagesize())
	end := a.base + (uint64(a.f.Size)+page-1)/page*page
	for _, v := range a.vmas {
		if v.Pgoff > v.Start || v.End > end {
			return fmt.Errorf("mapping %#x-%#x at offset %#x lies outside the segment's %d "+
				"bytes", v.Start, v.End, v.Pgoff, a.f.Size)
		}
	}
	for _, r := range cur {
		if r.start < end && a.base < r.end {
			return fmt.Errorf("the segment's range %#x-%#x overlaps %s at %#x-%#x, "+
				"which the restore needs: not supported yet", a.base, end, r.name,
				r.start, r.end)
		}
	}

	// 1. Attach the whole segment where it was.
	flags := uint64(unix.SHM_RDONLY)
	if slices.ContainsFunc(a.vmas, mayWrite) {
		flags = 0
	}
	got, err := t.call(fmt.Sprintf("shmat %d at %#x", a.f.SysV.ID, a.base), unix.SYS_SHMAT,
		uint64(a.f.SysV.ID), a.base, flags)
	if err != nil {
		return err
	}
	if got != a.base {
		return fmt.Errorf("shmat attached it at %#x", got)
	}

	// 2. Unmap what the task had unmapped of it.
	for _, gap := range gaps(a.base, end, a.vmas) {
		_, err := t.call(fmt.Sprintf("munmap %#x-%#x", gap[0], gap[1]), unix.SYS_MUNMAP,
			gap[0], gap[1]-gap[0])
		if err != nil {
			return err
		}
	}

	// 3. Give each mapping its protection.
	for _, v := range a.vmas {
		_, err := t.call(fmt.Sprintf("mprotect %#x-%#x", v.Start, v.End), unix.SYS_MPROTECT,
			v.Start, v.End-v.Start, uint64(v.Prot))
		if err != nil {
			return err
		}
	}
	return nil
}

// gaps returns the ranges of [start, end) that no mapping of vmas covers.
func gaps(start, end uint64, vmas []image.Vma) [][2]uint64 {
	vmas = slices.Clone(vmas)
	slices.SortFunc(vmas, func(a, b image.Vma) int { return cmp.Compare(a.Start, b.Start) })
	var out [][2]uint64
	at := start
	for _, v := range vmas {
		if v.Start > at {
			out = append(out, [2]uint64{at, v.Start})
		}
		at = max(at, v.End)
	}
	if at < end {
		out = append(out, [2]uint64{at, end})
	}
	return out
}

// mayWrite reports whether a shared mapping could be made writable (smaps
// VmFlags "mw", VM_MAYWRITE), or, in a stream without VmFlags, is.
func mayWrite(v image.Vma) bool {
	if len(v.Flags) == 0 {
		return v.Prot&unix.PROT_WRITE != 0
	}
	return slices.Contains(v.Flags, "mw")
}

// sharedMayWrite reports whether a shared mapping of file id among vmas
// may be made writable, so the file must be opened for writing.
func sharedMayWrite(vmas []image.Vma, id int) bool {
	return slices.ContainsFunc(vmas, func(v image.Vma) bool {
		return v.FileID == id && v.Shared && mayWrite(v)
	})
}
