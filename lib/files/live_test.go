package files

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
	"golang.org/x/sys/unix"
)

// fixture is the program the live tests dump. It prepares the files of
// one scenario, puts one /dev/null description on fds 0, 1 and 2, and
// writes the fd numbers it made as JSON on a copy of its stdout, which it
// then closes: once the test reads EOF there, the fds stay as they are
// until the test kills the process.
const fixture = `
import fcntl, json, mmap, os, signal, sys

d, mode = sys.argv[1], sys.argv[2]
os.closerange(3, 1 << 16)  # fds the test process inherited itself
out = os.dup(1)
fds = {"pid": os.getpid()}
keep = []

def held(name, path, flags=os.O_RDONLY):
    fds[name] = os.open(path, flags)

if mode == "ok":
    held("append", d + "/append.txt", os.O_WRONLY | os.O_APPEND)
    held("ro", d + "/ro.txt")
    os.lseek(fds["ro"], 5, os.SEEK_SET)
    held("null", "/dev/null", os.O_RDWR)
    fds["dup"] = os.dup(fds["append"])
    held("named", d + "/name (deleted)")
    held("dir", d, os.O_RDONLY | os.O_DIRECTORY)
    held("again", d + "/ro.txt")
    keep.append(mmap.mmap(fds["ro"], 4096, prot=mmap.PROT_READ))
    held("relinked", d + "/y")
    os.unlink(d + "/y")
    os.link(d + "/x", d + "/y")
elif mode == "unlinked":
    held("gone", d + "/gone.txt")
    os.unlink(d + "/gone.txt")
elif mode == "elsewhere":
    held("moved", d + "/b")
    os.unlink(d + "/b")
elif mode == "memfd":
    fds["memfd"] = os.memfd_create("ckpt", os.MFD_HUGETLB)
elif mode in ("shm", "ipcns"):
    import ctypes, fcntl
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    if mode == "ipcns" and libc.unshare(0x08000000) != 0:  # CLONE_NEWIPC
        raise OSError(ctypes.get_errno(), "unshare")
    # memfd: data in pages 0 and 2, page 1 all zeros, sealed, mapped
    fds["memfd"] = os.memfd_create("ckpt shm", os.MFD_ALLOW_SEALING)
    os.ftruncate(fds["memfd"], 3 * 4096)
    os.pwrite(fds["memfd"], b"memfd page 0", 0)
    os.pwrite(fds["memfd"], bytes(4096), 4096)
    os.pwrite(fds["memfd"], b"memfd page 2", 2 * 4096)
    fcntl.fcntl(fds["memfd"], fcntl.F_ADD_SEALS, fcntl.F_SEAL_GROW)
    keep.append(mmap.mmap(fds["memfd"], 3 * 4096))
    # SysV: IPC_PRIVATE, data in page 1 only, attached, marked for removal
    fds["shmid"] = libc.shmget(0, 2 * 4096 + 100, 0o1640)
    addr = libc.shmat(fds["shmid"], None, 0)
    if fds["shmid"] < 0 or addr == ctypes.c_void_p(-1).value:
        raise OSError(ctypes.get_errno(), "shmget/shmat")
    ctypes.memmove(addr + 4096, b"sysv page 1", 11)
    libc.shmctl(fds["shmid"], 0, None)  # IPC_RMID
    fds["addr"] = addr
elif mode == "packet":
    _, fds["pipe"] = os.pipe2(os.O_DIRECT)
elif mode == "pipes":
    # bytes p*7 + p>>12 at offset p, as pattern() in ghost_test.go
    data = bytes((p * 7 + (p >> 12)) & 0xff for p in range(300000))
    fds["r"], fds["w"] = os.pipe()
    os.write(fds["w"], data[:5000])
    fds["big_r"], fds["big_w"] = os.pipe()
    fcntl.fcntl(fds["big_w"], 1031, 1 << 20)  # F_SETPIPE_SZ
    os.write(fds["big_w"], data[:300000])
    os.mkfifo(d + "/fifo", 0o640)
    held("fifo", d + "/fifo", os.O_RDWR)
    os.write(fds["fifo"], data[:100])
elif mode == "pipe-child":
    # the read end here, the write end in a child
    fds["r"], w = os.pipe()
    os.write(w, b"from the parent")
    # the child's fds are final once it closes its end of this one
    ready_r, ready_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.closerange(0, 3)
        os.close(out)
        os.close(fds["r"])
        os.close(ready_r)
        os.close(ready_w)
        while True:
            signal.pause()
    os.close(w)
    os.close(ready_w)
    os.read(ready_r, 1)
    os.close(ready_r)
    fds["child"] = child
    fds["child_w"] = w  # its number in the child
elif mode == "mapped":
    f = os.open(d + "/mapped.txt", os.O_RDONLY)
    keep.append(mmap.mmap(f, 4096, prot=mmap.PROT_READ))
    os.close(f)
    os.unlink(d + "/mapped.txt")
elif mode == "sparse":
    # islands of data in a 1 GiB file: 4 KiB at 0, 3 MiB at 64 MiB,
    # 8 KiB at 1 GiB - 8 KiB
    held("sparse", d + "/sparse", os.O_RDWR | os.O_CREAT)
    base = bytes(range(251)) * 20  # page q holds bytes (q + i) % 251
    for off, n in ((0, 4096), (64 << 20, 3 << 20), ((1 << 30) - 8192, 8192)):
        data = b"".join(base[q % 251:q % 251 + 4096] for q in range(off // 4096, (off + n) // 4096))
        os.pwrite(fds["sparse"], data, off)
    os.unlink(d + "/sparse")
    fds["dup"] = os.dup(fds["sparse"])
elif mode == "twice":
    held("first", d + "/same", os.O_RDWR | os.O_CREAT)
    os.write(fds["first"], b"first")
    os.unlink(d + "/same")
    held("second", d + "/same", os.O_RDWR | os.O_CREAT)
    os.write(fds["second"], b"second")
    os.unlink(d + "/same")
    held("third", d + "/same", os.O_RDWR | os.O_CREAT)
    os.write(fds["third"], b"third, still linked")

nul = os.open("/dev/null", os.O_RDWR)
for n in (0, 1, 2):
    os.dup2(nul, n)
os.close(nul)

if mode == "ok":
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(out)
        os.close(r)
        os.close(w)
        while True:
            signal.pause()
    os.close(w)
    os.read(r, 1)
    os.close(r)
    fds["child"] = child

os.write(out, json.dumps(fds).encode())
os.close(out)
while True:
    signal.pause()
`

