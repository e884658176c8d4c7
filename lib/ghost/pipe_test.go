package ghost

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// pipeBytes is n bytes of test data that depend on their offset.
func pipeBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*13 + i>>10)
	}
	return b
}

// fill writes data to ps as ghost-data records of at most MaxChunk bytes.
func fill(t *testing.T, ps *Pipes, id int, data []byte) {
	t.Helper()
	for off := 0; off < len(data); off += image.MaxChunk {
		chunk := data[off:min(off+image.MaxChunk, len(data))]
		if err := ps.Write(&image.GhostData{FileID: id, Offset: int64(off), Data: chunk}); err != nil {
			t.Fatal(err)
		}
	}
}

// openEnd opens a pipe held by ps as a task would.
func openEnd(t *testing.T, ps *Pipes, id, flags int) *os.File {
	t.Helper()
	path, err := ps.Path(id)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestPipe restores a full pipe of 1 MiB, owned by another user, and a
// pipe of the default size holding 40000 bytes, opens one end of each as
// a task does, and reads every byte back, then end of file once the
// holder lets go; a write to the other gets EPIPE.
func TestPipe(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("giving the pipe another owner needs root")
	}
	ps := NewPipes()
	defer ps.Abort()
	big := &image.File{ID: 1, Kind: image.FilePipe, Path: "pipe:[1]", Size: 1 << 20,
		PipeSize: 1 << 20, Mode: unix.S_IFIFO | 0o600, UID: 1234, GID: 5678}
	small := &image.File{ID: 2, Kind: image.FilePipe, Path: "pipe:[2]", Size: 40000,
		PipeSize: 65536, Mode: unix.S_IFIFO | 0o600}
	for _, f := range []*image.File{big, small} {
		if err := ps.Add(f); err != nil {
			t.Fatal(err)
		}
		fill(t, ps, f.ID, pipeBytes(int(f.Size)))
	}
	if !ps.Has(1) || !ps.Has(2) || ps.Has(3) {
		t.Fatal("Has is wrong")
	}

	// The read end of big, as a task opens it; the small one as a task
	// that held only its write end.
	r := openEnd(t, ps, 1, unix.O_RDONLY)
	w := openEnd(t, ps, 2, unix.O_WRONLY|unix.O_NONBLOCK)
	var st unix.Stat_t
	if err := unix.Fstat(int(r.Fd()), &st); err != nil || st.Uid != 1234 || st.Gid != 5678 {
		t.Errorf("the pipe is owned by %d:%d (%v), want 1234:5678", st.Uid, st.Gid, err)
	}
	if n, err := unix.FcntlInt(r.Fd(), unix.F_GETPIPE_SZ, 0); err != nil || n != 1<<20 {
		t.Errorf("buffer of %d bytes (%v), want 1 MiB", n, err)
	}
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}

	// No writer is left: the bytes in flight, then end of file.
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, pipeBytes(1<<20)) {
		t.Errorf("read %d bytes (%v), want the 1 MiB written", len(got), err)
	}
	// No reader is left: EPIPE.
	if _, err := unix.Write(int(w.Fd()), []byte("x")); !errors.Is(err, unix.EPIPE) {
		t.Errorf("write to the pipe without a reader: %v, want EPIPE", err)
	}
	if _, err := ps.Path(1); err == nil {
		t.Error("Path works after Close")
	}
}

// TestPipeShared opens one pipe for many fds, as several tasks do: they
// all see one pipe.
func TestPipeShared(t *testing.T) {
	ps := NewPipes()
	defer ps.Abort()
	if err := ps.Add(&image.File{ID: 7, Kind: image.FilePipe, Path: "pipe:[7]", Size: 3,
		PipeSize: 65536, Mode: unix.S_IFIFO | 0o600}); err != nil {
		t.Fatal(err)
	}
	fill(t, ps, 7, []byte("abc"))
	r1 := openEnd(t, ps, 7, unix.O_RDONLY|unix.O_NONBLOCK)
	r2 := openEnd(t, ps, 7, unix.O_RDONLY|unix.O_NONBLOCK)
	w1 := openEnd(t, ps, 7, unix.O_WRONLY)
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w1.Write([]byte("def")); err != nil {
		t.Fatal(err)
	}
	b1, b2 := make([]byte, 2), make([]byte, 8)
	n1, err1 := unix.Read(int(r1.Fd()), b1)
	n2, err2 := unix.Read(int(r2.Fd()), b2)
	if err1 != nil || err2 != nil || string(b1[:n1]) != "ab" || string(b2[:n2]) != "cdef" {
		t.Errorf("two readers read %q (%v) and %q (%v), want ab and cdef", b1[:max(n1, 0)],
			err1, b2[:max(n2, 0)], err2)
	}
}

