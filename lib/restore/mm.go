package restore

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// freeRange returns an address where size bytes overlap neither the saved
// layout nor the current one, so restore can use it as a working area.
func freeRange(size uint64, saved []image.Vma, cur []mapsRange, also ...[2]uint64) (uint64, error) {
	busy := make([][2]uint64, 0, len(saved)+len(cur)+len(also))
	for _, v := range saved {
		busy = append(busy, [2]uint64{v.Start, v.End})
	}
	for _, r := range cur {
		busy = append(busy, [2]uint64{r.start, r.end})
	}
	busy = append(busy, also...)
	for addr := uint64(0x100000000); addr < 0x7f0000000000; addr += 0x40000000 {
		ok := true
		for _, b := range busy {
			if addr < b[1]+0x10000 && b[0] < addr+size+0x10000 {
				ok = false
				break
			}
		}
		if ok {
			return addr, nil
		}
	}
	return 0, fmt.Errorf("no free address range of %d bytes for the restorer", size)
}

// clearAddressSpace unmaps everything the stub or the parent left in the
// task except the injection area and the kernel's special areas: one
// munmap for each gap between those, however many mappings it holds.
func (t *task) clearAddressSpace() error {
	cur, err := readMaps(t.pid)
	if err != nil {
		return err
	}
	keep := [][2]uint64{{t.area, t.area + areaSize}}
	top := uint64(0)
	for _, r := range cur {
		switch specialKind(r.name) {
		case image.VmaVsyscall:
			continue // above user space, and never unmapped
		case "":
		default:
			keep = append(keep, [2]uint64{r.start, r.end})
		}
		top = max(top, r.end)
	}
	slices.SortFunc(keep, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	from := uint64(0)
	for _, k := range append(keep, [2]uint64{top, top}) {
		if k[0] > from {
			_, err := t.call(fmt.Sprintf("munmap %#x-%#x", from, k[0]), unix.SYS_MUNMAP,
				from, k[0]-from)
			if err != nil {
				return err
			}
		}
		from = max(from, k[1])
	}
	return nil
}

// moveSpecials moves the vdso and vvar areas to where the dumped task had
// them. They move together, keeping their distances, and through a free
// range first so no move overlaps itself.
func (t *task) moveSpecials(saved []image.Vma) error {
	cur, err := readMaps(t.pid)
	if err != nil {
		return err
	}
	var have []mapsRange
	for _, r := range cur {
		if k := specialKind(r.name); k != "" && k != image.VmaVsyscall {
			have = append(have, r)
		}
	}
	want := map[string]image.Vma{}
	for _, v := range saved {
		switch v.Kind {
		case image.VmaVdso, image.VmaVvar, image.VmaVvarVclock:
			want[v.Kind] = v
		}
	}
	if len(have) == 0 {
		return nil
	}
	lo, hi := have[0].start, have[len(have)-1].end
	tmp, err := freeRange(hi-lo, saved, cur)
	if err != nil {
		return err
	}
	for _, r := range have {
		k := specialKind(r.name)
		w, ok := want[k]
		if !ok {
			// The dumped task did not have this area: drop it.
			if _, err := t.call("munmap "+r.name, unix.SYS_MUNMAP, r.start, r.end-r.start); err != nil {
				return err
			}
			continue
		}
		if w.End-w.Start != r.end-r.start {
			return fmt.Errorf("%s is %d bytes here, %d in the image: the kernel differs "+
				"from the one that dumped", r.name, r.end-r.start, w.End-w.Start)
		}
		delete(want, k)
	}
	for k := range want {
		return fmt.Errorf("the image has a %s area that this kernel does not provide", k)
	}
	for _, pass := range []bool{false, true} {
		for _, r := range have {
			src, dst := r.start, tmp+(r.start-lo)
			if pass {
				src = dst
				dst = specialTarget(saved, r.name)
			}
			if dst == 0 {
				continue
			}
			_, err := t.call("mremap "+r.name, unix.SYS_MREMAP, src, r.end-r.start,
				r.end-r.start, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, dst)
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func specialTarget(saved []image.Vma, name string) uint64 {
	k := specialKind(name)
	for _, v := range saved {
		if v.Kind == k {
			return v.Start
		}
	}
	return 0
}

// mapVmas creates every saved mapping at its address. Mappings that will
// receive pages are made writable until protect sets their final rights.
func (t *task) mapVmas(vmas []image.Vma, fds map[int]uint64) error {
	for _, v := range vmas {
		var flags uint64 = unix.MAP_FIXED
		prot := uint64(v.Prot)
		fd := ^uint64(0)
		switch {
		case v.Kind == image.VmaAnon && v.Shared:
			// Every mapping of one object maps the restorer's one file of
			// it, at its own offset, so they all share it again.
			f, ok := fds[v.FileID]
			if !ok {
				return fmt.Errorf("pid %d: mapping %#x-%#x (%s): shared anonymous memory "+
					"without its shmem file (the image did not go through ckpt-files)",
					t.pid, v.Start, v.End, v.Name)
			}
			fd = f
			flags |= unix.MAP_SHARED
		case v.Kind == image.VmaAnon:
			flags |= unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
			prot |= unix.PROT_WRITE
		case v.Kind == image.VmaFile:
			f, ok := fds[v.FileID]
			if !ok {
				return fmt.Errorf("pid %d: mapping %#x-%#x (%s): no file resolved for it",
					t.pid, v.Start, v.End, v.Name)
			}
			fd = f
			if v.Shared {
				flags |= unix.MAP_SHARED
			} else {
				flags |= unix.MAP_PRIVATE
				prot |= unix.PROT_WRITE
			}
		default:
			continue
		}
		if slices.Contains(v.Flags, "gd") {
			flags |= unix.MAP_GROWSDOWN
		}
		if flags&unix.MAP_PRIVATE != 0 && len(v.Flags) > 0 && !slices.Contains(v.Flags, "ac") {
			// The kernel did not count it against the commit limit (a
			// read-only mapping, a PROT_NONE reservation, MAP_NORESERVE):
			// made writable here for its pages, it must not count either,
			// or a 100 GiB reservation fails with ENOMEM.
			flags |= unix.MAP_NORESERVE
		}
		_, err := t.call(fmt.Sprintf("mmap %#x-%#x %s", v.Start, v.End, v.Name),
			unix.SYS_MMAP, v.Start, v.End-v.Start, prot, flags, fd, v.Pgoff)
		if err != nil {
			return err
		}
	}
	return nil
}

// protect gives every mapping its saved protection, once its pages are in.
func (t *task) protect(vmas []image.Vma) error {
	for _, v := range vmas {
		if v.Kind != image.VmaAnon && (v.Kind != image.VmaFile || v.Shared) {
			continue
		}
		_, err := t.call(fmt.Sprintf("mprotect %#x-%#x", v.Start, v.End),
			unix.SYS_MPROTECT, v.Start, v.End-v.Start, uint64(v.Prot))
		if err != nil {
			return err
		}
	}
	return nil
}

// writePages copies one run of saved pages into the task.
func (t *task) writePages(p *image.Pages, vmas []image.Vma) error {
	end := p.Addr + uint64(len(p.Data))
	i, _ := slices.BinarySearchFunc(vmas, p.Addr, func(v image.Vma, a uint64) int {
		switch {
		case v.End <= a:
			return -1
		case v.Start > a:
			return 1
		}
		return 0
	})
	if i >= len(vmas) || vmas[i].Start > p.Addr || vmas[i].End < end {
		return fmt.Errorf("pid %d: pages %#x-%#x lie outside the saved mappings",
			t.pid, p.Addr, end)
	}
	local := []unix.Iovec{{Base: &p.Data[0]}}
	local[0].SetLen(len(p.Data))
	remote := []unix.RemoteIovec{{Base: uintptr(p.Addr), Len: len(p.Data)}}
	n, err := unix.ProcessVMWritev(t.pid, local, remote, 0)
	if err != nil {
		return fmt.Errorf("pid %d: write pages at %#x: %w", t.pid, p.Addr, err)
	}
	if n != len(p.Data) {
		return fmt.Errorf("pid %d: wrote %d of %d bytes at %#x", t.pid, n, len(p.Data), p.Addr)
	}
	return nil
}

// setMM restores the memory descriptor's fields and auxiliary vector with
// PR_SET_MM_MAP, and the executable link when exeFd is not -1.
func (t *task) setMM(mm image.MM, exeFd uint64) error {
	auxv, err := t.words(mm.Auxv...)
	if err != nil {
		return err
	}
	// struct prctl_mm_map: eleven addresses, auxv pointer, auxv size
	// and exe fd (two 32-bit words).
	m, err := t.words(mm.StartCode, mm.EndCode, mm.StartData, mm.EndData,
		mm.StartBrk, mm.Brk, mm.StartStack, mm.ArgStart, mm.ArgEnd,
		mm.EnvStart, mm.EnvEnd, auxv, uint64(8*len(mm.Auxv))|exeFd<<32)
	if err != nil {
		return err
	}
	_, err = t.call("prctl PR_SET_MM_MAP", unix.SYS_PRCTL, unix.PR_SET_MM,
		unix.PR_SET_MM_MAP, m, 104, 0)
	return err
}
