package files

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

const testShm = 1

// fakeFS is a lookup over a fixed table of paths.
type fakeFS map[string]stat

func (fs fakeFS) lstat(path string) (stat, error) {
	if st, ok := fs[path]; ok {
		return st, nil
	}
	if path == "/denied" {
		return stat{}, &os.PathError{Op: "lstat", Path: path, Err: unix.EACCES}
	}
	return stat{}, &os.PathError{Op: "lstat", Path: path, Err: unix.ENOENT}
}

func reg(ino, nlink uint64) stat {
	return stat{Dev: 10, Ino: ino, Mode: unix.S_IFREG | 0o644, Nlink: nlink}
}

func chr(ino uint64, major, minor uint32) stat {
	return stat{Dev: 5, Ino: ino, Mode: unix.S_IFCHR | 0o666, Nlink: 1,
		Rdev: unix.Mkdev(major, minor)}
}

func TestClassify(t *testing.T) {
	fs := fakeFS{
		"/a":                   reg(1, 1),
		"/b (deleted)":         reg(2, 1), // really named so
		"/c":                   reg(3, 2), // unlinked and linked again at /c
		"/other":               reg(99, 1),
		"/d":                   {Dev: 10, Ino: 4, Mode: unix.S_IFDIR | 0o755, Nlink: 2},
		"/dev/null":            chr(20, 1, 3),
		"/dev/zero":            chr(21, 1, 5),
		"/dev/pts/0":           chr(22, 136, 0),
		"/dev/ttyS0":           chr(23, 4, 64),
		"/dev/kmsg":            chr(24, 1, 11),
		"/dev/sda":             {Dev: 5, Ino: 25, Mode: unix.S_IFBLK | 0o660, Rdev: unix.Mkdev(8, 0)},
		"/fifo":                {Dev: 10, Ino: 26, Mode: unix.S_IFIFO | 0o644, Nlink: 1},
		"/link":                {Dev: 10, Ino: 27, Mode: unix.S_IFLNK | 0o777, Nlink: 1},
		"/memfd:x (deleted)":   reg(50, 1), // a real file, unrelated to the memfd below
		"/dev/zero (deleted)x": reg(51, 1),
	}
	tests := []struct {
		name  string
		live  stat
		names []string
		kind  string
		path  string
		err   string
	}{
		{"linked", reg(1, 1), []string{"/a"}, image.FileLinked, "/a", ""},
		{"named deleted", reg(2, 1), []string{"/b (deleted)"}, image.FileLinked, "/b (deleted)", ""},
		{"relinked", reg(3, 2), []string{"/c (deleted)"}, image.FileLinked, "/c", ""},
		{"second name", reg(1, 2), []string{"/gone (deleted)", "/a"}, image.FileLinked, "/a", ""},
		{"as is first", reg(2, 1), []string{"/b (deleted) (deleted)", "/b (deleted)"},
			image.FileLinked, "/b (deleted)", ""},
		{"directory", stat{Dev: 10, Ino: 4, Mode: unix.S_IFDIR | 0o755}, []string{"/d"},
			image.FileLinked, "/d", ""},
		{"null", chr(20, 1, 3), []string{"/dev/null"}, image.FileDevice, "/dev/null", ""},
		{"zero", chr(21, 1, 5), []string{"/dev/zero"}, image.FileDevice, "/dev/zero", ""},
		{"ghost", reg(5, 0), []string{"/e (deleted)"}, image.FileGhost, "/e", ""},
		{"ghost over another file", reg(6, 0), []string{"/other (deleted)"}, image.FileGhost,
			"/other", ""},
		{"ghost named deleted", reg(10, 0), []string{"/b (deleted) (deleted)"}, image.FileGhost,
			"/b (deleted)", ""},
		{"ghost no suffix", reg(11, 0), []string{"/h"}, image.FileGhost, "/h", ""},
		{"remap", reg(7, 1), []string{"/f (deleted)"}, image.FileRemap, "/f", ""},
		{"replaced", reg(8, 1), []string{"/other"}, image.FileRemap, "/other", ""},
		{"remap over another file", reg(12, 1), []string{"/other (deleted)"}, image.FileRemap,
			"/other", ""},
		{"pipe", stat{Dev: 15, Ino: 9, Mode: unix.S_IFIFO | 0o600}, []string{"pipe:[9]"},
			image.FilePipe, "pipe:[9]", ""},
		{"pipe of another inode", stat{Dev: 15, Ino: 9, Mode: unix.S_IFIFO | 0o600},
			[]string{"pipe:[8]"}, "", "", "named pipes without a path are not supported yet"},
		{"socket", stat{Dev: 8, Ino: 9, Mode: unix.S_IFSOCK | 0o777}, []string{"socket:[9]"},
			"", "", "sockets are not supported yet"},
		{"eventfd", stat{Dev: 16, Ino: 17, Mode: 0o600}, []string{"anon_inode:[eventfd]"},
			"", "", "anon inodes are not supported yet"},
		{"namespace", stat{Dev: 4, Ino: 4026531840, Mode: unix.S_IFREG | 0o444},
			[]string{"net:[4026531840]"}, "", "", "kernel objects without a path"},
		{"pts", chr(22, 136, 0), []string{"/dev/pts/0"}, "", "", "terminals"},
		{"serial", chr(23, 4, 64), []string{"/dev/ttyS0"}, "", "", "terminals"},
		{"kmsg", chr(24, 1, 11), []string{"/dev/kmsg"}, "", "", "character devices"},
		{"block", stat{Dev: 5, Ino: 25, Mode: unix.S_IFBLK | 0o660}, []string{"/dev/sda"},
			"", "", "block devices"},
		{"fifo", stat{Dev: 10, Ino: 26, Mode: unix.S_IFIFO | 0o644}, []string{"/fifo"},
			image.FileFifo, "/fifo", ""},
		{"removed fifo", stat{Dev: 10, Ino: 29, Mode: unix.S_IFIFO | 0o644},
			[]string{"/fifo (deleted)"}, "", "", "removed named pipes are not supported yet"},
		{"fifo replaced", stat{Dev: 10, Ino: 29, Mode: unix.S_IFIFO | 0o644}, []string{"/fifo"},
			"", "", "removed named pipes are not supported yet"},
		{"symlink", stat{Dev: 10, Ino: 27, Mode: unix.S_IFLNK | 0o777}, []string{"/link"},
			"", "", "symbolic links"},
		{"removed dir", stat{Dev: 10, Ino: 28, Mode: unix.S_IFDIR}, []string{"/g (deleted)"},
			"", "", "removed directories"},
		{"memfd", stat{Dev: testShm, Ino: 50, Mode: unix.S_IFREG | 0o777},
			[]string{"/memfd:x (deleted)"}, image.FileMemfd, "/memfd:x", ""},
		{"memfd named deleted", stat{Dev: testShm, Ino: 53, Mode: unix.S_IFREG | 0o777},
			[]string{"/memfd:x (deleted) (deleted)"}, image.FileMemfd, "/memfd:x (deleted)", ""},
		{"shared anon", stat{Dev: testShm, Ino: 51, Mode: unix.S_IFREG | 0o777},
			[]string{"/dev/zero (deleted)"}, image.FileShmem, "/dev/zero", ""},
		{"sysv", stat{Dev: testShm, Ino: 52, Mode: unix.S_IFREG | 0o777},
			[]string{"/SYSV00000000 (deleted)"}, image.FileSysVShm, "/SYSV00000000", ""},
		{"sysv zero", stat{Dev: testShm, Ino: 0, Mode: unix.S_IFREG | 0o640},
			[]string{"/SYSV6b700001 (deleted)"}, image.FileSysVShm, "/SYSV6b700001", ""},
		{"lookup fails", reg(9, 1), []string{"/denied"}, "", "", "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := classify(tt.live, tt.names, fs.lstat, testShm)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %+v, %v; want error %q", v, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Kind != tt.kind || v.Path != tt.path {
				t.Fatalf("got %+v, want kind %q path %q", v, tt.kind, tt.path)
			}
		})
	}
}

