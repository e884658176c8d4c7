package files

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// xfsDir mounts a new 1 GiB XFS filesystem on a loop device for the test
// and returns a directory on it. It skips the test without root or
// mkfs.xfs.
func xfsDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a loop filesystem")
	}
	mkfs, err := exec.LookPath("mkfs.xfs")
	if err != nil {
		t.Skip("needs mkfs.xfs (xfsprogs) to make a filesystem with FICLONE")
	}
	img := filepath.Join(t.TempDir(), "xfs.img")
	mnt := t.TempDir()
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(1 << 30)
	f.Close()
	if out, err := exec.Command(mkfs, "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v\n%s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a loop filesystem here: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
	return mnt
}

// checkClone clones f with cloneFile into dir and checks the clone.
func checkClone(t *testing.T, f *os.File, size int64, dir string) unix.Stat_t {
	t.Helper()
	dst, err := os.Create(filepath.Join(dir, "clone"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := cloneFile(dst, f, size); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 3 << 20, 32 << 20, size - 4096} {
		a, b := make([]byte, 4096), make([]byte, 4096)
		f.ReadAt(a, off)
		dst.ReadAt(b, off)
		if !bytes.Equal(a, b) {
			t.Errorf("clone differs at %d", off)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(dst.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != size {
		t.Errorf("clone of %d bytes, want %d", st.Size, size)
	}
	return st
}

// TestCloneCopy checks the copy_file_range way, on a filesystem without
// FICLONE (ext4, tmpfs): holes stay holes.
func TestCloneCopy(t *testing.T) {
	dir := t.TempDir()
	f := sparseFile(t, 64<<20, 2<<20, 0, 32<<20)
	if err := unix.IoctlFileClone(int(f.Fd()), int(f.Fd())); err == nil || !unsupported(err) {
		t.Skipf("the temp directory's filesystem clones (%v): nothing to fall back from", err)
	}
	st := checkClone(t, f, 64<<20, dir)
	if st.Blocks*512 > 5<<20 {
		t.Errorf("%d bytes allocated for 4 MiB of data: holes were copied", st.Blocks*512)
	}
}

// TestCloneFICLONE checks the FICLONE way on XFS: no data is copied.
func TestCloneFICLONE(t *testing.T) {
	dir := xfsDir(t)
	f, err := os.Create(filepath.Join(dir, "orig"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(pattern(0, 64<<20), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	var before unix.Statfs_t
	unix.Statfs(dir, &before)
	checkClone(t, f, 64<<20, dir)
	var after unix.Statfs_t
	unix.Statfs(dir, &after)
	if used := int64(before.Bfree-after.Bfree) * before.Bsize; used > 8<<20 {
		t.Errorf("a clone of 64 MiB used %d bytes: it was copied", used)
	}
}

func TestLiveGhostClone(t *testing.T) {
	dir, got := startFixture(t, "unlinked", create(t, "gone.txt"))
	recs, err := dumpFilesTo(t, Options{GhostClone: true}, nil, got["pid"])
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, recs)
	_, f := d.fileOf(t, got["pid"], got["gone"])
	if f.Kind != image.FileGhostClone || f.Path != dir+"/gone.txt" ||
		!strings.HasPrefix(f.ClonePath, dir+"/"+clonePrefix) || len(d.ghost) != 0 {
		t.Fatalf("got %+v and ghost-data for %d files", f, len(d.ghost))
	}
	b, err := os.ReadFile(f.ClonePath)
	if err != nil || !bytes.Equal(b, bytes.Repeat([]byte("x"), 8192)) {
		t.Errorf("clone holds %d bytes, %v", len(b), err)
	}
	os.Remove(f.ClonePath)
}
