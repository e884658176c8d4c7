package procfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// The captures in testdata/ come from a python3 (PID 5883) that mapped a
// file under a path with spaces, a deleted file, shared anonymous memory
// and a memfd, and from a sleep (PID 5885).

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		file string
		want Stat
	}{
		{"python3/stat", Stat{
			PID: 5883, Comm: "python3", State: 'S', PPID: 1, PGRP: 5883, Session: 5883,
			Flags: 4194304, NumThreads: 1, StartTime: 46660,
			StartCode: 94773692841984, EndCode: 94773692842325, StartStack: 140720377099600,
			StartData: 94773692853680, EndData: 94773692854296, StartBrk: 94773842169856,
			ArgStart: 140720377105024, ArgEnd: 140720377105073,
			EnvStart: 140720377105073, EnvEnd: 140720377106383,
		}},
		{"stat.weirdcomm", Stat{
			PID: 6085, Comm: "a) b (c) 9 Z", State: 'R', PPID: 6060, PGRP: 6060, Session: 4995,
			Flags: 4194304, NumThreads: 1, StartTime: 48300,
			StartCode: 94403066183680, EndCode: 94403066184021, StartStack: 140726822317072,
			StartData: 94403066195376, EndData: 94403066195992, StartBrk: 94403353288704,
			ArgStart: 140726822324740, ArgEnd: 140726822324888,
			EnvStart: 140726822324888, EnvEnd: 140726822326223,
		}},
	}
	for _, tt := range tests {
		got, err := ParseStat(testdata(t, tt.file))
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if !reflect.DeepEqual(*got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.file, *got, tt.want)
		}
	}
}

func TestParseStatKinds(t *testing.T) {
	k, err := ParseStat(testdata(t, "stat.kthread"))
	if err != nil {
		t.Fatal(err)
	}
	if !k.KernelThread() || k.PID != 2 {
		t.Errorf("kthreadd: KernelThread() = %v, pid %d", k.KernelThread(), k.PID)
	}
	z, err := ParseStat(testdata(t, "stat.zombie"))
	if err != nil {
		t.Fatal(err)
	}
	if z.State != 'Z' || z.KernelThread() {
		t.Errorf("zombie: state %c, KernelThread() = %v", z.State, z.KernelThread())
	}
	z3, err := ParseStat(testdata(t, "stat.zombie-exit3"))
	if err != nil || z3.ExitCode != 3<<8 || z.ExitCode != 0 {
		t.Errorf("zombie exit codes: %v, %v; %v", z3, z.ExitCode, err)
	}
	p, err := ParseStat(testdata(t, "python3/stat"))
	if err != nil {
		t.Fatal(err)
	}
	if mm := p.MM(); mm.StartBrk != 94773842169856 || mm.Brk != 0 || mm.EnvEnd != 140720377106383 {
		t.Errorf("MM() = %+v", mm)
	}
}

func TestParseStatBad(t *testing.T) {
	for _, in := range []string{
		"", "12", "12 (x", "x (sh) S 1", "12 (sh) S 1 2 3",
		"12 (sh) SS" + strings.Repeat(" 1", 50),
		"12 (sh) S" + strings.Repeat(" 1", 18) + " x" + strings.Repeat(" 1", 32),
	} {
		_, err := ParseStat([]byte(in))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("ParseStat(%q) = %v, want a ParseError", in, err)
		}
	}
}