// create returns a prepare function that writes 8 KiB files of "x".
func create(t *testing.T, names ...string) func(string) {
	return func(dir string) {
		for _, name := range names {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, bytes.Repeat([]byte("x"), 8192), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// startFixture runs the fixture in mode in a new directory and returns
// the directory and what the fixture reported. The processes are killed
// when the test ends.
func startFixture(t *testing.T, mode string, prepare func(dir string)) (string, map[string]int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: reads /proc/PID/map_files of another process")
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3 to run the fixture")
	}
	dir := t.TempDir()
	if prepare != nil {
		prepare(dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, python, "-c", fixture, dir, mode)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	t.Cleanup(func() {
		if child := got["child"]; child > 0 {
			_ = unix.Kill(child, unix.SIGKILL)
		}
		cancel()
		_ = cmd.Wait()
	})

	done := make(chan error, 1)
	go func() {
		b, err := io.ReadAll(stdout)
		if err == nil {
			err = json.Unmarshal(b, &got)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("fixture: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("fixture did not report within 20s")
	}
	return dir, got
}

// scanTask builds the task and fd records of pid by hand, the way
// ckpt-scan does (only the fields ckpt-files reads).
func scanTask(t *testing.T, pid int) (*image.Task, []*image.Fd) {
	t.Helper()
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	start, err := startTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Readlink(proc + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	task := &image.Task{PID: pid, StartTime: start, Exe: exe, Vmas: scanMaps(t, proc)}
	return task, scanFds(t, pid, proc)
}

func scanMaps(t *testing.T, proc string) []image.Vma {
	t.Helper()
	f, err := os.Open(proc + "/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var vmas []image.Vma
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Fields(sc.Text())
		var v image.Vma
		if len(cols) < 5 {
			t.Fatalf("maps line %q", sc.Text())
		}
		lo, hi, _ := strings.Cut(cols[0], "-")
		v.Start, _ = strconv.ParseUint(lo, 16, 64)
		v.End, _ = strconv.ParseUint(hi, 16, 64)
		v.Shared = cols[1][3] == 's'
		if len(cols) >= 6 {
			v.Name = strings.Join(cols[5:], " ")
		}
		v.Kind = image.VmaAnon
		if strings.HasPrefix(v.Name, "/") {
			v.Kind = image.VmaFile
			var st unix.Stat_t
			if err := unix.Stat(proc+"/map_files/"+cols[0], &st); err != nil {
				t.Fatal(err)
			}
			v.Dev, v.Ino = st.Dev, st.Ino
		}
		vmas = append(vmas, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return vmas
}

func scanFds(t *testing.T, pid int, proc string) []*image.Fd {
	t.Helper()
	ents, err := os.ReadDir(proc + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []*image.Fd
	for _, e := range ents {
		n, _ := strconv.Atoi(e.Name())
		fd := &image.Fd{PID: pid, Fd: n}
		path := filepath.Join(proc, "fd", e.Name())
		if fd.Link, err = os.Readlink(path); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		fd.Dev, fd.Ino, fd.Mode, fd.Nlink = st.Dev, st.Ino, st.Mode, st.Nlink
		fd.Size, fd.Rdev = st.Size, st.Rdev
		info, err := os.ReadFile(filepath.Join(proc, "fdinfo", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(info), "\n") {
			key, val, _ := strings.Cut(line, ":")
			val = strings.TrimSpace(val)
			switch key {
			case "pos":
				fd.Pos, _ = strconv.ParseInt(val, 10, 64)
			case "flags":
				flags, _ := strconv.ParseInt(val, 8, 64)
				fd.Flags = int(flags)
			case "mnt_id":
				fd.MntID, _ = strconv.Atoi(val)
			}
		}
		fds = append(fds, fd)
	}
	return fds
}

// dumpFiles runs the ckpt-files stage on records for pids and returns
// every record it wrote, or its error.
func dumpFiles(t *testing.T, pids ...int) ([]stream.Record, error) {
	t.Helper()
	return dumpFilesTo(t, Options{}, nil, pids...)
}

// dumpFilesTo is dumpFiles with options, writing through wrap(out) when
// wrap is not nil.
func dumpFilesTo(t *testing.T, opt Options, wrap func(io.Writer) io.Writer,
	pids ...int) ([]stream.Record, error) {
	t.Helper()
	var in bytes.Buffer
	w := stream.NewWriter(&in)
	if err := w.WriteHeader(stream.NewHeader("ckpt-scan")); err != nil {
		t.Fatal(err)
	}
	var fds []*image.Fd
	for _, pid := range pids {
		task, tfds := scanTask(t, pid)
		if err := w.Write(image.KindTask, task); err != nil {
			t.Fatal(err)
		}
		fds = append(fds, tfds...)
	}
	for _, fd := range fds {
		if err := w.Write(image.KindFd, fd); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteRecord(stream.Record{Kind: "future-kind", Body: []byte{0xc0}}); err != nil {
		t.Fatal(err)
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	var dst io.Writer = &out
	if wrap != nil {
		dst = wrap(&out)
	}
	if _, err := Run(context.Background(), &in, dst, opt, nil); err != nil {
		return nil, err
	}
	r := stream.NewReader(&out)
	h, err := r.Header()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(h.Stages, ",") != "ckpt-scan,ckpt-files" {
		t.Errorf("stages %v", h.Stages)
	}
	var recs []stream.Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
}

// dumped is the output of ckpt-files, decoded.
type dumped struct {
	files map[int]image.File
	tasks map[int]*image.Task
	fds   map[[2]int]*image.Fd // by pid and fd
	ghost map[int][]image.GhostData
}

func decode(t *testing.T, recs []stream.Record) dumped {
	t.Helper()
	d := dumped{map[int]image.File{}, map[int]*image.Task{}, map[[2]int]*image.Fd{},
		map[int][]image.GhostData{}}
	var order []string // kinds, one per run of records of a kind
	for _, rec := range recs {
		switch rec.Kind {
		case image.KindFile:
			var f image.File
			mustDecode(t, rec, &f)
			if f.ID != len(d.files)+1 {
				t.Errorf("file ID %d after %d files", f.ID, len(d.files))
			}
			d.files[f.ID] = f
		case image.KindTask:
			task := new(image.Task)
			mustDecode(t, rec, task)
			d.tasks[task.PID] = task
		case image.KindFd:
			fd := new(image.Fd)
			mustDecode(t, rec, fd)
			d.fds[[2]int{fd.PID, fd.Fd}] = fd
		case image.KindGhostData:
			var g image.GhostData
			mustDecode(t, rec, &g)
			if f, ok := d.files[g.FileID]; !ok || f.Kind != image.FileGhost &&
				!isPipeKind(f.Kind) && !sharedMemory(f.Kind) {
				t.Errorf("ghost-data of file %d, which is no ghost before it", g.FileID)
			}
			d.ghost[g.FileID] = append(d.ghost[g.FileID], g)
		}
		kind := rec.Kind
		if kind == image.KindGhostData {
			kind = image.KindFile // each ghost's data follows its file record
		}
		if len(order) == 0 || order[len(order)-1] != kind {
			order = append(order, kind)
		}
	}
	if got := strings.Join(order, " "); got != "future-kind file task fd" {
		t.Errorf("record order %q, want future-kind, files and ghost-data, tasks, fds", got)
	}
	return d
}

func mustDecode(t *testing.T, rec stream.Record, v any) {
	t.Helper()
	if err := rec.Decode(v); err != nil {
		t.Fatal(err)
	}
}

// fileOf returns the File behind fd n of pid.
func (d dumped) fileOf(t *testing.T, pid, n int) (*image.Fd, image.File) {
	t.Helper()
	fd := d.fds[[2]int{pid, n}]
	if fd == nil {
		t.Fatalf("no fd record for pid %d fd %d", pid, n)
	}
	f, ok := d.files[fd.FileID]
	if !ok {
		t.Fatalf("pid %d fd %d: file ID %d has no file record", pid, n, fd.FileID)
	}
	return fd, f
}

func TestLiveTree(t *testing.T) {
	dir, got := startFixture(t, "ok", func(dir string) {
		for name, data := range map[string]string{
			"append.txt":     "log line\n",
			"ro.txt":         strings.Repeat("read only\n", 500),
			"name (deleted)": "a real name\n",
			"x":              "two names\n",
		} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Link(filepath.Join(dir, "x"), filepath.Join(dir, "y")); err != nil {
			t.Fatal(err)
		}
	})
	pid, child := got["pid"], got["child"]
	recs, err := dumpFiles(t, pid, child)
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, recs)

	want := map[string]struct {
		kind, path string
	}{
		"append":   {image.FileLinked, dir + "/append.txt"},
		"ro":       {image.FileLinked, dir + "/ro.txt"},
		"again":    {image.FileLinked, dir + "/ro.txt"},
		"null":     {image.FileDevice, "/dev/null"},
		"named":    {image.FileLinked, dir + "/name (deleted)"},
		"dir":      {image.FileLinked, dir},
		"relinked": {image.FileLinked, dir + "/y"},
	}
	for name, w := range want {
		_, f := d.fileOf(t, pid, got[name])
		if f.Kind != w.kind || f.Path != w.path {
			t.Errorf("%s: got %s %q, want %s %q", name, f.Kind, f.Path, w.kind, w.path)
		}
	}
	if fd, _ := d.fileOf(t, pid, got["relinked"]); !strings.HasSuffix(fd.Link, " (deleted)") {
		t.Errorf("relinked fd reads %q, the test meant a deleted name", fd.Link)
	}

	checkShares(t, d, pid, got)
	checkSameInode(t, d, pid, child, got)
}

// checkShares checks Fd.Shares: dup, fds 0-2, and two opens of one file.
func checkShares(t *testing.T, d dumped, pid int, got map[string]int) {
	t.Helper()
	appendFd, af := d.fileOf(t, pid, got["append"])
	dup, df := d.fileOf(t, pid, got["dup"])
	if af.ID != df.ID || !dup.Shared || dup.Shares != appendFd.Fd || appendFd.Shared {
		t.Errorf("dup: %+v of %+v", dup, appendFd)
	}
	if appendFd.Flags&unix.O_APPEND == 0 {
		t.Errorf("append fd flags %o", appendFd.Flags)
	}
	for _, n := range []int{1, 2} {
		fd, f := d.fileOf(t, pid, n)
		if f.Kind != image.FileDevice || !fd.Shared || fd.Shares != 0 {
			t.Errorf("fd %d: %+v, want it to share fd 0", n, fd)
		}
	}
	ro, rf := d.fileOf(t, pid, got["ro"])
	again, gf := d.fileOf(t, pid, got["again"])
	if rf.ID != gf.ID || again.Shared || ro.Shared || ro.Pos != 5 {
		t.Errorf("two opens of one file: %+v and %+v", ro, again)
	}
	if null, _ := d.fileOf(t, pid, got["null"]); null.Shared {
		t.Errorf("a separate open of /dev/null shares fd %d", null.Shares)
	}
}

// checkSameInode checks that one inode is one File, across fds, mappings,
// the exe and tasks.
func checkSameInode(t *testing.T, d dumped, pid, child int, got map[string]int) {
	t.Helper()
	_, ro := d.fileOf(t, pid, got["ro"])
	mapped := false
	for _, v := range d.tasks[pid].Vmas {
		if v.Kind == image.VmaFile && v.FileID == 0 {
			t.Errorf("mapping %x-%x %s has no file", v.Start, v.End, v.Name)
		}
		mapped = mapped || v.FileID == ro.ID
	}
	if !mapped {
		t.Errorf("the mapping of ro.txt does not point at file %d", ro.ID)
	}
	if a, b := d.tasks[pid].ExeFileID, d.tasks[child].ExeFileID; a == 0 || a != b {
		t.Errorf("exe files %d and %d", a, b)
	}
	exe, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
	if f := d.files[d.tasks[pid].ExeFileID]; f.Path != exe || f.Kind != image.FileLinked {
		t.Errorf("exe file %+v, want %s", f, exe)
	}
	_, cf := d.fileOf(t, child, got["append"])
	if cf.ID != d.fds[[2]int{pid, got["append"]}].FileID {
		t.Errorf("parent and child see append.txt as files %d and %d", cf.ID,
			d.fds[[2]int{pid, got["append"]}].FileID)
	}
	seen := map[[2]uint64]int{}
	for id, f := range d.files {
		key := [2]uint64{f.Dev, f.Ino}
		if other, ok := seen[key]; ok {
			t.Errorf("files %d and %d are one inode", other, id)
		}
		seen[key] = id
	}
}

func TestLiveRefused(t *testing.T) {
	tests := []struct {
		mode    string
		prepare func(string)
		use     UseKind
		fd      string // key of the fd in the fixture's report
		text    string // the error after "pid P fd N: " or "pid P mapping R: "
	}{
		{"packet", nil, UseFd, "pipe",
			"pipe:[{ino}]: packet-mode pipes (O_DIRECT) are not supported yet"},
		{"memfd", nil, UseFd, "memfd", "/memfd:ckpt (deleted): memfd files on hugetlbfs " +
			"(MFD_HUGETLB) are not supported yet"},
		{"ipcns", nil, UseMapping, "", "/SYSV00000000 (deleted): SysV shared memory segments " +
			"of another IPC namespace are not supported yet"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			dir, got := startFixture(t, tt.mode, tt.prepare)
			_, err := dumpFiles(t, got["pid"])
			var fe *Error
			if !errors.As(err, &fe) || !errors.Is(err, ErrNotSupported) {
				t.Fatalf("got %v, want a not supported *Error", err)
			}
			if fe.Use.PID != got["pid"] || fe.Use.Kind != tt.use ||
				tt.use == UseFd && fe.Use.Fd != got[tt.fd] {
				t.Errorf("error names %+v", fe.Use)
			}
			text := strings.NewReplacer("{dir}", dir, "{ino}", pipeIno(t, fe)).Replace(tt.text)
			if want := fe.Use.String() + ": " + text; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("got %q\nwant %q", err, want)
			}
		})
	}
}

// pipeIno returns the inode number of the pipe an error is about, as the
// kernel writes it in the link.
func pipeIno(t *testing.T, fe *Error) string {
	if fe.Use.Kind != UseFd {
		return ""
	}
	var st unix.Stat_t
	if err := unix.Stat(procPath(fe.Use), &st); err != nil {
		t.Fatal(err)
	}
	return strconv.FormatUint(st.Ino, 10)
}
