package tests

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/archive"
	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
	"golang.org/x/sys/unix"
)

// The tests of this file are the cases of issue 3: files that are open
// but no longer reachable by name. Each runs testdata/files_subject.c in
// one mode; the subject checks its own files on SIGUSR1 (contents,
// offsets, flags, /proc/self/fd links, sharing) once before the dump,
// which proves the checks, and once after the restore.

// filesRun is one subject of files_subject.c.
type filesRun struct {
	t     *testing.T
	dir   string // the subject's files, and nothing else
	out   string // its stdout
	s     *subject
	round int
}

// startFiles starts files_subject in mode on a new directory, waits for
// it to be ready and runs the first check round.
func startFiles(t *testing.T, mode string, args ...string) *filesRun {
	t.Helper()
	prog := compileC(t, "files_subject.c")
	r := &filesRun{t: t, dir: t.TempDir(), out: filepath.Join(t.TempDir(), "out")}
	r.s = start(t, r.out, prog, append([]string{mode, r.dir}, args...)...)
	waitFor(t, 60*time.Second, "READY", func() bool {
		return slices.ContainsFunc(lines(t, r.out), func(l string) bool {
			return strings.HasPrefix(l, "READY")
		})
	})
	r.check("before the dump")
	return r
}

// check has the subject check its files and fails the test on any BAD
// line of that round.
func (r *filesRun) check(when string) {
	r.t.Helper()
	if err := syscall.Kill(r.s.pid, syscall.SIGUSR1); err != nil {
		r.t.Fatalf("signal pid %d: %v", r.s.pid, err)
	}
	done := fmt.Sprintf("DONE %d ", r.round)
	waitFor(r.t, 60*time.Second, "check round "+strconv.Itoa(r.round), func() bool {
		return slices.ContainsFunc(lines(r.t, r.out), func(l string) bool {
			return strings.HasPrefix(l, done)
		})
	})
	round, ok := 0, 0
	for _, l := range lines(r.t, r.out) {
		switch {
		case strings.HasPrefix(l, "DONE "):
			round++
		case round == r.round && strings.HasPrefix(l, "BAD "):
			r.t.Errorf("%s: %s", when, l)
		case round == r.round && strings.HasPrefix(l, "OK "):
			ok++
		}
	}
	if ok == 0 {
		r.t.Errorf("%s: no check passed", when)
	}
	r.round++
}

// dumpRestore checkpoints the subject with --kill, runs between (if not
// nil) while it is gone, restores it and checks it again.
func (r *filesRun) dumpRestore(between func(img string)) string {
	r.t.Helper()
	img := dump(r.t, r.s.pid)
	select {
	case <-r.s.exited:
	case <-time.After(10 * time.Second):
		r.t.Fatal("the dumped subject still runs after ckpt-scan --kill")
	}
	if between != nil {
		between(img)
	}
	restore(r.t, img, r.s.pid)
	r.check("after the restore")
	return img
}

// dirList lists a directory.
func dirList(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var list []string
	for _, e := range ents {
		list = append(list, e.Name())
	}
	return list
}

// imageFiles is what an archive holds about files.
type imageFiles struct {
	files      []image.File
	kinds      map[string]int // File records by kind
	ghostBytes int64          // in ghost-data records
	size       int64          // of the archive
}

// readImageFiles reads the file records of an archive.
func readImageFiles(t *testing.T, img string) imageFiles {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	ar, err := archive.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	r := stream.NewReader(ar)
	res := imageFiles{kinds: map[string]int{}, size: st.Size()}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch rec.Kind {
		case image.KindFile:
			var file image.File
			if err := rec.Decode(&file); err != nil {
				t.Fatal(err)
			}
			res.files = append(res.files, file)
			res.kinds[file.Kind]++
		case image.KindGhostData:
			var d image.GhostData
			if err := rec.Decode(&d); err != nil {
				t.Fatal(err)
			}
			res.ghostBytes += int64(len(d.Data))
		}
	}
	if err := ar.Finish(); err != nil {
		t.Fatal(err)
	}
	return res
}

