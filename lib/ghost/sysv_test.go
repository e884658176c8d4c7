package ghost

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

func TestMemfd(t *testing.T) {
	needRoot(t)
	s := NewShmem()
	defer s.Abort()
	seals := unix.F_SEAL_GROW | unix.F_SEAL_SHRINK | unix.F_SEAL_SEAL
	f := &image.File{ID: 2, Kind: image.FileMemfd, Path: "/memfd:a name", Size: 3 * 4096,
		Mode: unix.S_IFREG | 0o640, UID: 1234, GID: 5678, Seals: seals}
	if err := s.Add(f); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(&image.GhostData{FileID: 2, Offset: 4096, Data: []byte("page 1")}); err != nil {
		t.Fatal(err)
	}
	path, err := s.Path(2)
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", file.Fd())); err != nil ||
		link != "/memfd:a name (deleted)" {
		t.Errorf("a task's fd reads %q, %v", link, err)
	}
	if got, _ := unix.FcntlInt(file.Fd(), unix.F_GET_SEALS, 0); got != 0 {
		t.Errorf("sealed with %#x before Close", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := unix.FcntlInt(file.Fd(), unix.F_GET_SEALS, 0); got != seals {
		t.Errorf("seals %#x after Close, want %#x", got, seals)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(file.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != f.Mode || st.Uid != f.UID || st.Gid != f.GID || st.Size != f.Size {
		t.Errorf("mode %o owner %d:%d size %d, want %o %d:%d %d", st.Mode, st.Uid, st.Gid,
			st.Size, f.Mode, f.UID, f.GID, f.Size)
	}
	b := make([]byte, 8)
	if _, err := file.ReadAt(b, 4096); err != nil || string(b) != "page 1\x00\x00" {
		t.Errorf("reads %q, %v", b, err)
	}
	if err := file.Truncate(4 * 4096); err == nil {
		t.Error("the sealed memfd grew")
	}
}

// freeShmid returns a shmid that no segment has: one the kernel gave and
// that is removed again.
func freeShmid(t *testing.T) int {
	t.Helper()
	id, err := unix.SysvShmGet(unix.IPC_PRIVATE, 4096, unix.IPC_CREAT|0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
		t.Fatal(err)
	}
	return id
}

func sysvFile(id int, key int32) *image.File {
	return &image.File{ID: 4, Kind: image.FileSysVShm, Path: "/SYSV00000000", Ino: uint64(id),
		Size: 10000, SysV: &image.SysVShm{ID: id, Key: key, Mode: 0o640, UID: 1234, GID: 5678}}
}

func stat(t *testing.T, id int) unix.SysvShmDesc {
	t.Helper()
	var ds unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &ds); err != nil {
		t.Fatalf("shmid %d: %v", id, err)
	}
	return ds
}

// contents attaches segment id and returns a copy of its first n bytes.
func contents(t *testing.T, id, n int) []byte {
	t.Helper()
	mem, err := unix.SysvShmAttach(id, 0, unix.SHM_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.SysvShmDetach(mem)
	return bytes.Clone(mem[:n])
}

// TestSysVMake makes a segment with its shmid, key, owner and mode, fills
// it, marks it for removal at Close, and on Abort removes what it made.
func TestSysVMake(t *testing.T) {
	needRoot(t)
	id := freeShmid(t)
	key := int32(0x6b720000 | os.Getpid()&0xffff)
	s := NewShmem()
	f := sysvFile(id, key)
	f.SysV.Removed = true
	f.Path = fmt.Sprintf("/SYSV%08x", key)
	if err := s.Add(f); err != nil {
		t.Fatal(err)
	}
	defer s.Abort()
	if err := s.Write(&image.GhostData{FileID: 4, Offset: 8192, Data: []byte("data")}); err != nil {
		t.Fatal(err)
	}
	ds := stat(t, id)
	p := ds.Perm
	if p.Key != key || p.Mode != 0o640 || p.Uid != 1234 || p.Gid != 5678 || ds.Segsz != 10000 {
		t.Errorf("segment %d: key %#x mode %o owner %d:%d size %d", id, p.Key, p.Mode, p.Uid,
			p.Gid, ds.Segsz)
	}
	if got := contents(t, id, 8196); !bytes.Equal(got[8192:], []byte("data")) ||
		!bytes.Equal(got[:8192], make([]byte, 8192)) {
		t.Errorf("contents %q", got[8192:])
	}
	mem, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.SysvShmDetach(mem)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if ds := stat(t, id); ds.Perm.Mode&shmDest == 0 || ds.Perm.Key != 0 {
		t.Errorf("after Close: mode %o key %#x, want it marked for removal", ds.Perm.Mode,
			ds.Perm.Key)
	}
}

// TestSysVAbort: Abort removes the segment Add made.
func TestSysVAbort(t *testing.T) {
	needRoot(t)
	id := freeShmid(t)
	s := NewShmem()
	if err := s.Add(sysvFile(id, 0)); err != nil {
		t.Fatal(err)
	}
	stat(t, id)
	s.Abort()
	var ds unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &ds); err == nil {
		t.Errorf("segment %d is still there after Abort", id)
	}
}

// TestSysVReuse: the dumped segment, still there and attached by no one,
// is taken and emptied; one attached is waited for, then refused; another
// segment at the shmid is refused.
func TestSysVReuse(t *testing.T) {
	needRoot(t)
	key := int32(0x6b730000 | os.Getpid()&0xffff)
	id, err := unix.SysvShmGet(int(key), 10000, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	mem, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	copy(mem, bytes.Repeat([]byte("old"), 3000))

	s := NewShmem()
	s.SysVWait = 100 * time.Millisecond
	err = s.Add(sysvFile(id, key))
	if err == nil || !strings.Contains(err.Error(), "attached by 1") {
		t.Fatalf("Add of an attached segment: %v", err)
	}
	unix.SysvShmDetach(mem)

	other := sysvFile(id, key+1)
	if err := s.Add(other); err == nil || !strings.Contains(err.Error(), "another segment") {
		t.Fatalf("Add of a segment at a taken shmid: %v", err)
	}

	if err := s.Add(sysvFile(id, key)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(&image.GhostData{FileID: 4, Offset: 4096, Data: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	s.Abort() // not made: stays
	got := contents(t, id, 10000)
	want := make([]byte, 10000)
	copy(want[4096:], "new")
	if !bytes.Equal(got, want) {
		t.Errorf("the segment holds %q... at 0 and %q at 4096", got[:6], got[4096:4102])
	}
	if ds := stat(t, id); ds.Perm.Mode != 0o640 || ds.Perm.Uid != 1234 {
		t.Errorf("mode %o uid %d", ds.Perm.Mode, ds.Perm.Uid)
	}
}
