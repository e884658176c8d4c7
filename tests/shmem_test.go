package tests

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSharedAnon checkpoints a process with 32 MiB of MAP_SHARED|
// MAP_ANONYMOUS memory mapped three times (all of it twice, 2 MiB of it
// at an offset once more), a quarter of its pages filled with random data
// and the rest never touched, beside a private anonymous region. After
// restore the three mappings are one object again, with the same
// contents, the same holes, and the same lines in maps.
func TestSharedAnon(t *testing.T) {
	const size = 32 << 20
	prog := compileC(t, "shmem.c")
	out := filepath.Join(t.TempDir(), "shmem.out")
	s := start(t, out, prog, strconv.Itoa(size>>20))
	waitFor(t, 30*time.Second, "READY", func() bool { return len(lines(t, out)) >= 1 })
	var a, b, c, p uint64
	if _, err := fmt.Sscanf(lines(t, out)[0], "READY %x %x %x %x", &a, &b, &c, &p); err != nil {
		t.Fatalf("subject says %q: %v", lines(t, out)[0], err)
	}
	starts := []uint64{a, b, c, p}

	before := mapsLines(t, s.pid, starts)
	ino := sameObject(t, before[:3])
	extents := dataExtents(t, s.pid, before[0])
	// A quarter of the pages of the first three quarters hold data.
	var data int64
	for _, e := range extents {
		data += e[1] - e[0]
	}
	if want := int64(size / 4 * 3 / 8 * 3); data != want {
		t.Fatalf("the subject's object holds %d bytes of data, want %d", data, want)
	}

	img := dump(t, s.pid)
	<-s.exited
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	// The random data does not compress; the holes must cost nothing, and
	// the data must be in once, not once per mapping. The private region
	// (4 MiB, which compresses little) and the rest of the process take
	// the rest.
	if st.Size() < data || st.Size() > data+6<<20 {
		t.Errorf("the archive has %d bytes for %d bytes of shared data", st.Size(), data)
	}

	restore(t, img, s.pid)
	after := mapsLines(t, s.pid, starts)
	for i := range before {
		if w, g := before[i].without(), after[i].without(); w != g {
			t.Errorf("maps line of mapping %d:\n got %s\nwant %s", i, g, w)
		}
	}
	if got := sameObject(t, after[:3]); got == ino {
		t.Logf("the restored object has the old inode number %s", ino)
	}
	if got := dataExtents(t, s.pid, after[0]); !slices.Equal(got, extents) {
		t.Errorf("restored object has %d data extents, the dumped one %d (first %v, was %v)",
			len(got), len(extents), first(got), first(extents))
	}

	// The subject checks its memory and that the mappings still share.
	_ = syscall.Kill(s.pid, syscall.SIGUSR1)
	waitFor(t, 30*time.Second, "check after restore", func() bool { return len(lines(t, out)) >= 2 })
	if l := lines(t, out)[1]; l != "OK round=0 sum=1 private=1 shared=1" {
		t.Fatalf("check after restore: %s", l)
	}
}

// mapsLine is one line of /proc/PID/maps, split.
type mapsLine struct {
	start, end uint64
	fields     []string // range, perms, offset, dev, inode, name
}

// without is the line without its inode number, which a restored object
// need not keep.
func (l mapsLine) without() string {
	f := slices.Clone(l.fields)
	f[4] = "-"
	return strings.Join(f, " ")
}

// mapsLines returns the maps lines of pid's mappings that start at starts.
func mapsLines(t *testing.T, pid int, starts []uint64) []mapsLine {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	found := map[uint64]mapsLine{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		var m mapsLine
		if _, err := fmt.Sscanf(f[0], "%x-%x", &m.start, &m.end); err != nil {
			t.Fatalf("maps line %q: %v", l, err)
		}
		if len(f) == 5 {
			f = append(f, "")
		}
		m.fields = []string{f[0], f[1], f[2], f[3], f[4], strings.Join(f[5:], " ")}
		found[m.start] = m
	}
	var got []mapsLine
	for _, s := range starts {
		m, ok := found[s]
		if !ok {
			t.Fatalf("pid %d has no mapping at %#x:\n%s", pid, s, b)
		}
		got = append(got, m)
	}
	return got
}

// sameObject checks that the lines are shared mappings of one shmem
// object named /dev/zero (deleted), and returns its inode number.
func sameObject(t *testing.T, ls []mapsLine) string {
	t.Helper()
	for _, l := range ls {
		if l.fields[1] != "rw-s" || l.fields[5] != "/dev/zero (deleted)" ||
			l.fields[4] != ls[0].fields[4] {
			t.Fatalf("mapping %s is not the shared object of %s", strings.Join(l.fields, " "),
				strings.Join(ls[0].fields, " "))
		}
	}
	return ls[0].fields[4]
}

// dataExtents lists the data extents of the object behind a mapping, as
// SEEK_DATA and SEEK_HOLE find them through map_files (which reads no
// page, so it fills no hole).
func dataExtents(t *testing.T, pid int, l mapsLine) [][2]int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, l.start, l.end))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	var ext [][2]int64
	fd := int(f.Fd())
	for off := int64(0); off < st.Size(); {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		ext = append(ext, [2]int64{d, h})
		off = h
	}
	return ext
}

func first(ext [][2]int64) [][2]int64 {
	return ext[:min(len(ext), 3)]
}