// wantImage checks the ghosts and remaps of an archive.
func wantImage(t *testing.T, img string, ghosts, remaps int, ghostBytes int64) imageFiles {
	t.Helper()
	got := readImageFiles(t, img)
	if got.kinds[image.FileGhost] != ghosts || got.kinds[image.FileRemap] != remaps ||
		got.ghostBytes != ghostBytes {
		t.Errorf("image: %d ghosts, %d remaps, %d bytes of ghost data; want %d, %d, %d",
			got.kinds[image.FileGhost], got.kinds[image.FileRemap], got.ghostBytes,
			ghosts, remaps, ghostBytes)
	}
	return got
}

// wantNames checks what a directory holds.
func wantNames(t *testing.T, dir string, want ...string) {
	t.Helper()
	if got := dirList(t, dir); !slices.Equal(got, want) {
		t.Errorf("%s holds %q, want %q", dir, got, want)
	}
}

// Case 1: an unlinked file of some MiB, offset in the middle.
func TestFilesGhost(t *testing.T) {
	r := startFiles(t, "ghost")
	img := r.dumpRestore(nil)
	wantImage(t, img, 1, 0, 4<<20)
	wantNames(t, r.dir)
}

// Case 2: as 1, with a new file at the old name since the unlink. The
// new file is left alone and the old one still reads "NAME (deleted)".
func TestFilesGhostNameTaken(t *testing.T) {
	r := startFiles(t, "replaced")
	name := filepath.Join(r.dir, "ghost.dat")
	before, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	r.dumpRestore(nil)
	after, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(name)
	if string(b) != "the new file\n" || !os.SameFile(before, after) ||
		!before.ModTime().Equal(after.ModTime()) {
		t.Errorf("the new file at the name changed: %q, inode %d→%d", b,
			before.Sys().(*syscall.Stat_t).Ino, after.Sys().(*syscall.Stat_t).Ino)
	}
	wantNames(t, r.dir, "ghost.dat")
}

// Case 3: two unlinked files that had the same name stay two files.
func TestFilesTwoGhostsOneName(t *testing.T) {
	r := startFiles(t, "twice")
	img := r.dumpRestore(nil)
	wantImage(t, img, 2, 0, 3<<20)
	wantNames(t, r.dir)
}

// Case 4: one unlinked file in three fds and a shared mapping of one
// task: one copy in the image, one file after restore.
func TestFilesGhostManyUses(t *testing.T) {
	r := startFiles(t, "many")
	img := r.dumpRestore(nil)
	wantImage(t, img, 1, 0, 1<<20)
}

