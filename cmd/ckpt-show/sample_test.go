package main

import (
	"bytes"
	"testing"

	"github.com/ckpt/ckpt/lib/archive"
	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
	"github.com/vmihailenco/msgpack/v5"
)

// The sample is a small stream as the full pipeline would write it for a
// shell (pid 100) waiting for its child sleep (pid 101, two threads), with
// a ghost file, a remap, a pipe of a file kind this tree does not know, an
// fd left unresolved and a record of a kind this tree does not know.

const mib = 1 << 20

// regs returns x86_64 registers with rax, orig_rax and rip set.
func regs(rax, origRax int64, rip uint64) []uint64 {
	r := make([]uint64, 27)
	r[10], r[15], r[16] = uint64(rax), uint64(origRax), rip
	return r
}

// fill returns n bytes of a pattern that starts at seed.
func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func sampleHeader() *image.Header {
	return &image.Header{
		Magic: image.Magic, Version: image.Version, Arch: "amd64", PageSize: 4096,
		Kernel: "6.18.0-test", Stages: []string{"ckpt-scan", "ckpt-files", "ckpt-mem"},
		RootPID: 100,
	}
}

func sampleFiles() []any {
	return []any{
		&image.File{ID: 1, Kind: image.FileLinked, Path: "/usr/bin/dash", Dev: 2049,
			Ino: 1001, Mode: 0o100755, Size: 125688, MtimeNs: 1700000000000000000},
		&image.File{ID: 2, Kind: image.FileDevice, Path: "/dev/null", Dev: 5, Ino: 4,
			Mode: 0o20666, Rdev: 0x103},
		&image.File{ID: 3, Kind: image.FileGhost, Path: "/tmp/app.log", Dev: 2049,
			Ino: 2002, Mode: 0o100644, Size: 12288, UID: 1000, GID: 1000},
		&image.GhostData{FileID: 3, Offset: 0, Data: fill(4096, 1)},
		&image.GhostData{FileID: 3, Offset: 8192, Data: fill(100, 2)},
		&image.File{ID: 4, Kind: image.FileRemap, Path: "/var/tmp/state", Dev: 2049,
			Ino: 3003, Mode: 0o100600, Size: 5, RemapPath: "/var/tmp/.ckpt-remap-3003"},
		&image.File{ID: 5, Kind: image.FileLinked, Path: "/usr/lib/libc.so.6", Dev: 2049,
			Ino: 4004, Mode: 0o100755, Size: 2 * mib},
		&image.File{ID: 6, Kind: "pipe", Path: "pipe:[4242]", Dev: 13, Ino: 4242,
			Mode: 0o10600},
	}
}

func shellTask() *image.Task {
	return &image.Task{
		PID: 100, PPID: 1, PGID: 100, SID: 100, StartTime: 5000, Comm: "sh",
		Exe: "/usr/bin/dash", Cwd: "/root", Root: "/", Umask: 0o22, ExeFileID: 1,
		Threads: []image.Thread{{TID: 100, Regs: regs(-512, 61, 0x7ffff7e4a1b6),
			Xstate: fill(8, 3)}},
		Vmas: []image.Vma{
			{Start: 0x555555554000, End: 0x555555558000, Prot: 5, Kind: image.VmaFile,
				Name: "/usr/bin/dash", FileID: 1},
			{Start: 0x555555558000, End: 0x555555559000, Prot: 3, Kind: image.VmaFile,
				Name: "/usr/bin/dash", Pgoff: 0x4000, FileID: 1},
			{Start: 0x555555559000, End: 0x55555557a000, Prot: 3, Kind: image.VmaAnon,
				Name: "[heap]"},
			{Start: 0x7ffff7d80000, End: 0x7ffff7da8000, Prot: 1, Kind: image.VmaFile,
				Name: "/usr/lib/libc.so.6", FileID: 5},
			{Start: 0x7ffff7fc1000, End: 0x7ffff7fc5000, Prot: 1, Kind: image.VmaVvar,
				Name: "[vvar]"},
			{Start: 0x7ffff7fc5000, End: 0x7ffff7fc7000, Prot: 5, Kind: image.VmaVdso,
				Name: "[vdso]"},
			{Start: 0x7ffffffde000, End: 0x7ffffffff000, Prot: 3, Kind: image.VmaAnon,
				Name: "[stack]", Flags: []string{"gd"}},
		},
		Children: []int{101},
	}
}

