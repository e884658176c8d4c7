package ghost

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

func TestShmem(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("opening /proc/self/map_files needs root")
	}
	const size = 1 << 20
	s := NewShmem()
	defer s.Abort()
	f := &image.File{ID: 3, Kind: image.FileShmem, Path: "/dev/zero", Size: size,
		Mode: unix.S_IFREG | 0o777}
	if err := s.Add(f); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("shmem!"), 1000)
	if err := s.Write(&image.GhostData{FileID: 3, Offset: 8192, Data: data}); err != nil {
		t.Fatal(err)
	}
	if !s.Has(3) || s.Has(4) {
		t.Fatal("Has is wrong")
	}
	path, err := s.Path(3)
	if err != nil {
		t.Fatal(err)
	}

	// A task opens the path and maps it: the name, size, contents and
	// holes are those of the object.
	link, err := os.Readlink(path)
	if err != nil || link != "/dev/zero (deleted)" {
		t.Fatalf("the object is named %q (%v), want /dev/zero (deleted)", link, err)
	}
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil || st.Size() != size {
		t.Fatalf("size %v, %v", st, err)
	}
	fd := int(file.Fd())
	if d, err := unix.Seek(fd, 0, unix.SEEK_DATA); err != nil || d != 8192 {
		t.Errorf("first data at %d, %v; want 8192", d, err)
	}
	if h, err := unix.Seek(fd, 8192, unix.SEEK_HOLE); err != nil || h != 8192+8192 {
		t.Errorf("hole after the data at %d, %v; want %d", h, err, 8192+8192)
	}
	m, err := unix.Mmap(fd, 4096, size-4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	if !bytes.Equal(m[4096:4096+len(data)], data) {
		t.Error("the mapping does not show the data written")
	}
	// A write through the mapping is the object's.
	m[0] = 'x'
	b := make([]byte, 1)
	if _, err := file.ReadAt(b, 4096); err != nil || b[0] != 'x' {
		t.Errorf("read %q, %v after a write through the mapping", b, err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Path(3); err == nil {
		t.Error("Path works after Close")
	}
}

func TestShmemRefuses(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("opening /proc/self/map_files needs root")
	}
	s := NewShmem()
	defer s.Abort()
	for _, tc := range []struct {
		f    image.File
		want string
	}{
		{image.File{ID: 1, Kind: image.FileGhost, Size: 4096}, `kind "ghost"`},
		{image.File{ID: 1, Kind: image.FileShmem, Size: 0}, "size 0"},
		{image.File{ID: 1, Kind: image.FileShmem, Size: 1 << 60}, "make the object: mmap"},
	} {
		err := s.Add(&tc.f)
		var ge *Error
		if !errors.As(err, &ge) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Add(%+v): %v, want an error with %q", tc.f, err, tc.want)
		}
	}
	// Not page-aligned: the object gets exactly that size.
	if err := s.Add(&image.File{ID: 2, Kind: image.FileShmem, Size: 5000}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(&image.File{ID: 2, Kind: image.FileShmem, Size: 5000}); err == nil {
		t.Error("a second record with ID 2 was taken")
	}
	for _, d := range []image.GhostData{
		{FileID: 2, Offset: 4096, Data: make([]byte, 905)},
		{FileID: 2, Offset: -1, Data: []byte{1}},
		{FileID: 9, Offset: 0, Data: []byte{1}},
	} {
		if err := s.Write(&d); err == nil {
			t.Errorf("Write of %d bytes at %d to file %d was taken", len(d.Data), d.Offset,
				d.FileID)
		}
	}
	path, _ := s.Path(2)
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil || st.Size != 5000 {
		t.Errorf("object of 5000 bytes: size %d, %v", st.Size, err)
	}
	s.Abort()
	if err := s.Add(&image.File{ID: 5, Kind: image.FileShmem, Size: 4096}); err == nil {
		t.Error("Add works after Abort")
	}
}
