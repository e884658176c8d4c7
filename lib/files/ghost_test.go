package files

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
	"golang.org/x/sys/unix"
)

// sparseFile makes a file of size bytes with data at the given offsets
// (each a run of n bytes of a pattern) and returns it open.
func sparseFile(t *testing.T, size int64, n int, offs ...int64) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	for _, off := range offs {
		if _, err := f.WriteAt(pattern(off, n), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return f
}

// pattern is n bytes of test data that depend on their offset.
func pattern(off int64, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		p := off + int64(i)
		b[i] = byte(p*7 + p>>12)
	}
	return b
}

// ghostRecords runs a ghostWriter on f, seen as a ghost of the test
// process, and returns the records it wrote.
func ghostRecords(t *testing.T, f *os.File, size, limit int64) ([]image.GhostData, int64, error) {
	t.Helper()
	var buf bytes.Buffer
	w := stream.NewWriter(&buf)
	if err := w.WriteHeader(stream.NewHeader("test")); err != nil {
		t.Fatal(err)
	}
	g := newGhostWriter(w, limit)
	u := Use{Kind: UseFd, PID: os.Getpid(), Fd: int(f.Fd())}
	sent, err := g.ghost(&image.File{ID: 7, Kind: image.FileGhost, Size: size}, u)
	if err != nil {
		return nil, sent, err
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	r := stream.NewReader(&buf)
	var recs []image.GhostData
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return recs, sent, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		var d image.GhostData
		mustDecode(t, rec, &d)
		recs = append(recs, d)
	}
}

func TestGhostChunks(t *testing.T) {
	const mib = 1 << 20
	f := sparseFile(t, 16*mib, 5*mib/2, 0)
	if _, err := f.WriteAt(pattern(10*mib, 4096), 10*mib); err != nil {
		t.Fatal(err)
	}
	recs, sent, err := ghostRecords(t, f, 16*mib, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ off, n int64 }{{0, mib}, {mib, mib}, {2 * mib, mib / 2}, {10 * mib, 4096}}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, w := range want {
		r := recs[i]
		if r.FileID != 7 || r.Offset != w.off || int64(len(r.Data)) != w.n {
			t.Errorf("record %d: file %d at %d, %d bytes; want at %d, %d bytes",
				i, r.FileID, r.Offset, len(r.Data), w.off, w.n)
		}
		if !bytes.Equal(r.Data, pattern(r.Offset, len(r.Data))) {
			t.Errorf("record %d: wrong data", i)
		}
	}
	if sent != 5*mib/2+4096 {
		t.Errorf("sent %d bytes", sent)
	}
}

// TestGhostSize checks that only the size recorded at resolve time is
// sent, even if the file grew since.
func TestGhostSize(t *testing.T) {
	f := sparseFile(t, 3<<20, 3<<20, 0)
	recs, sent, err := ghostRecords(t, f, 1<<20+100, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || sent != 1<<20+100 || len(recs[1].Data) != 100 {
		t.Fatalf("%d records, %d bytes", len(recs), sent)
	}
}

func TestGhostEmpty(t *testing.T) {
	f := sparseFile(t, 1<<30, 0)
	recs, sent, err := ghostRecords(t, f, 1<<30, 0)
	if err != nil || len(recs) != 0 || sent != 0 {
		t.Fatalf("a file of holes: %d records, %d bytes, %v", len(recs), sent, err)
	}
}

func TestGhostLimit(t *testing.T) {
	f := sparseFile(t, 64<<20, 2<<20, 0, 32<<20)
	if _, _, err := ghostRecords(t, f, 64<<20, 4<<20); err != nil {
		t.Fatalf("4 MiB of data under a 4 MiB limit: %v", err)
	}
	_, _, err := ghostRecords(t, f, 64<<20, 4<<20-1)
	if !errors.Is(err, ErrGhostTooBig) || !strings.Contains(err.Error(), "--max-ghost-size") {
		t.Fatalf("got %v, want the ghost refused", err)
	}
}

// ghostBytes puts the ghost-data of one file together, holes as zeros.
func ghostBytes(t *testing.T, d dumped, f image.File) []byte {
	t.Helper()
	b := make([]byte, f.Size)
	for _, g := range d.ghost[f.ID] {
		if len(g.Data) > image.MaxChunk || g.Offset+int64(len(g.Data)) > f.Size {
			t.Fatalf("ghost-data of %d bytes at %d in a file of %d", len(g.Data), g.Offset, f.Size)
		}
		copy(b[g.Offset:], g.Data)
	}
	return b
}

func TestLiveGhost(t *testing.T) {
	dir, got := startFixture(t, "unlinked", func(dir string) {
		create(t, "gone.txt")(dir)
		if err := os.Chmod(dir+"/gone.txt", 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir+"/gone.txt", 1234, 5678); err != nil {
			t.Fatal(err)
		}
	})
	recs, err := dumpFiles(t, got["pid"])
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, recs)
	_, f := d.fileOf(t, got["pid"], got["gone"])
	if f.Kind != image.FileGhost || f.Path != dir+"/gone.txt" || f.Size != 8192 {
		t.Fatalf("got %+v", f)
	}
	if f.Mode != unix.S_IFREG|0o640 || f.UID != 1234 || f.GID != 5678 || f.MtimeNs == 0 {
		t.Errorf("mode %o uid %d gid %d mtime %d", f.Mode, f.UID, f.GID, f.MtimeNs)
	}
	if b := ghostBytes(t, d, f); !bytes.Equal(b, bytes.Repeat([]byte("x"), 8192)) {
		t.Errorf("contents %q...", b[:16])
	}
}