func sleepTask() *image.Task {
	return &image.Task{
		PID: 101, PPID: 100, PGID: 100, SID: 100, StartTime: 5100, Comm: "sleep",
		Exe: "/usr/bin/sleep", Cwd: "/root", Root: "/",
		Threads: []image.Thread{
			{TID: 101, Regs: regs(-516, 230, 0x7ffff7e5c2a0)},
			{TID: 102, Regs: regs(0, -1, 0x555555556010)},
		},
		Vmas: []image.Vma{
			{Start: 0x555555559000, End: 0x55555555a000, Prot: 3, Shared: true,
				Kind: image.VmaAnon, Name: "/dev/zero (deleted)"},
			{Start: 0x7ffffffde000, End: 0x7ffffffff000, Prot: 3, Kind: image.VmaAnon,
				Name: "[stack]"},
		},
	}
}

func nullFds(pid int) []any {
	return []any{
		&image.Fd{PID: pid, Fd: 0, Flags: 0o100000, Link: "/dev/null", Dev: 5, Ino: 4,
			Mode: 0o20666, Nlink: 1, Rdev: 0x103, FileID: 2},
		&image.Fd{PID: pid, Fd: 1, Flags: 0o100001, Link: "/dev/null", Dev: 5, Ino: 4,
			Mode: 0o20666, Nlink: 1, Rdev: 0x103, FileID: 2, Shared: true},
		&image.Fd{PID: pid, Fd: 2, Flags: 0o100001, Link: "/dev/null", Dev: 5, Ino: 4,
			Mode: 0o20666, Nlink: 1, Rdev: 0x103, FileID: 2, Shared: true},
	}
}

// cgroup is the body of a record of a kind this tree does not know.
type cgroup struct {
	PID  int    `msgpack:"pid"`
	Path string `msgpack:"path"`
}

// sampleRecords returns the records after the header, in stream order.
func sampleRecords() []stream.Record {
	var recs []stream.Record
	add := func(kind string, vs ...any) {
		for _, v := range vs {
			body, err := msgpack.Marshal(v)
			if err != nil {
				panic(err)
			}
			recs = append(recs, stream.Record{Kind: kind, Body: body})
		}
	}
	for _, v := range sampleFiles() {
		kind := image.KindFile
		if _, ok := v.(*image.GhostData); ok {
			kind = image.KindGhostData
		}
		add(kind, v)
	}
	add(image.KindTask, shellTask())
	add(image.KindPages,
		&image.Pages{PID: 100, Addr: 0x555555558000, Data: fill(4096, 4)},
		&image.Pages{PID: 100, Addr: 0x555555559000, Data: fill(8192, 5)})
	add(image.KindFd, nullFds(100)...)
	add(image.KindFd,
		&image.Fd{PID: 100, Fd: 3, Flags: 0o102001, Pos: 8292, Link: "/tmp/app.log (deleted)",
			Dev: 2049, Ino: 2002, Mode: 0o100644, Size: 12288, FileID: 3},
		&image.Fd{PID: 100, Fd: 4, Flags: 0o2100002, Pos: 2, Link: "/var/tmp/state (deleted)",
			Dev: 2049, Ino: 3003, Mode: 0o100600, Nlink: 1, Size: 5, FileID: 4},
		&image.Fd{PID: 100, Fd: 5, Flags: 0o104000, Link: "pipe:[4242]", Dev: 13, Ino: 4242,
			Mode: 0o10600, Nlink: 1, FileID: 6},
		&image.Fd{PID: 100, Fd: 6, Flags: 0o2, Link: "socket:[99]", Dev: 8, Ino: 99,
			Mode: 0o140777, Nlink: 1})
	add(image.KindTask, sleepTask())
	add(image.KindPages, &image.Pages{PID: 101, Addr: 0x555555559000, Data: fill(4096, 6)})
	add(image.KindFd, nullFds(101)...)
	add("cgroup", &cgroup{PID: 101, Path: "/sys/fs/cgroup/app"})
	return recs
}

// writeStream writes h and recs as a record stream to sw, with the end
// record when end is true.
func writeStream(t *testing.T, sw *stream.Writer, h *image.Header, recs []stream.Record,
	end bool) {
	t.Helper()
	must(t, sw.WriteHeader(h))
	for _, rec := range recs {
		must(t, sw.WriteRecord(rec))
	}
	if end {
		must(t, sw.End())
	} else {
		must(t, sw.Flush())
	}
}

// sampleStream returns the sample as a record stream.
func sampleStream(t *testing.T) []byte {
	var buf bytes.Buffer
	writeStream(t, stream.NewWriter(&buf), sampleHeader(), sampleRecords(), true)
	return buf.Bytes()
}

// sampleArchive returns the sample packed into an archive.
func sampleArchive(t *testing.T) []byte {
	var buf bytes.Buffer
	aw := archive.NewWriter(&buf)
	writeStream(t, stream.NewWriter(aw), sampleHeader(), sampleRecords(), true)
	must(t, aw.Close())
	return buf.Bytes()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