func TestParseStatus(t *testing.T) {
	s, err := ParseStatus(bytes.NewReader(testdata(t, "python3/status")))
	if err != nil {
		t.Fatal(err)
	}
	want := Status{
		Name: "python3", Umask: 0o22, State: 'S', Tgid: 5883, PID: 5883, PPID: 1,
		Threads: 1, SigIgn: 0x1001006, SigCgt: 0x200,
		CapPrm: 0x1fffeffffff, CapEff: 0x1fffeffffff, CapBnd: 0x1fffeffffff,
	}
	if !statusEqual(s, &want) {
		t.Errorf("got  %+v\nwant %+v", *s, want)
	}

	g, err := ParseStatus(bytes.NewReader(testdata(t, "status.groups")))
	if err != nil {
		t.Fatal(err)
	}
	c := g.Creds()
	if c.UID != [4]uint32{1000, 1001, 1002, 1001} || c.GID != [4]uint32{100, 101, 102, 101} {
		t.Errorf("uid %v gid %v", c.UID, c.GID)
	}
	if !slices.Equal(c.Groups, []uint32{4, 27, 1000}) || c.CapEff != 0 || c.CapBnd != 0x1fffeffffff {
		t.Errorf("creds %+v", c)
	}
}

func statusEqual(a, b *Status) bool { return reflect.DeepEqual(a, b) }

func TestParseStatusBad(t *testing.T) {
	for _, in := range []string{
		"", "Name:\tx\n", "Name x\n",
		"Name:\tx\nTgid:\t1\nPid:\t1\nUid:\t0 0 0\nGid:\t0 0 0 0\n",
		"Name:\tx\nTgid:\t1\nPid:\t1\nUid:\t0 0 0 0\nGid:\t0 0 0 0\nUmask:\t9\n",
	} {
		if _, err := ParseStatus(strings.NewReader(in)); err == nil {
			t.Errorf("ParseStatus(%q) succeeded", in)
		}
	}
}

func findVma(vmas []image.Vma, name string) *image.Vma {
	for i := range vmas {
		if vmas[i].Name == name {
			return &vmas[i]
		}
	}
	return nil
}

func TestParseMaps(t *testing.T) {
	vmas, err := ParseMaps(bytes.NewReader(testdata(t, "python3/maps")))
	if err != nil {
		t.Fatal(err)
	}
	if len(vmas) != 113 {
		t.Errorf("%d mappings, want 113", len(vmas))
	}
	rw := unix.PROT_READ | unix.PROT_WRITE
	disk := unix.Mkdev(0xfe, 0)
	want := []image.Vma{
		{Start: 0x7f9c22ea1000, End: 0x7f9c22ea3000, Prot: rw, Shared: true, Kind: image.VmaFile,
			Name: "/tmp/cap/dir with spaces/data file.bin", Dev: disk, Ino: 9978066},
		{Start: 0x7f9c22dba000, End: 0x7f9c22dbb000, Prot: unix.PROT_READ, Kind: image.VmaFile,
			Name: "/tmp/cap/gone.bin (deleted)", Dev: disk, Ino: 9978082},
		{Start: 0x7f9c22251000, End: 0x7f9c22252000, Prot: rw, Shared: true, Kind: image.VmaAnon,
			Name: "/dev/zero (deleted)", Dev: unix.Mkdev(0, 1), Ino: 1025},
		{Start: 0x7f9c22250000, End: 0x7f9c22251000, Prot: rw, Shared: true, Kind: image.VmaFile,
			Name: "/memfd:mybuf (deleted)", Dev: unix.Mkdev(0, 1), Ino: 1026},
		{Start: 0x563241325000, End: 0x5632414b4000, Prot: rw, Kind: image.VmaAnon, Name: "[heap]"},
		{Start: 0x7ffc04150000, End: 0x7ffc04171000, Prot: rw, Kind: image.VmaAnon, Name: "[stack]"},
		{Start: 0x7f9c22eb2000, End: 0x7f9c22eb4000, Prot: unix.PROT_READ | unix.PROT_EXEC,
			Kind: image.VmaVdso, Name: "[vdso]"},
		{Start: 0x7f9c22eac000, End: 0x7f9c22eb0000, Prot: unix.PROT_READ, Kind: image.VmaVvar,
			Name: "[vvar]"},
		{Start: 0x7f9c22eb0000, End: 0x7f9c22eb2000, Prot: unix.PROT_READ,
			Kind: image.VmaVvarVclock, Name: "[vvar_vclock]"},
		{Start: 0xffffffffff600000, End: 0xffffffffff601000, Prot: unix.PROT_EXEC,
			Kind: image.VmaVsyscall, Name: "[vsyscall]"},
		{Start: 0x7f9c22644000, End: 0x7f9c2279a000, Prot: unix.PROT_READ | unix.PROT_EXEC,
			Kind: image.VmaFile, Name: "/usr/lib/x86_64-linux-gnu/libc.so.6", Pgoff: 0x26000,
			Dev: disk, Ino: 326269},
	}
	for _, w := range want {
		var got *image.Vma
		for i := range vmas {
			if vmas[i].Start == w.Start {
				got = &vmas[i]
			}
		}
		if got == nil {
			t.Errorf("no mapping at %#x", w.Start)
			continue
		}
		if !vmaEqual(*got, w) {
			t.Errorf("got  %+v\nwant %+v", *got, w)
		}
	}
	if v := vmas[6]; v.Name != "" || v.Kind != image.VmaAnon || v.Ino != 0 {
		t.Errorf("unnamed anonymous mapping: %+v", v)
	}
}