// TestFifo restores a named pipe: the path stays its name.
func TestFifo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(path, 0o640); err != nil {
		t.Fatal(err)
	}
	ps := NewPipes()
	defer ps.Abort()
	f := &image.File{ID: 4, Kind: image.FileFifo, Path: path, Size: 5000, PipeSize: 1 << 17,
		Mode: unix.S_IFIFO | 0o640}
	if err := ps.Add(f); err != nil {
		t.Fatal(err)
	}
	fill(t, ps, 4, pipeBytes(5000))
	path4, err := ps.Path(4)
	if err != nil {
		t.Fatal(err)
	}
	if link, err := os.Readlink(path4); err != nil || link != path {
		t.Errorf("the held fifo reads %q (%v), want %s", link, err, path)
	}
	// Opened for reading alone it does not wait for a writer: the holder
	// is one.
	r := openEnd(t, ps, 4, unix.O_RDONLY)
	if n, err := unix.FcntlInt(r.Fd(), unix.F_GETPIPE_SZ, 0); err != nil || n != 1<<17 {
		t.Errorf("buffer of %d bytes (%v), want 128 KiB", n, err)
	}
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, pipeBytes(5000)) {
		t.Errorf("read %d bytes (%v), want the 5000 written", len(got), err)
	}
}

// TestFifoRefused: a path that is no named pipe, or one that holds bytes.
func TestFifoRefused(t *testing.T) {
	dir := t.TempDir()
	busy := filepath.Join(dir, "busy")
	if err := unix.Mkfifo(busy, 0o600); err != nil {
		t.Fatal(err)
	}
	other, err := os.OpenFile(busy, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Write([]byte("someone else's")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"file": "is no longer a named pipe",
		"gone": "no such file",
		"busy": "holds 14 bytes already",
	} {
		ps := NewPipes()
		err := ps.Add(&image.File{ID: 1, Kind: image.FileFifo, Path: filepath.Join(dir, name),
			PipeSize: 65536})
		ps.Abort()
		if err == nil || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), filepath.Join(dir, name)) {
			t.Errorf("%s: got %v, want an error naming it that says %q", name, err, want)
		}
	}
}

// TestPipeBadData: records out of order or beyond the bytes in flight, a
// pipe whose records stop short, and sizes that cannot be.
func TestPipeBadData(t *testing.T) {
	ps := NewPipes()
	defer ps.Abort()
	if err := ps.Add(&image.File{ID: 1, Kind: image.FilePipe, Size: 10, PipeSize: 4096}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []image.GhostData{
		{FileID: 1, Offset: 2, Data: []byte("ab")},
		{FileID: 1, Offset: 0, Data: make([]byte, 11)},
		{FileID: 2, Offset: 0, Data: []byte("ab")},
	} {
		if err := ps.Write(&d); err == nil {
			t.Errorf("write of %d bytes at %d to file %d taken", len(d.Data), d.Offset, d.FileID)
		}
	}
	if err := ps.Write(&image.GhostData{FileID: 1, Data: []byte("abc")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Path(1); err == nil || !strings.Contains(err.Error(), "3 of its 10 bytes") {
		t.Errorf("Path of a pipe missing bytes: %v", err)
	}
	for i, f := range []image.File{
		{ID: 2, Kind: image.FilePipe, Size: 1, PipeSize: 0},
		{ID: 3, Kind: image.FilePipe, Size: 8192, PipeSize: 4096},
		{ID: 1, Kind: image.FilePipe, Size: 1, PipeSize: 4096},
		{ID: 4, Kind: image.FileGhost, Size: 1, PipeSize: 4096},
	} {
		if err := ps.Add(&f); err == nil {
			t.Errorf("file %d taken: %+v", i, f)
		}
	}
}

// TestPipeTooBig: a buffer over pipe-max-size needs CAP_SYS_RESOURCE,
// which this machine's root lacks; the error says what was asked.
func TestPipeTooBig(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		t.Skip(err)
	}
	var max int64
	fmt.Sscan(string(b), &max)
	ps := NewPipes()
	defer ps.Abort()
	err = ps.Add(&image.File{ID: 1, Kind: image.FilePipe, PipeSize: 4 * max})
	if err == nil {
		t.Skip("this process may make pipes over pipe-max-size (CAP_SYS_RESOURCE)")
	}
	if !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), fmt.Sprint(4*max)) {
		t.Errorf("got %v, want EPERM naming %d bytes", err, 4*max)
	}
}
