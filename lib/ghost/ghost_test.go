package ghost

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

const mib = 1 << 20

var mtime = time.Date(2020, 2, 29, 12, 0, 0, 123456789, time.UTC).UnixNano()

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: gives ghosts their owner back")
	}
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

// ghostFile is a ghost record with data islands of n bytes at offs.
type ghostFile struct {
	image.File
	n    int
	offs []int64
}

func newGhost(id int, path string, size int64, n int, offs ...int64) ghostFile {
	return ghostFile{image.File{ID: id, Kind: image.FileGhost, Path: path,
		Mode: unix.S_IFREG | 0o640, Size: size, MtimeNs: mtime, UID: 1234, GID: 5678}, n, offs}
}

// add adds g to h and writes its data in chunks, as restore would.
func add(t *testing.T, h *Holder, g ghostFile) {
	t.Helper()
	if err := h.Add(&g.File); err != nil {
		t.Fatal(err)
	}
	for _, off := range g.offs {
		for p := off; p < off+int64(g.n); p += image.MaxChunk {
			n := min(image.MaxChunk, int(off+int64(g.n)-p))
			if err := h.Write(&image.GhostData{FileID: g.ID, Offset: p, Data: pattern(p, n)}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// open opens the held file id as a restored task would, through Path.
func open(t *testing.T, h *Holder, id int, flags int) *os.File {
	t.Helper()
	path, err := h.Path(id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(path, "/proc/") {
		t.Fatalf("path %q", path)
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// linkText reads what /proc/self/fd says about f.
func linkText(t *testing.T, f *os.File) string {
	t.Helper()
	s, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// names lists dir.
func names(t *testing.T, dir string) []string {
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

func fstat(t *testing.T, f *os.File) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// checkGhost checks a restored ghost's contents and attributes.
func checkGhost(t *testing.T, f *os.File, g ghostFile) {
	t.Helper()
	st := fstat(t, f)
	if st.Size != g.Size || st.Mode != g.Mode || st.Uid != g.UID || st.Gid != g.GID ||
		st.Mtim.Nano() != g.MtimeNs || st.Nlink != 0 {
		t.Errorf("size %d mode %o owner %d:%d mtime %d nlink %d", st.Size, st.Mode, st.Uid,
			st.Gid, st.Mtim.Nano(), st.Nlink)
	}
	for _, off := range g.offs {
		b := make([]byte, g.n)
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, pattern(off, g.n)) {
			t.Errorf("data at %d differs", off)
		}
	}
}

func TestGhostNameFree(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	g := newGhost(1, dir+"/log", 5*mib, 3*mib, 0)
	h := NewHolder()
	add(t, h, g)
	if got := names(t, dir); len(got) != 0 {
		t.Errorf("names while writing: %v", got)
	}
	if err := h.Seal(); err != nil {
		t.Fatal(err)
	}
	f := open(t, h, 1, os.O_RDWR)
	if got := linkText(t, f); got != dir+"/log (deleted)" {
		t.Errorf("the link reads %q", got)
	}
	checkGhost(t, f, g)
	if got := names(t, dir); len(got) != 0 {
		t.Errorf("names left: %v", got)
	}

	// Each open is its own open file description of the one inode.
	other := open(t, h, 1, os.O_RDONLY)
	if _, err := f.Seek(100, 0); err != nil {
		t.Fatal(err)
	}
	if pos, _ := other.Seek(0, 1); pos != 0 {
		t.Errorf("a second open shares the offset (%d)", pos)
	}
	if _, err := f.WriteAt([]byte("new"), 10); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	if _, err := other.ReadAt(b, 10); err != nil || string(b) != "new" {
		t.Errorf("a write through one open is not seen through the other: %q", b)
	}
	if fstat(t, f).Ino != fstat(t, other).Ino {
		t.Error("two opens, two inodes")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(b, 10); err != nil {
		t.Errorf("the ghost died with the holder: %v", err)
	}
}

func TestGhostNameTaken(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	name := dir + "/data"
	if err := os.WriteFile(name, []byte("the new file at the name"), 0o600); err != nil {
		t.Fatal(err)
	}
	mtimeBefore := time.Unix(1e9, 0)
	if err := os.Chtimes(name, mtimeBefore, mtimeBefore); err != nil {
		t.Fatal(err)
	}
	var before unix.Stat_t
	if err := unix.Stat(name, &before); err != nil {
		t.Fatal(err)
	}

	g := newGhost(4, name, 2*mib, mib, mib)
	h := NewHolder()
	add(t, h, g)
	if err := h.Seal(); err != nil {
		t.Fatal(err)
	}
	f := open(t, h, 4, os.O_RDONLY)
	if got := linkText(t, f); got != name+" (deleted)" {
		t.Errorf("the link reads %q", got)
	}
	checkGhost(t, f, g)

	var after unix.Stat_t
	if err := unix.Stat(name, &after); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(name)
	if err != nil || string(b) != "the new file at the name" {
		t.Errorf("the other file now holds %q, %v", b, err)
	}
	if after.Ino != before.Ino || after.Nlink != 1 || after.Mtim != before.Mtim {
		t.Errorf("the other file changed: inode %d→%d nlink %d mtime %v→%v", before.Ino,
			after.Ino, after.Nlink, before.Mtim, after.Mtim)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"data"}) {
		t.Errorf("names left: %v", got)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestGhostSparse(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	// 4 GiB with 8 MiB of data in four islands.
	g := newGhost(2, dir+"/sparse", 4<<30, 2*mib, 0, 1<<30+4096, 3<<30, 4<<30-2*mib)
	h := NewHolder()
	defer h.Abort()
	add(t, h, g)
	if err := h.Seal(); err != nil {
		t.Fatal(err)
	}
	f := open(t, h, 2, os.O_RDONLY)
	checkGhost(t, f, g)
	st := fstat(t, f)
	if used := st.Blocks * 512; used > 9*mib {
		t.Errorf("%d bytes allocated for 8 MiB of data: holes were filled", used)
	}
	b := make([]byte, 4096)
	if _, err := f.ReadAt(b, 2<<30); err != nil || !bytes.Equal(b, make([]byte, 4096)) {
		t.Errorf("a hole does not read as zeros: %v", err)
	}
	t.Logf("4 GiB ghost with 8 MiB of data: %d KiB allocated", st.Blocks/2)
}

func TestTwoGhostsOneName(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	a := newGhost(1, dir+"/same", 5, 5, 0)
	b := newGhost(2, dir+"/same", 7, 7, 0)
	h := NewHolder()
	defer h.Abort()
	add(t, h, a)
	add(t, h, b)
	if err := h.Seal(); err != nil {
		t.Fatal(err)
	}
	fa, fb := open(t, h, 1, os.O_RDONLY), open(t, h, 2, os.O_RDONLY)
	if fstat(t, fa).Ino == fstat(t, fb).Ino {
		t.Fatal("two ghosts became one file")
	}
	for _, f := range []*os.File{fa, fb} {
		if got := linkText(t, f); got != dir+"/same (deleted)" {
			t.Errorf("the link reads %q", got)
		}
	}
	checkGhost(t, fa, a)
	checkGhost(t, fb, b)
}

func TestGhostMissingDir(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	g := newGhost(1, dir+"/gone/deeper/x", 10, 10, 0)
	h := NewHolder()
	add(t, h, g)
	if err := h.Seal(); err != nil {
		t.Fatal(err)
	}
	f := open(t, h, 1, os.O_RDONLY)
	if got := linkText(t, f); got != dir+"/gone/deeper/x (deleted)" {
		t.Errorf("the link reads %q", got)
	}
	if got := names(t, dir); len(got) != 0 {
		t.Errorf("directories left: %v", got)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestGhostDirAtName(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	if err := os.Mkdir(dir+"/x", 0o755); err != nil {
		t.Fatal(err)
	}
	h := NewHolder()
	defer h.Abort()
	add(t, h, newGhost(1, dir+"/x", 10, 10, 0))
	if err := h.Seal(); err != nil {
		t.Fatal(err)
	}
	got := linkText(t, open(t, h, 1, os.O_RDONLY))
	if !strings.HasPrefix(got, dir+"/x.ckpt-") || !strings.HasSuffix(got, " (deleted)") {
		t.Errorf("the link reads %q, want a name beside the directory", got)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"x"}) {
		t.Errorf("names left: %v", got)
	}
}

func TestAbort(t *testing.T) {
	needRoot(t)
	for _, seal := range []bool{false, true} {
		dir := t.TempDir()
		if err := os.WriteFile(dir+"/b", []byte("other"), 0o644); err != nil {
			t.Fatal(err)
		}
		h := NewHolder()
		add(t, h, newGhost(1, dir+"/a", 3*mib, mib, 0))
		add(t, h, newGhost(2, dir+"/b", 3*mib, mib, mib))
		add(t, h, newGhost(3, dir+"/new/c", 10, 10, 0))
		if seal {
			if err := h.Seal(); err != nil {
				t.Fatal(err)
			}
		}
		h.Abort()
		if got := names(t, dir); !slices.Equal(got, []string{"b"}) {
			t.Errorf("sealed %v: names left after Abort: %v", seal, got)
		}
		if _, err := h.Path(1); seal && err != nil {
			t.Errorf("Path after Abort: %v", err)
		}
	}
}

func TestAbortFailedAdd(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	h := NewHolder()
	add(t, h, newGhost(1, dir+"/new/a", 10, 10, 0))
	bad := newGhost(2, dir+"/new/b", -1, 0)
	if err := h.Add(&bad.File); err == nil {
		t.Fatal("a ghost of size -1 was taken")
	}
	h.Abort()
	if got := names(t, dir); len(got) != 0 {
		t.Errorf("names left after Abort: %v", got)
	}
}

func TestWriteRefused(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	h := NewHolder()
	defer h.Abort()
	add(t, h, newGhost(1, dir+"/a", 100, 0))
	tests := []image.GhostData{
		{FileID: 1, Offset: 90, Data: make([]byte, 11)},
		{FileID: 1, Offset: -1, Data: make([]byte, 1)},
		{FileID: 9, Offset: 0, Data: make([]byte, 1)},
	}
	for _, d := range tests {
		if err := h.Write(&d); err == nil {
			t.Errorf("ghost-data for file %d at %d of %d bytes was taken", d.FileID, d.Offset,
				len(d.Data))
		}
	}
	if _, err := h.Path(1); err == nil {
		t.Error("Path before Seal")
	}
	if err := h.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := h.Write(&image.GhostData{FileID: 1, Data: []byte{1}}); err == nil {
		t.Error("ghost-data after Seal was taken")
	}
	other := newGhost(2, dir+"/b", 1, 0)
	if err := h.Add(&other.File); err == nil {
		t.Error("a file added after Seal")
	}
}

func TestAddRefused(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]image.File{
		"linked":   {ID: 1, Kind: image.FileLinked, Path: dir + "/a", Mode: unix.S_IFREG},
		"relative": {ID: 1, Kind: image.FileGhost, Path: "a", Mode: unix.S_IFREG},
		"dir":      {ID: 1, Kind: image.FileGhost, Path: dir + "/a", Mode: unix.S_IFDIR},
		"no link":  {ID: 1, Kind: image.FileRemap, Path: dir + "/a", Mode: unix.S_IFREG},
	}
	for name, f := range tests {
		h := NewHolder()
		if err := h.Add(&f); err == nil {
			t.Errorf("%s: taken", name)
		}
		h.Abort()
	}
	h := NewHolder()
	defer h.Abort()
	f := newGhost(1, dir+"/a", 1, 0).File
	if err := h.Add(&f); err != nil {
		t.Fatal(err)
	}
	var e *Error
	if err := h.Add(&f); !errors.As(err, &e) || e.ID != 1 {
		t.Errorf("a second record with ID 1: %v", err)
	}
}

// remapSetup makes a file with two names, dir/a and the hidden link
// dir/.h, and returns its remap record for the old name dir/b.
func remapSetup(t *testing.T, dir string) *image.File {
	t.Helper()
	if err := os.WriteFile(dir+"/a", []byte("linked elsewhere"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(dir+"/a", dir+"/.h"); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir+"/a", &st); err != nil {
		t.Fatal(err)
	}
	return &image.File{ID: 3, Kind: image.FileRemap, Path: dir + "/b", RemapPath: dir + "/.h",
		Dev: st.Dev, Ino: st.Ino, Mode: st.Mode, Size: st.Size}
}

func TestRemap(t *testing.T) {
	for _, taken := range []bool{false, true} {
		dir := t.TempDir()
		f := remapSetup(t, dir)
		want := []string{".h", "a"}
		if taken {
			if err := os.WriteFile(dir+"/b", []byte("another b"), 0o644); err != nil {
				t.Fatal(err)
			}
			want = append(want, "b")
		}
		h := NewHolder()
		if err := h.Add(f); err != nil {
			t.Fatal(err)
		}
		if err := h.Seal(); err != nil {
			t.Fatal(err)
		}
		fd := open(t, h, 3, os.O_RDWR)
		if got := linkText(t, fd); got != dir+"/b (deleted)" {
			t.Errorf("taken %v: the link reads %q", taken, got)
		}
		if _, err := fd.WriteAt([]byte("LINKED"), 0); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(dir + "/a"); string(b) != "LINKED elsewhere" {
			t.Errorf("taken %v: a write through the fd shows in the other name as %q", taken, b)
		}
		if got := names(t, dir); !slices.Equal(got, want) {
			t.Errorf("taken %v: names before Close %v, want %v", taken, got, want)
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		if got := names(t, dir); !slices.Equal(got, want[1:]) {
			t.Errorf("taken %v: names after Close %v, want %v", taken, got, want[1:])
		}
		if taken {
			if b, _ := os.ReadFile(dir + "/b"); string(b) != "another b" {
				t.Errorf("the file at b now holds %q", b)
			}
		}
	}
}

func TestRemapAbortKeepsLink(t *testing.T) {
	dir := t.TempDir()
	f := remapSetup(t, dir)
	h := NewHolder()
	if err := h.Add(f); err != nil {
		t.Fatal(err)
	}
	if err := h.Seal(); err != nil {
		t.Fatal(err)
	}
	h.Abort()
	if got := names(t, dir); !slices.Equal(got, []string{".h", "a"}) {
		t.Errorf("names after Abort %v: the hidden link must stay for another restore", got)
	}
}

func TestRemapRefused(t *testing.T) {
	dir := t.TempDir()
	f := remapSetup(t, dir)
	if err := os.Remove(dir + "/.h"); err != nil {
		t.Fatal(err)
	}
	h := NewHolder()
	defer h.Abort()
	if err := h.Add(f); err == nil || !strings.Contains(err.Error(), "restored already") {
		t.Errorf("a gone hidden link: %v", err)
	}
	if err := os.WriteFile(dir+"/.h", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.Add(f); err == nil || !strings.Contains(err.Error(), "not the dumped") {
		t.Errorf("a hidden link to another file: %v", err)
	}
}

func TestGhostClone(t *testing.T) {
	needRoot(t)
	for _, abort := range []bool{false, true} {
		dir := t.TempDir()
		clone := dir + "/.ckpt-ghost-1-00000000"
		if err := os.WriteFile(clone, pattern(0, 3000), 0o600); err != nil {
			t.Fatal(err)
		}
		g := newGhost(1, dir+"/log", 3000, 3000, 0)
		g.Kind, g.ClonePath = image.FileGhostClone, clone
		h := NewHolder()
		if err := h.Add(&g.File); err != nil {
			t.Fatal(err)
		}
		if err := h.Seal(); err != nil {
			t.Fatal(err)
		}
		f := open(t, h, 1, os.O_RDWR)
		if got := linkText(t, f); got != dir+"/log (deleted)" {
			t.Errorf("the link reads %q", got)
		}
		st := fstat(t, f)
		if st.Nlink != 1 || st.Mode != g.Mode || st.Mtim.Nano() != mtime {
			t.Errorf("nlink %d mode %o mtime %d", st.Nlink, st.Mode, st.Mtim.Nano())
		}
		want := []string{}
		if abort {
			h.Abort()
			want = []string{".ckpt-ghost-1-00000000"}
		} else if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		if got := names(t, dir); !slices.Equal(got, want) && len(got)+len(want) > 0 {
			t.Errorf("abort %v: names left %v, want %v", abort, got, want)
		}
	}
	h := NewHolder()
	defer h.Abort()
	g := newGhost(1, "/nonexistent/log", 10, 0)
	g.Kind, g.ClonePath = image.FileGhostClone, "/nonexistent/.ckpt-ghost-1"
	if err := h.Add(&g.File); err == nil || !strings.Contains(err.Error(), "restored already") {
		t.Errorf("a gone clone: %v", err)
	}
}
