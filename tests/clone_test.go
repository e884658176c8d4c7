package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// xfsDir mounts a new XFS filesystem with reflinks on a loop device and
// returns a directory on it; unmounted when the test ends.
func xfsDir(t *testing.T) string {
	t.Helper()
	mkfs, err := exec.LookPath("mkfs.xfs")
	if err != nil {
		t.Skip("needs mkfs.xfs (Debian xfsprogs; .ci/run installs it)")
	}
	img := filepath.Join(t.TempDir(), "xfs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 1<<30); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v\n%s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a loop XFS: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		// The subject, killed by an earlier cleanup, may hold the
		// mount for a moment more.
		deadline := time.Now().Add(10 * time.Second)
		for exec.Command("umount", mnt).Run() != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	})
	dir := filepath.Join(mnt, "subject")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// usedBytes is how much of dir's filesystem holds data.
func usedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

// TestFilesGhostCloneXFS: on XFS, --ghost-clone keeps a 64 MiB ghost as a
// FICLONE'd hidden file that shares the ghost's extents (the filesystem's
// use barely grows), nothing of it goes into the archive, and restore
// gives the process its file back and removes the clone.
func TestFilesGhostCloneXFS(t *testing.T) {
	dir := xfsDir(t)
	prog := compileC(t, "files_subject.c")
	r := &filesRun{t: t, dir: dir, out: filepath.Join(t.TempDir(), "out")}
	r.s = start(t, r.out, prog, "dense", dir, "64")
	waitFor(t, 60*time.Second, "READY", func() bool { return len(lines(t, r.out)) > 0 })
	r.check("before the dump")

	used := usedBytes(t, dir)
	img := filepath.Join(t.TempDir(), "img")
	line := fmt.Sprintf("ckpt-scan --kill %d | ckpt-files --ghost-clone | ckpt-mem | "+
		"ckpt-pack > %s", r.s.pid, img)
	if stderr, err := run(t, 120*time.Second, line); err != nil {
		t.Fatalf("dump: %v\n%s", err, stderr)
	}
	<-r.s.exited
	if grew := usedBytes(t, dir) - used; grew > 8<<20 {
		t.Errorf("the clone of a 64 MiB ghost used %d bytes of XFS: copied, not cloned", grew)
	}
	clones, _ := filepath.Glob(filepath.Join(dir, ".ckpt-ghost-*"))
	if len(clones) != 1 {
		t.Fatalf("clones after the dump: %q, want one", clones)
	}
	got := wantImage(t, img, 0, 0, 0)
	if got.kinds[image.FileGhostClone] != 1 || got.size > 1<<20 {
		t.Errorf("archive of %d bytes with %d ghost clones, want a small one with one",
			got.size, got.kinds[image.FileGhostClone])
	}

	restore(t, img, r.s.pid)
	r.check("after the restore")
	wantNames(t, dir)
}