func vmaEqual(a, b image.Vma) bool { return reflect.DeepEqual(a, b) }

// TestParseMapsSysV: SysV segment 0 has inode 0, and is a file all the
// same; anonymous memory has no path.
func TestParseMapsSysV(t *testing.T) {
	for _, tt := range []struct{ line, kind string }{
		{"7eff91f9a000-7eff91f9d000 r--s 00000000 00:01 0          /SYSV1234abcd (deleted)",
			image.VmaFile},
		{"7eff91f9a000-7eff91f9d000 rw-s 00000000 00:01 32768      /SYSV00000000 (deleted)",
			image.VmaFile},
		{"7eff91f9a000-7eff91f9d000 rw-s 00000000 00:00 0          [anon_shmem:x]", image.VmaAnon},
		{"7eff91f9a000-7eff91f9d000 rw-p 00000000 00:00 0          [anon:x]", image.VmaAnon},
	} {
		v, err := ParseMapsLine(tt.line)
		if err != nil || v.Kind != tt.kind {
			t.Errorf("%q: kind %q, %v; want %q", tt.line, v.Kind, err, tt.kind)
		}
	}
}

func TestParseMapsLineEdges(t *testing.T) {
	file := "7f0000000000-7f0000001000 r--p 00000000 fe:00 12" + strings.Repeat(" ", 26)
	anon := "7f0000000000-7f0000001000 rw-p 00000000 00:00 0" + strings.Repeat(" ", 27)
	tests := []struct {
		line, name string
	}{
		{file + "/tmp/trailing space ", "/tmp/trailing space "},
		{file + "/tmp/x (deleted) (deleted)", "/tmp/x (deleted) (deleted)"},
		{file + "/tmp/new\\012line", "/tmp/new\\012line"},
		{anon + "[anon:my name]", "[anon:my name]"},
		{"7f0000000000-7f0000001000 rw-p 00000000 00:00 0 ", ""},
		{"7f0000000000-7f0000001000 rw-p 00000000 00:00 0", ""},
	}
	for _, tt := range tests {
		v, err := ParseMapsLine(tt.line)
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		if v.Name != tt.name {
			t.Errorf("%q: name %q, want %q", tt.line, v.Name, tt.name)
		}
	}
	for _, bad := range []string{
		"", "7f0000000000 r--p 00000000 fe:00 12",
		"7f0000001000-7f0000000000 r--p 00000000 fe:00 12",
		"7f0000000000-7f0000001000 r--q 00000000 fe:00 12",
		"7f0000000000-7f0000001000 r--p 00000000 fe00 12",
		"7f0000000000-7f0000001000 r--p 00000000 fe:00 x",
		"7f0000000000-7f0000001000 rz-p 00000000 fe:00 1",
	} {
		if _, err := ParseMapsLine(bad); err == nil {
			t.Errorf("ParseMapsLine(%q) succeeded", bad)
		}
	}
}