// Cases 4 and 11 across tasks (testdata/files_tasks.c): one ghost open
// in a parent and in its child, through one inherited description and
// through a description of the child's own, and a linked file's
// description inherited too. One copy in the archive; after the restore
// one file, the inherited descriptions shared again (kcmp), the child's
// own one apart, every offset and link as it was.
func TestFilesGhostManyTasks(t *testing.T) {
	prog := compileC(t, "files_tasks.c")
	dir := t.TempDir()
	out := filepath.Join(t.TempDir(), "out")
	s := start(t, out, prog, dir)
	var parent, child int
	waitFor(t, 20*time.Second, "READY", func() bool {
		l := lines(t, out)
		if len(l) == 0 {
			return false
		}
		_, err := fmt.Sscanf(l[0], "READY %d %d", &parent, &child)
		return err == nil
	})
	t.Cleanup(func() { killPID(child) })
	img := dump(t, s.pid)
	<-s.exited
	waitFor(t, 10*time.Second, "the child to be reaped", func() bool { return procState(child) == "" })
	restore(t, img, parent)
	t.Cleanup(func() { killPID(child) })
	wantImage(t, img, 1, 0, 1<<20)
	wantNames(t, dir, "l.dat")

	ghostLink := filepath.Join(dir, "g.dat") + " (deleted)"
	fds := []struct {
		pid, fd int
		link    string
		pos     int
	}{{parent, 3, ghostLink, 1000}, {child, 3, ghostLink, 1000}, {child, 5, ghostLink, 77},
		{parent, 4, filepath.Join(dir, "l.dat"), 500}, {child, 4, filepath.Join(dir, "l.dat"), 500}}
	var inos []uint64
	for _, f := range fds {
		p := fmt.Sprintf("/proc/%d/fd/%d", f.pid, f.fd)
		link, err := os.Readlink(p)
		if err != nil || link != f.link {
			t.Errorf("%s reads %q (%v), want %q", p, link, err, f.link)
		}
		if pos := fdPos(t, f.pid, f.fd); pos != f.pos {
			t.Errorf("%s: offset %d, want %d", p, pos, f.pos)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		inos = append(inos, st.Ino)
	}
	if inos[0] != inos[1] || inos[0] != inos[2] {
		t.Errorf("the ghost is %v in its three uses: not one file", inos[:3])
	}
	if !sameDescription(parent, child, 3) || !sameDescription(parent, child, 4) {
		t.Error("fds 3 and 4 of parent and child are no longer one description each")
	}
	if kcmpFds(child, 3, 5) {
		t.Error("the child's fd 5 shares fd 3's description: it had its own")
	}
	checkGhostBytes(t, fmt.Sprintf("/proc/%d/fd/5", child))
}

// kcmpFds reports whether fds a and b of pid are one description.
func kcmpFds(pid, a, b int) bool {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(pid), 0,
		uintptr(a), uintptr(b), 0)
	return errno == 0 && r == 0
}

// checkGhostBytes reads files_tasks.c's ghost through path and checks its
// pattern.
func checkGhostBytes(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 1<<20 {
		t.Fatalf("%s: %d bytes, want 1 MiB", path, len(b))
	}
	for i, c := range b {
		if c != byte(i*131+(i>>11)+5) {
			t.Fatalf("%s: byte %d is %#x", path, i, c)
		}
	}
}

// Case 5: a file unlinked at its name but linked elsewhere: a hidden
// link, no copy, and nothing left once restored.
func TestFilesRemap(t *testing.T) {
	r := startFiles(t, "remap")
	img := r.dumpRestore(func(string) {
		links, _ := filepath.Glob(filepath.Join(r.dir, ".ckpt-remap-*"))
		if len(links) != 1 {
			t.Errorf("hidden links after the dump: %q, want one", links)
		}
	})
	wantImage(t, img, 0, 1, 0)
	wantNames(t, r.dir, "a")
}

// Case 6: a linked file named "x (deleted)" stays linked; an unlinked
// "y (deleted)" is a ghost that reads "y (deleted) (deleted)".
func TestFilesDeletedInName(t *testing.T) {
	r := startFiles(t, "named")
	img := r.dumpRestore(nil)
	got := wantImage(t, img, 1, 0, 8192)
	for _, f := range got.files {
		switch f.Path {
		case filepath.Join(r.dir, "x (deleted)"):
			if f.Kind != image.FileLinked {
				t.Errorf("%s is a %s, want linked", f.Path, f.Kind)
			}
		case filepath.Join(r.dir, "y (deleted)"):
			if f.Kind != image.FileGhost {
				t.Errorf("%s is a %s, want a ghost", f.Path, f.Kind)
			}
		}
	}
	wantNames(t, r.dir, "x (deleted)")
}

