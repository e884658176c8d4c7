package ghost

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ckpt/ckpt/lib/files"
	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
	"golang.org/x/sys/unix"
)

// selfTask is a task record of the test process with the fds given, as
// ckpt-scan would write them (the fields ckpt-files reads).
func selfStream(t *testing.T, fs ...*os.File) []byte {
	t.Helper()
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := stream.NewWriter(&buf)
	if err := w.WriteHeader(stream.NewHeader("ckpt-scan")); err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	if err := w.Write(image.KindTask, &image.Task{PID: pid, StartTime: start}); err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		n := int(f.Fd())
		link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(n))
		if err != nil {
			t.Fatal(err)
		}
		st := fstat(t, f)
		fd := &image.Fd{PID: pid, Fd: n, Link: link, Dev: st.Dev, Ino: st.Ino, Mode: st.Mode,
			Nlink: uint64(st.Nlink), Size: st.Size}
		if err := w.Write(image.KindFd, fd); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// restoreFiles feeds the file and ghost-data records of a ckpt-files
// stream to a new Holder, as restore does, and seals it.
func restoreFiles(t *testing.T, out []byte) (*Holder, map[int]image.File, int64) {
	t.Helper()
	h := NewHolder()
	t.Cleanup(h.Abort)
	byFd := map[int]image.File{}
	recs := map[int]image.File{}
	var data int64
	r := stream.NewReader(bytes.NewReader(out))
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
			var f image.File
			if err := rec.Decode(&f); err != nil {
				t.Fatal(err)
			}
			recs[f.ID] = f
			if Holds(&f) {
				if err := h.Add(&f); err != nil {
					t.Fatal(err)
				}
			}
		case image.KindGhostData:
			var d image.GhostData
			if err := rec.Decode(&d); err != nil {
				t.Fatal(err)
			}
			data += int64(len(d.Data))
			if err := h.Write(&d); err != nil {
				t.Fatal(err)
			}
		case image.KindFd:
			var fd image.Fd
			if err := rec.Decode(&fd); err != nil {
				t.Fatal(err)
			}
			byFd[fd.Fd] = recs[fd.FileID]
		}
	}
	if err := h.Seal(); err != nil {
		t.Fatal(err)
	}
	return h, byFd, data
}

// TestRoundTrip dumps files of the test process itself with ckpt-files
// (a ghost with holes, a ghost whose name was taken again, a remap) and
// brings them back with a Holder.
func TestRoundTrip(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	mk := func(name string, size int64, offs ...int64) *os.File {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		for _, off := range offs {
			if _, err := f.WriteAt(pattern(off, 3*mib), off); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		return f
	}
	sparse := mk("sparse", 1<<30, 0, 512*mib)
	taken := mk("taken", 3*mib, 0)
	moved := mk("moved", 3*mib, 0)
	for _, name := range []string{"sparse", "taken"} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(dir+"/taken", []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(dir+"/moved", dir+"/elsewhere"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dir + "/moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/moved", []byte("another"), 0o644); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	in := bytes.NewReader(selfStream(t, sparse, taken, moved))
	if _, err := files.Run(context.Background(), in, &out, files.Options{}, nil); err != nil {
		t.Fatal(err)
	}
	h, byFd, data := restoreFiles(t, out.Bytes())
	if data != 9*mib {
		t.Errorf("%d bytes of ghost data, want the 9 MiB written", data)
	}
	kinds := []string{byFd[int(sparse.Fd())].Kind, byFd[int(taken.Fd())].Kind,
		byFd[int(moved.Fd())].Kind}
	if !slices.Equal(kinds, []string{image.FileGhost, image.FileGhost, image.FileRemap}) {
		t.Fatalf("kinds %v", kinds)
	}
	for _, orig := range []*os.File{sparse, taken, moved} {
		f := open(t, h, byFd[int(orig.Fd())].ID, os.O_RDONLY)
		if a, b := linkText(t, f), linkText(t, orig); a != b {
			t.Errorf("restored file reads %q, the dumped one %q", a, b)
		}
		a, b := fstat(t, f), fstat(t, orig)
		if a.Size != b.Size || a.Blocks > b.Blocks+8 {
			t.Errorf("%s: size %d, %d blocks; dumped %d, %d blocks", linkText(t, f), a.Size,
				a.Blocks, b.Size, b.Blocks)
		}
		for _, off := range []int64{0, mib, 512 * mib, 600 * mib} {
			x, y := make([]byte, 4096), make([]byte, 4096)
			_, errA := f.ReadAt(x, off)
			_, errB := orig.ReadAt(y, off)
			if !bytes.Equal(x, y) || (errA == nil) != (errB == nil) {
				t.Errorf("%s: contents at %d differ", linkText(t, f), off)
			}
		}
	}
	if b, _ := os.ReadFile(dir + "/taken"); string(b) != "new" {
		t.Errorf("the file at the taken name holds %q", b)
	}
	links, _ := filepath.Glob(dir + "/.ckpt-remap-*")
	if len(links) != 1 {
		t.Errorf("hidden links before Close: %v", links)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"elsewhere", "moved", "taken"}) {
		t.Errorf("names after Close: %v", got)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(moved.Fd()), &st); err != nil || st.Nlink != 1 {
		t.Errorf("the remapped file has %d links, want 1", st.Nlink)
	}
}