func TestParseSmaps(t *testing.T) {
	for _, dir := range []string{"python3", "sleep"} {
		maps, err := ParseMaps(bytes.NewReader(testdata(t, dir+"/maps")))
		if err != nil {
			t.Fatal(err)
		}
		smaps, err := ParseSmaps(bytes.NewReader(testdata(t, dir+"/smaps")))
		if err != nil {
			t.Fatal(err)
		}
		if len(smaps) != len(maps) {
			t.Fatalf("%s: %d mappings in smaps, %d in maps", dir, len(smaps), len(maps))
		}
		for i := range maps {
			if len(smaps[i].Flags) == 0 {
				t.Errorf("%s: no VmFlags for %+v", dir, smaps[i])
			}
			smaps[i].Flags = nil
			if !vmaEqual(maps[i], smaps[i]) {
				t.Errorf("%s: smaps %+v\nmaps %+v", dir, smaps[i], maps[i])
			}
		}
		smaps, _ = ParseSmaps(bytes.NewReader(testdata(t, dir+"/smaps")))
		stack := findVma(smaps, "[stack]")
		if stack == nil || !slices.Contains(stack.Flags, "gd") {
			t.Errorf("%s: [stack] %+v has no gd flag", dir, stack)
		}
	}
	if _, err := ParseSmaps(strings.NewReader("VmFlags: rd\n")); err == nil {
		t.Error("VmFlags before a mapping: no error")
	}
}