// Case 7: 4 GiB apparent, 8 MiB of data: the image grows by about the
// data, and the holes are holes again.
func TestFilesSparseGhost(t *testing.T) {
	r := startFiles(t, "sparse")
	blocks := func() []string {
		var b []string
		for _, l := range lines(t, r.out) {
			if v, ok := strings.CutPrefix(l, "BLOCKS "); ok {
				b = append(b, v)
			}
		}
		return b
	}
	img := r.dumpRestore(nil)
	got := wantImage(t, img, 1, 0, 8<<20)
	if got.size > 10<<20 {
		t.Errorf("the image is %d bytes for 8 MiB of data", got.size)
	}
	if b := blocks(); len(b) != 2 || b[0] != b[1] {
		t.Errorf("blocks before and after: %v", b)
	}
	t.Logf("image %d bytes; 512-byte blocks before and after: %v", got.size, blocks())
}

// Case 8: a dense unlinked file, streamed in chunks.
func TestFilesDenseGhost(t *testing.T) {
	r := startFiles(t, "dense", "64")
	img := r.dumpRestore(nil)
	wantImage(t, img, 1, 0, 64<<20)
}

// Case 8: --max-ghost-size refuses a bigger ghost by name, and the
// subject runs on untouched.
func TestFilesMaxGhostSize(t *testing.T) {
	r := startFiles(t, "dense", "4")
	img := filepath.Join(t.TempDir(), "img")
	line := fmt.Sprintf("ckpt-scan --kill %d | ckpt-files --max-ghost-size 1M | ckpt-mem | "+
		"ckpt-pack > %s", r.s.pid, img)
	stderr, err := run(t, 60*time.Second, line)
	if err == nil {
		t.Fatal("a 4 MiB ghost was dumped under --max-ghost-size 1M")
	}
	want := fmt.Sprintf("ckpt-files: pid %d fd ", r.s.pid)
	path := filepath.Join(r.dir, "dense") + " (deleted)"
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, path) ||
		!strings.Contains(stderr, "--max-ghost-size") {
		t.Errorf("stderr %q, want it to name the pid, fd and %s", stderr, path)
	}
	waitFor(t, 10*time.Second, "the subject to run again", func() bool {
		return alive(r.s.pid) && tracerPID(r.s.pid) == 0
	})
	r.check("after the refused dump")
}

// Case 8, "Also": --ghost-clone keeps the ghost beside its old name
// (copy_file_range on the ext4 of the temp directory; FICLONE on btrfs and
// XFS) instead of in the image, and restore uses and removes it.
func TestFilesGhostClone(t *testing.T) {
	r := startFiles(t, "ghost")
	img := filepath.Join(t.TempDir(), "img")
	line := fmt.Sprintf("ckpt-scan --kill %d | ckpt-files --ghost-clone | ckpt-mem | "+
		"ckpt-pack > %s", r.s.pid, img)
	if stderr, err := run(t, 120*time.Second, line); err != nil {
		t.Fatalf("dump: %v\n%s", err, stderr)
	}
	<-r.s.exited
	if clones, _ := filepath.Glob(filepath.Join(r.dir, ".ckpt-ghost-*")); len(clones) != 1 {
		t.Errorf("clones after the dump: %q, want one", clones)
	}
	got := wantImage(t, img, 0, 0, 0)
	if got.kinds[image.FileGhostClone] != 1 || got.size > 1<<20 {
		t.Errorf("image of %d bytes with %d ghost clones", got.size,
			got.kinds[image.FileGhostClone])
	}
	restore(t, img, r.s.pid)
	r.check("after the restore")
	wantNames(t, r.dir)
}

// Case 9: a shared writable mapping of an unlinked file, written through
// the mapping after the unlink.
func TestFilesSharedMappingGhost(t *testing.T) {
	r := startFiles(t, "shmap")
	img := r.dumpRestore(nil)
	wantImage(t, img, 1, 0, 1<<20)
}

