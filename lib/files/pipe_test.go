package files

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// TestLivePipes dumps a process holding two pipes and a named pipe, each
// with bytes in flight, and checks their Files, their bytes, and that the
// bytes are still in flight afterwards.
func TestLivePipes(t *testing.T) {
	dir, got := startFixture(t, "pipes", nil)
	pid := got["pid"]
	recs, err := dumpFiles(t, pid)
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, recs)
	cases := []struct {
		fd, other    string
		kind, path   string
		size, buffer int64
	}{
		{"r", "w", image.FilePipe, fmt.Sprintf("pipe:[%d]", fdIno(t, pid, got["r"])), 5000, 65536},
		{"big_r", "big_w", image.FilePipe, fmt.Sprintf("pipe:[%d]", fdIno(t, pid, got["big_r"])),
			300000, 1 << 20},
		{"fifo", "fifo", image.FileFifo, dir + "/fifo", 100, 65536},
	}
	for _, c := range cases {
		_, f := d.fileOf(t, pid, got[c.fd])
		if _, g := d.fileOf(t, pid, got[c.other]); g.ID != f.ID {
			t.Errorf("fds %s and %s are files %d and %d", c.fd, c.other, f.ID, g.ID)
		}
		if f.Kind != c.kind || f.Path != c.path || f.Size != c.size || f.PipeSize != c.buffer ||
			f.Mode&unix.S_IFMT != unix.S_IFIFO {
			t.Errorf("fd %s: got %+v, want %s %s holding %d of %d", c.fd, f, c.kind, c.path,
				c.size, c.buffer)
		}
		if b := pipeData(t, d, f); !bytes.Equal(b, pattern(0, int(c.size))) {
			t.Errorf("fd %s: the bytes in flight differ from what was written", c.fd)
		}
		if n := inFlight(t, pid, got[c.fd]); n != c.size {
			t.Errorf("fd %s: %d bytes in flight after the dump, want %d", c.fd, n, c.size)
		}
	}
}

// pipeData puts the ghost-data of a pipe together, checking that it comes
// in order and without gaps.
func pipeData(t *testing.T, d dumped, f image.File) []byte {
	t.Helper()
	var b []byte
	for _, g := range d.ghost[f.ID] {
		if g.Offset != int64(len(b)) || len(g.Data) == 0 || len(g.Data) > image.MaxChunk {
			t.Fatalf("file %d: ghost-data of %d bytes at %d after %d bytes", f.ID, len(g.Data),
				g.Offset, len(b))
		}
		b = append(b, g.Data...)
	}
	return b
}

// fdIno returns the inode number behind fd n of pid.
func fdIno(t *testing.T, pid, n int) uint64 {
	t.Helper()
	st, err := statFollow(procPath(Use{Kind: UseFd, PID: pid, Fd: n}))
	if err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// inFlight returns the bytes in flight in the pipe of fd n of pid.
func inFlight(t *testing.T, pid, n int) int64 {
	t.Helper()
	p, err := openPipe(procPath(Use{Kind: UseFd, PID: pid, Fd: n}))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	b, err := pipeBytes(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLivePipeHeldOutside gives a reader of a pipe of the fixture to a
// process outside it: the dump is refused, naming that process.
func TestLivePipeHeldOutside(t *testing.T) {
	_, got := startFixture(t, "pipes", nil)
	pid := got["pid"]
	for _, c := range []struct {
		flags int
		want  string
	}{
		{unix.O_RDONLY, "the read end is also held by pid %d (sleep) outside the dumped tree"},
		{unix.O_RDWR, "both ends are also held by pid %d (sleep) outside the dumped tree"},
	} {
		p, err := os.OpenFile(procPath(Use{Kind: UseFd, PID: pid, Fd: got["r"]}),
			c.flags|unix.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		sleep := exec.Command("sleep", "60")
		sleep.ExtraFiles = []*os.File{p}
		if err := sleep.Start(); err != nil {
			t.Fatal(err)
		}
		p.Close()

		_, err = dumpFiles(t, pid)
		_ = sleep.Process.Kill()
		_ = sleep.Wait()
		var he *HeldOutsideError
		if !errors.As(err, &he) || he.PID != sleep.Process.Pid || he.Fd != 3 {
			t.Fatalf("got %v, want a HeldOutsideError naming pid %d fd 3", err,
				sleep.Process.Pid)
		}
		if want := fmt.Sprintf(c.want, he.PID); !strings.HasSuffix(err.Error(), want) {
			t.Errorf("got %q, want it to end with %q", err, want)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("pid %d fd ", pid)) {
			t.Errorf("%q does not name the fd of pid %d", err, pid)
		}
	}
	if n := inFlight(t, pid, got["r"]); n != 5000 {
		t.Errorf("%d bytes in flight after the refusals, want 5000", n)
	}
}

// TestLivePipeInTree: a pipe between a process and its child is one File
// when both are dumped, and refused, naming the child, when only the
// parent is.
func TestLivePipeInTree(t *testing.T) {
	_, got := startFixture(t, "pipe-child", nil)
	pid, child := got["pid"], got["child"]
	recs, err := dumpFiles(t, pid, child)
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, recs)
	_, f := d.fileOf(t, pid, got["r"])
	if _, g := d.fileOf(t, child, got["child_w"]); g.ID != f.ID || f.Kind != image.FilePipe {
		t.Errorf("the ends are files %+v and %+v, want one pipe", f, g)
	}
	if b := pipeData(t, d, f); string(b) != "from the parent" || f.Size != int64(len(b)) {
		t.Errorf("bytes in flight %q, size %d", b, f.Size)
	}

	_, err = dumpFiles(t, pid)
	var he *HeldOutsideError
	if !errors.As(err, &he) || he.PID != child || !he.Other {
		t.Fatalf("got %v, want the other end held by pid %d", err, child)
	}
	want := fmt.Sprintf("pid %d fd %d: pipe:[%d]: the other end is held by pid %d (%s) "+
		"outside the dumped tree", pid, got["r"], fdIno(t, pid, got["r"]), child, he.Comm)
	if err.Error() != want || he.Comm == "" {
		t.Errorf("got %q\nwant %q", err, want)
	}
}