func TestParseAuxv(t *testing.T) {
	a, err := ParseAuxv(testdata(t, "python3/auxv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 46 || a[len(a)-2] != 0 || a[len(a)-1] != 0 {
		t.Fatalf("auxv of %d words, ending %v", len(a), a[len(a)-2:])
	}
	const atPagesz = 6
	if a[6] != atPagesz || a[7] != 4096 {
		t.Errorf("pair 3 = %d %d, want AT_PAGESZ 4096", a[6], a[7])
	}
	for _, bad := range [][]byte{make([]byte, 15), {1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := ParseAuxv(bad); err == nil {
			t.Errorf("ParseAuxv(%v) succeeded", bad)
		}
	}
	trailing := append(testdata(t, "python3/auxv"), make([]byte, 32)...)
	if b, err := ParseAuxv(trailing); err != nil || len(b) != 46 {
		t.Errorf("bytes after AT_NULL: %d words, %v", len(b), err)
	}
}

func TestParseLimits(t *testing.T) {
	l, err := ParseLimits(bytes.NewReader(testdata(t, "python3/limits")))
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 16 {
		t.Fatalf("%d limits, want 16", len(l))
	}
	for i, r := range l {
		if r.Resource != i {
			t.Errorf("limit %d is resource %d", i, r.Resource)
		}
	}
	check := map[int][2]uint64{
		unix.RLIMIT_CPU:    {Infinity, Infinity},
		unix.RLIMIT_STACK:  {8388608, Infinity},
		unix.RLIMIT_CORE:   {0, Infinity},
		unix.RLIMIT_NOFILE: {20000, 20000},
		unix.RLIMIT_RTPRIO: {0, 0},
		unix.RLIMIT_RTTIME: {Infinity, Infinity},
	}
	for res, want := range check {
		if got := [2]uint64{l[res].Cur, l[res].Max}; got != want {
			t.Errorf("resource %d = %v, want %v", res, got, want)
		}
	}
	for _, bad := range []string{
		"Max cpu time 1 1\n",
		"Limit  Soft Limit  Hard Limit  Units\nMax cpu time  lots  unlimited  seconds\n",
		"Limit  Soft Limit  Hard Limit  Units\nMax cpu time  1\n",
	} {
		if _, err := ParseLimits(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseLimits(%q) succeeded", bad)
		}
	}
}

func TestParseFdinfo(t *testing.T) {
	const oLargefile = 0o100000 // the kernel's value; x/sys/unix has 0 on amd64
	tests := []struct {
		file string
		want Fdinfo
	}{
		{"python3/fdinfo.0", Fdinfo{Pos: 0, Flags: unix.O_RDONLY | oLargefile, MntID: 24, Ino: 3}},
		{"python3/fdinfo.1", Fdinfo{Pos: 5, Flags: unix.O_WRONLY | oLargefile, MntID: 27, Ino: 9978034}},
		{"python3/fdinfo.3", Fdinfo{Flags: unix.O_RDWR | oLargefile | unix.O_CLOEXEC, MntID: 27,
			Ino: 9978066}},
		{"fdinfo.lock", Fdinfo{Flags: unix.O_RDWR, MntID: 30, Ino: 1234,
			Locks: []string{"1: FLOCK  ADVISORY  WRITE 4242 fe:00:1234 0 EOF"}}},
	}
	for _, tt := range tests {
		got, err := ParseFdinfo(bytes.NewReader(testdata(t, tt.file)))
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if !reflect.DeepEqual(*got, tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.file, *got, tt.want)
		}
	}
	epoll := "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\ntfd:        5 events:       19 data:  5\n"
	if fi, err := ParseFdinfo(strings.NewReader(epoll)); err != nil || fi.MntID != 15 {
		t.Errorf("epoll fdinfo: %+v, %v", fi, err)
	}
	for _, bad := range []string{"", "pos:\t0\n", "pos:\tx\nflags:\t0\n", "pos:\t0\nflags:\t9\n"} {
		if _, err := ParseFdinfo(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseFdinfo(%q) succeeded", bad)
		}
	}
}

func TestParseSmall(t *testing.T) {
	kids, err := ParseChildren(testdata(t, "children.two"))
	if err != nil || len(kids) != 3 || kids[0] != 6187 {
		t.Errorf("children.two: %v, %v", kids, err)
	}
	if kids, err := ParseChildren(testdata(t, "python3/children")); err != nil || kids != nil {
		t.Errorf("empty children: %v, %v", kids, err)
	}
	if _, err := ParseChildren([]byte("1 x")); err == nil {
		t.Error("ParseChildren(1 x) succeeded")
	}
	if p, err := ParsePersonality(testdata(t, "python3/personality")); err != nil || p != 0 {
		t.Errorf("personality %#x, %v", p, err)
	}
	if p, err := ParsePersonality([]byte("00400000\n")); err != nil || p != 0x400000 {
		t.Errorf("personality %#x, %v", p, err)
	}
}

// TestLive reads this test's own process through the Read functions.
func TestLive(t *testing.T) {
	pid := os.Getpid()
	st, err := ReadStat(pid)
	if err != nil || st.PID != pid || st.PPID != os.Getppid() {
		t.Fatalf("ReadStat: %+v, %v", st, err)
	}
	s, err := ReadStatus(pid)
	if err != nil || s.Tgid != pid || s.Threads < 1 {
		t.Fatalf("ReadStatus: %+v, %v", s, err)
	}
	tids, err := Tasks(pid)
	if err != nil || tids[0] != pid || len(tids) != s.Threads {
		t.Errorf("Tasks: %v, %v (status says %d threads)", tids, err, s.Threads)
	}
	if _, err := ReadSmaps(pid); err != nil {
		t.Error(err)
	}
	if _, err := ReadMaps(pid); err != nil {
		t.Error(err)
	}
	if _, err := ReadAuxv(pid); err != nil {
		t.Error(err)
	}
	if _, err := ReadLimits(pid); err != nil {
		t.Error(err)
	}
	if _, err := ReadPersonality(pid); err != nil {
		t.Error(err)
	}
	if _, err := Children(pid); err != nil {
		t.Error(err)
	}
	fds, err := Fds(pid)
	if err != nil || len(fds) < 3 {
		t.Fatalf("Fds: %v, %v", fds, err)
	}
	if _, err := ReadFdinfo(pid, fds[0]); err != nil {
		t.Error(err)
	}
	if _, err := ReadTaskStat(pid, pid); err != nil {
		t.Error(err)
	}
	if _, err := ReadStat(1 << 30); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadStat of a missing pid: %v, want not exist", err)
	}
}