// Case 10: a private mapping of a deleted shared library.
func TestFilesDeletedLibrary(t *testing.T) {
	lib := filepath.Join(t.TempDir(), "libfiles.so")
	cmd := exec.Command("gcc", "-O2", "-Wall", "-shared", "-fPIC", "-o", lib,
		filepath.Join("testdata", "files_lib.c"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc files_lib.c: %v\n%s", err, b)
	}
	r := startFiles(t, "dlopen", lib)
	img := r.dumpRestore(nil)
	got := readImageFiles(t, img)
	if got.kinds[image.FileGhost] != 1 {
		t.Errorf("image has %d ghosts, want the library", got.kinds[image.FileGhost])
	}
	wantNames(t, filepath.Dir(lib))
}

// Case 11: two fds on one open file description (dup) keep sharing the
// offset, on a linked and on an unlinked file.
func TestFilesDup(t *testing.T) {
	r := startFiles(t, "dup")
	img := r.dumpRestore(nil)
	wantImage(t, img, 1, 0, 65536)
	wantNames(t, r.dir, "linked.dat")
}

// Case 12: O_APPEND, O_RDONLY and O_WRONLY|O_TRUNC files, linked and
// unlinked: flags and offsets exact, nothing truncated again, appends
// land at the end.
func TestFilesFlags(t *testing.T) {
	r := startFiles(t, "flags")
	img := r.dumpRestore(nil)
	// The appends: "line1\n", and "more\n" of the check before the dump.
	wantImage(t, img, 3, 0, 11+1<<20+1000)
	wantNames(t, r.dir, "append.log", "ro.dat", "trunc.dat")
	if st, err := os.Stat(filepath.Join(r.dir, "trunc.dat")); err != nil || st.Size() != 1000 {
		t.Errorf("trunc.dat: %v, %v; want its 1000 bytes", st, err)
	}
}

// BenchmarkFilesDenseGhost1GiB dumps and restores a process holding a
// 1 GiB unlinked file, and reports the time of each and the image size.
//
//	go test -run - -bench FilesDenseGhost1GiB -benchtime 1x ./tests
func BenchmarkFilesDenseGhost1GiB(b *testing.B) {
	prog := filepath.Join(b.TempDir(), "files_subject")
	cmd := exec.Command("gcc", "-O2", "-Wall", "-o", prog,
		filepath.Join("testdata", "files_subject.c"))
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("gcc: %v\n%s", err, out)
	}
	for range b.N {
		b.StopTimer()
		pid, exited := startBigGhost(b, prog)
		b.StartTimer()

		start := time.Now()
		img := filepath.Join(b.TempDir(), "img")
		line := fmt.Sprintf("ckpt-scan --kill %d | ckpt-files | ckpt-mem | ckpt-pack > %s",
			pid, img)
		if err := runToolsLine(line); err != nil {
			b.Fatalf("dump: %v", err)
		}
		dumped := time.Since(start)
		<-exited

		start = time.Now()
		if err := runToolsLine("ckpt-restore " + img); err != nil {
			b.Fatalf("restore: %v", err)
		}
		restored := time.Since(start)
		killPID(pid)

		st, err := os.Stat(img)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(dumped.Seconds(), "dump-s")
		b.ReportMetric(restored.Seconds(), "restore-s")
		b.ReportMetric(float64(st.Size())/(1<<20), "image-MiB")
	}
}

// startBigGhost starts files_subject holding a 1 GiB ghost and waits until it
// is ready.
func startBigGhost(b *testing.B, prog string) (int, chan struct{}) {
	b.Helper()
	out, err := os.Create(filepath.Join(b.TempDir(), "out"))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(prog, "dense", b.TempDir(), "1024")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	b.Cleanup(func() { killPID(cmd.Process.Pid) })
	deadline := time.Now().Add(2 * time.Minute)
	for {
		text, _ := os.ReadFile(out.Name())
		if strings.HasPrefix(string(text), "READY") {
			return cmd.Process.Pid, exited
		}
		if time.Now().After(deadline) {
			b.Fatal("files_subject not ready after 2 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runToolsLine runs a shell line with the built tools, within 5 minutes.
func runToolsLine(line string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -o pipefail; "+line)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", line, err, out)
	}
	return nil
}