func TestLiveMappedGhost(t *testing.T) {
	dir, got := startFixture(t, "mapped", create(t, "mapped.txt"))
	recs, err := dumpFiles(t, got["pid"])
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, recs)
	var f image.File
	for _, v := range d.tasks[got["pid"]].Vmas {
		if strings.HasPrefix(v.Name, dir) {
			f = d.files[v.FileID]
		}
	}
	if f.Kind != image.FileGhost || f.Path != dir+"/mapped.txt" {
		t.Fatalf("the mapping's file is %+v", f)
	}
	if b := ghostBytes(t, d, f); !bytes.Equal(b, bytes.Repeat([]byte("x"), 8192)) {
		t.Errorf("contents %q...", b[:16])
	}
}

func TestLiveSparseGhost(t *testing.T) {
	dir, got := startFixture(t, "sparse", nil)
	recs, err := dumpFiles(t, got["pid"])
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, recs)
	_, f := d.fileOf(t, got["pid"], got["sparse"])
	_, dup := d.fileOf(t, got["pid"], got["dup"])
	if f.Kind != image.FileGhost || f.Path != dir+"/sparse" || f.Size != 1<<30 || dup.ID != f.ID {
		t.Fatalf("got %+v and %+v", f, dup)
	}
	islands := map[int64]int64{0: 4096, 64 << 20: 3 << 20, 1<<30 - 8192: 8192}
	var total int64
	for _, g := range d.ghost[f.ID] {
		total += int64(len(g.Data))
		in := false
		for off, n := range islands {
			in = in || g.Offset >= off && g.Offset+int64(len(g.Data)) <= off+n
		}
		if !in {
			t.Errorf("ghost-data at %d, %d bytes, is not in an island", g.Offset, len(g.Data))
		}
		for i, c := range g.Data {
			p := g.Offset + int64(i)
			if c != byte((p/4096+p%4096)%251) {
				t.Fatalf("byte at %d is %d", p, c)
			}
		}
	}
	if total != 4096+3<<20+8192 {
		t.Errorf("%d bytes of data sent, want the islands' %d", total, 4096+3<<20+8192)
	}
	if len(d.ghost) != 1 {
		t.Errorf("%d files have ghost-data, want 1", len(d.ghost))
	}
}

func TestLiveMaxGhostSize(t *testing.T) {
	dir, got := startFixture(t, "sparse", nil)
	_, err := dumpFilesTo(t, Options{MaxGhostSize: 1 << 20}, nil, got["pid"])
	var fe *Error
	if !errors.As(err, &fe) || !errors.Is(err, ErrGhostTooBig) {
		t.Fatalf("got %v, want the ghost refused", err)
	}
	if fe.Use.PID != got["pid"] || fe.Use.Kind != UseFd ||
		fe.Use.Fd != got["sparse"] && fe.Use.Fd != got["dup"] || fe.Path != dir+"/sparse (deleted)" {
		t.Errorf("error names %v %q", fe.Use, fe.Path)
	}
	// The limit counts data, not the size with its holes.
	if _, err := dumpFilesTo(t, Options{MaxGhostSize: 4 << 20}, nil, got["pid"]); err != nil {
		t.Fatalf("3 MiB of data in 1 GiB under a 4 MiB limit: %v", err)
	}
}

