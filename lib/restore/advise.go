package restore

import (
	"fmt"
	"slices"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// vmaAdvice maps the VmFlags of smaps that madvise sets to the advice that
// sets them again.
var vmaAdvice = []struct {
	flag   string
	advice int
}{
	{"dc", unix.MADV_DONTFORK},
	{"wf", unix.MADV_WIPEONFORK},
	{"dd", unix.MADV_DONTDUMP},
	{"hg", unix.MADV_HUGEPAGE},
	{"nh", unix.MADV_NOHUGEPAGE},
	{"mg", unix.MADV_MERGEABLE},
	{"sr", unix.MADV_SEQUENTIAL},
	{"rr", unix.MADV_RANDOM},
}

// mlock2 flag: lock the pages as they are faulted in (VmFlags "lf").
const mlockOnFault = 1

// advise gives every mapping back the attributes madvise and mlock set on
// it, once its pages are in. It runs before the credentials are set, as
// the restorer, so RLIMIT_MEMLOCK does not refuse the locks. A flag that
// cannot be given back fails the restore.
func (t *task) advise(vmas []image.Vma) error {
	for _, v := range vmas {
		if err := t.adviseVma(v); err != nil {
			return err
		}
	}
	return nil
}

// vmaName names a mapping in errors.
func vmaName(v image.Vma) string {
	name := v.Name
	if name == "" {
		name = "anonymous"
	}
	return fmt.Sprintf("mapping %#x-%#x (%s)", v.Start, v.End, name)
}

func (t *task) adviseVma(v image.Vma) error {
	switch v.Kind {
	case image.VmaAnon, image.VmaFile:
	default:
		return nil // the kernel's own areas keep the flags it gives them
	}
	size := v.End - v.Start
	for _, a := range vmaAdvice {
		if !slices.Contains(v.Flags, a.flag) {
			continue
		}
		name := fmt.Sprintf("madvise %s of %s", a.flag, vmaName(v))
		_, err := t.call(name, unix.SYS_MADVISE, v.Start, size, uint64(a.advice))
		if err != nil {
			return err
		}
	}
	if !slices.Contains(v.Flags, "lo") {
		return nil
	}
	// VM_LOCKED alone is mlock; with VM_LOCKONFAULT it is mlock2 on fault.
	flags := uint64(0)
	if slices.Contains(v.Flags, "lf") {
		flags = mlockOnFault
	}
	_, err := t.call("mlock2 of "+vmaName(v), unix.SYS_MLOCK2, v.Start, size, flags)
	return err
}

// seekDir puts a directory's read position back where getdents left it:
// on ext4 a hash cookie, not a count of entries. The kernel may round or
// refuse a position it does not know, so the one it sets is checked.
func (t *task) seekDir(fd int, pos int64) error {
	got, err := t.call("lseek directory", unix.SYS_LSEEK, uint64(fd), uint64(pos), unix.SEEK_SET)
	if err != nil {
		return err
	}
	if int64(got) != pos {
		return fmt.Errorf("lseek directory to %d set the position to %d", pos, int64(got))
	}
	return nil
}
