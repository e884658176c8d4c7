package pagestest

import (
	"testing"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

func TestParseMapsLine(t *testing.T) {
	rw := unix.PROT_READ | unix.PROT_WRITE
	for _, tc := range []struct {
		line string
		want image.Vma
	}{
		{"55d0c2a00000-55d0c2a21000 rw-p 00000000 00:00 0                          [heap]\n",
			image.Vma{Start: 0x55d0c2a00000, End: 0x55d0c2a21000, Prot: rw, Kind: "anon",
				Name: "[heap]"}},
		{"7f0000000000-7f0000001000 r-xp 00002000 fe:00 247026   /usr/bin/a b  (deleted)\n",
			image.Vma{Start: 0x7f0000000000, End: 0x7f0000001000,
				Prot: unix.PROT_READ | unix.PROT_EXEC, Kind: "file", Pgoff: 0x2000,
				Ino: 247026, Name: "/usr/bin/a b  (deleted)"}},
		{"7f0000002000-7f0000003000 rw-s 00000000 00:01 1234   /dev/zero (deleted)\n",
			image.Vma{Start: 0x7f0000002000, End: 0x7f0000003000, Prot: rw, Shared: true,
				Kind: "anon", Ino: 1234, Name: "/dev/zero (deleted)"}},
		{"7f0000004000-7f0000005000 ---p 00000000 00:00 0 \n",
			image.Vma{Start: 0x7f0000004000, End: 0x7f0000005000, Kind: "anon"}},
		{"7ffd1000-7ffd3000 r-xp 00000000 00:00 0                          [vdso]",
			image.Vma{Start: 0x7ffd1000, End: 0x7ffd3000, Prot: unix.PROT_READ | unix.PROT_EXEC,
				Kind: "vdso", Name: "[vdso]"}},
	} {
		got, err := parseMapsLine(tc.line)
		if err != nil {
			t.Fatalf("%q: %v", tc.line, err)
		}
		if got.Start != tc.want.Start || got.End != tc.want.End || got.Prot != tc.want.Prot ||
			got.Shared != tc.want.Shared || got.Kind != tc.want.Kind ||
			got.Name != tc.want.Name || got.Pgoff != tc.want.Pgoff || got.Ino != tc.want.Ino {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.line, got, tc.want)
		}
	}
	if _, err := parseMapsLine("zz-1 rw-p 0 00:00 0\n"); err == nil {
		t.Error("a bad address parsed")
	}
}