func TestLiveTwoGhostsOneName(t *testing.T) {
	dir, got := startFixture(t, "twice", nil)
	recs, err := dumpFiles(t, got["pid"])
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, recs)
	_, first := d.fileOf(t, got["pid"], got["first"])
	_, second := d.fileOf(t, got["pid"], got["second"])
	_, third := d.fileOf(t, got["pid"], got["third"])
	path := dir + "/same"
	if first.Kind != image.FileGhost || second.Kind != image.FileGhost || first.ID == second.ID ||
		first.Path != path || second.Path != path {
		t.Fatalf("got %+v and %+v", first, second)
	}
	if third.Kind != image.FileLinked || third.Path != path {
		t.Errorf("the file now at the name: %+v", third)
	}
	if b := ghostBytes(t, d, first); string(b) != "first" {
		t.Errorf("first ghost holds %q", b)
	}
	if b := ghostBytes(t, d, second); string(b) != "second" {
		t.Errorf("second ghost holds %q", b)
	}
}

// elsewhere prepares a file with two names, a and b; the fixture opens b
// and removes it.
func elsewhere(t *testing.T) func(string) {
	return func(dir string) {
		create(t, "a")(dir)
		if err := os.Link(dir+"/a", dir+"/b"); err != nil {
			t.Fatal(err)
		}
	}
}

// hiddenLinks lists the hidden links ckpt-files made in dir.
func hiddenLinks(t *testing.T, dir string) []string {
	t.Helper()
	links, err := filepath.Glob(filepath.Join(dir, remapPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return links
}

func TestLiveRemap(t *testing.T) {
	dir, got := startFixture(t, "elsewhere", elsewhere(t))
	recs, err := dumpFiles(t, got["pid"])
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, recs)
	_, f := d.fileOf(t, got["pid"], got["moved"])
	if f.Kind != image.FileRemap || f.Path != dir+"/b" || filepath.Dir(f.RemapPath) != dir {
		t.Fatalf("got %+v", f)
	}
	var a, link unix.Stat_t
	if err := unix.Stat(dir+"/a", &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(f.RemapPath, &link); err != nil {
		t.Fatal(err)
	}
	if a.Ino != link.Ino || a.Dev != link.Dev || a.Ino != f.Ino || a.Nlink != 2 {
		t.Errorf("hidden link is inode %d, the file %d (%d links)", link.Ino, a.Ino, a.Nlink)
	}
	if len(d.ghost) != 0 {
		t.Errorf("a remap was copied: ghost-data for %d files", len(d.ghost))
	}
	if links := hiddenLinks(t, dir); len(links) != 1 || links[0] != f.RemapPath {
		t.Errorf("hidden links %v", links)
	}
}

// failWriter fails every write, as a pipe whose reader died.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, unix.EPIPE }

func TestLiveRemapUndone(t *testing.T) {
	dir, got := startFixture(t, "elsewhere", elsewhere(t))
	fail := func(io.Writer) io.Writer { return failWriter{} }
	if _, err := dumpFilesTo(t, Options{}, fail, got["pid"]); !errors.Is(err, unix.EPIPE) {
		t.Fatalf("got %v, want the write error", err)
	}
	if links := hiddenLinks(t, dir); len(links) != 0 {
		t.Errorf("a failed dump left hidden links %v", links)
	}
}

func TestExistingDir(t *testing.T) {
	dir := t.TempDir()
	if got, err := existingDir(dir + "/gone/deeper"); err != nil || got != dir {
		t.Errorf("got %q, %v; want %q", got, err, dir)
	}
	create(t, "file")(dir)
	if _, err := existingDir(dir + "/file"); err == nil {
		t.Error("a file was taken for a directory")
	}
}