func TestNotSupportedIs(t *testing.T) {
	_, err := classify(stat{Mode: unix.S_IFSOCK}, []string{"socket:[1]"}, fakeFS{}.lstat, testShm)
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("%v does not wrap ErrNotSupported", err)
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Use{UseFd, 123, 4, 0, 0}, "socket:[5678]", notSupported("sockets")},
			"pid 123 fd 4: socket:[5678]: sockets are not supported yet"},
		{&Error{Use{UseFd, 12, 0, 0, 0}, "pipe:[34]", outsideError(readEnd,
			[]holder{{pid: 56, comm: "sh", fd: 1, ends: writeEnd}})},
			"pid 12 fd 0: pipe:[34]: the other end is held by pid 56 (sh) outside the dumped tree"},
		{&Error{Use{UseFd, 12, 0, 0, 0}, "pipe:[34]", outsideError(readEnd,
			[]holder{{pid: 55, comm: "cat", ends: readEnd}, {pid: 56, comm: "sh", ends: writeEnd}})},
			"pid 12 fd 0: pipe:[34]: the other end is held by pid 56 (sh) outside the dumped tree"},
		{&Error{Use{UseFd, 12, 3, 0, 0}, "/run/fifo", outsideError(readEnd|writeEnd,
			[]holder{{pid: 55, comm: "cat", ends: readEnd}})},
			"pid 12 fd 3: /run/fifo: the read end is also held by pid 55 (cat) outside the dumped tree"},
		{&Error{Use{UseMapping, 7, 0, 0x7f00, 0x7f10}, "/x (deleted)", notSupported("unlinked files")},
			"pid 7 mapping 7f00-7f10: /x (deleted): unlinked files are not supported yet"},
		{&Error{Use{UseExe, 7, 0, 0, 0}, "/bin/x", ErrChanged},
			"pid 7 exe: /bin/x: changed since the scan"},
		{&Error{Use{PID: 7}, "", ErrChanged}, "pid 7: changed since the scan"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestProcPath(t *testing.T) {
	tests := map[Use]string{
		{Kind: UseFd, PID: 3, Fd: 9}:                               "/proc/3/fd/9",
		{Kind: UseMapping, PID: 3, Start: 0x400000, End: 0x401000}: "/proc/3/map_files/400000-401000",
		{Kind: UseExe, PID: 3}:                                     "/proc/3/exe",
	}
	for u, want := range tests {
		if got := procPath(u); got != want {
			t.Errorf("%v: got %s, want %s", u, got, want)
		}
	}
}
