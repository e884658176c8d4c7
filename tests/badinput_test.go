package tests

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/archive"
	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
)

// Bad input to every reader (issue 5): truncated at many bytes, flipped
// bits, records out of order, foreign versions, architectures and page
// sizes, an archive where a stream goes and the reverse, an empty file,
// /dev/zero and random bytes. Each reader must fail with a message that
// names the record or byte, exit non-zero, and leave no process, file or
// hidden link behind; the good archive must restore afterwards.

// dumped is a small tree and what one dump of it made: a shell holding
// a file unlinked at its name but linked elsewhere (a remap: ckpt-files
// makes a hidden link for it) with a counter child that shares it.
type dumped struct {
	dir        string // the remap's directory: "a" and, once dumped, a hidden link
	log        string // the counter's output
	sh, ctr    int    // the two PIDs
	scan, full string // ckpt-scan's stream; the stream before ckpt-pack
	img        string // the archive
	base       []string
}

func dumpRemapTree(t *testing.T) *dumped {
	t.Helper()
	ctr := compileOnce(t, "counter.c")
	d := &dumped{dir: t.TempDir(), log: filepath.Join(t.TempDir(), "log")}
	work := t.TempDir()
	b := filepath.Join(d.dir, "b")
	if err := os.WriteFile(b, []byte("remapped file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(b, filepath.Join(d.dir, "a")); err != nil {
		t.Fatal(err)
	}
	s := start(t, d.log, "sh", "-c", `exec 3<"$1/b"; rm "$1/b"; "$2" 8 & wait`, "sh", d.dir, ctr)
	waitFor(t, 30*time.Second, "the counter", func() bool { return len(lines(t, d.log)) >= 3 })
	kids := readChildren(t, s.pid)
	if len(kids) != 1 {
		t.Fatalf("the shell has children %v, want the counter", kids)
	}
	d.sh = s.pid
	d.ctr, _ = strconv.Atoi(kids[0])
	t.Cleanup(func() { killPID(d.ctr) })

	d.scan, d.full = filepath.Join(work, "scan.stream"), filepath.Join(work, "full.stream")
	d.img = filepath.Join(work, "img")
	for _, line := range []string{
		fmt.Sprintf("ckpt-scan %d > %s", d.sh, d.scan),
		fmt.Sprintf("ckpt-scan %d | ckpt-files | ckpt-mem > %s", d.sh, d.full),
		fmt.Sprintf("ckpt-pack < %s > %s && ckpt-pack --verify %s", d.full, d.img, d.img),
	} {
		if stderr, err := run(t, 60*time.Second, line); err != nil {
			t.Fatalf("%s: %v\n%s", line, err, stderr)
		}
	}
	d.base = dirList(t, d.dir)
	if len(d.base) != 2 {
		t.Fatalf("%s holds %q after the dump, want a and one hidden link", d.dir, d.base)
	}
	return d
}

// record is one record of a stream and where it lies.
type record struct {
	stream.Record
	pid      int // of a task, fd or pages record, else 0
	from, to int64
}

// parseStream reads a stream into its header and records, end excluded.
func parseStream(t *testing.T, b []byte) (*image.Header, []record) {
	t.Helper()
	r := stream.NewReader(bytes.NewReader(b))
	h, err := r.Header()
	if err != nil {
		t.Fatal(err)
	}
	var recs []record
	for {
		from := r.Offset()
		rec, err := r.Next()
		if err == io.EOF {
			return h, recs
		}
		if err != nil {
			t.Fatal(err)
		}
		one := record{Record: rec, from: from, to: r.Offset()}
		switch rec.Kind {
		case image.KindTask, image.KindFd:
			var v struct {
				PID int `msgpack:"pid"`
			}
			if err := rec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			one.pid = v.PID
		case image.KindPages:
			var p image.Pages
			if err := image.DecodePages(rec.Body, &p); err != nil {
				t.Fatal(err)
			}
			one.pid = p.PID
		}
		recs = append(recs, one)
	}
}

// encodeStream writes a header and records as a stream, with its end.
func encodeStream(t *testing.T, h *image.Header, recs []record) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := stream.NewWriter(&buf)
	if err := w.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.WriteRecord(r.Record); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// packStream makes an archive of stream bytes, as ckpt-pack would, but
// whatever the stream's header says.
func packStream(t *testing.T, s []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := archive.NewWriter(&buf)
	if _, err := w.Write(s); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// badInput is one bad input and what a reader must say about it.
type badInput struct {
	name string
	data []byte // nil: read /dev/zero
	want string // a regexp the message must match
}

// where matches a message that names a record, a byte, an offset or the
// header.
var where = regexp.MustCompile(`record \d+|byte \d+|offset \d+|header`)

// cutPoints returns the offsets to cut a stream or archive at: around
// every boundary, in the middle of every part, and the first bytes.
func cutPoints(bounds []int64, size int64) []int64 {
	var cuts []int64
	for i := int64(0); i < 24 && i < size; i++ {
		cuts = append(cuts, i)
	}
	for i, b := range bounds {
		cuts = append(cuts, b-1, b, b+1)
		if i+1 < len(bounds) {
			cuts = append(cuts, (b+bounds[i+1])/2)
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	return slices.DeleteFunc(cuts, func(c int64) bool { return c < 0 || c >= size })
}

// commonBad are inputs that no reader accepts.
func commonBad() []badInput {
	rnd := make([]byte, 64<<10)
	rand.New(rand.NewSource(5)).Read(rnd)
	return []badInput{
		{"empty", []byte{}, `empty input`},
		{"dev-zero", nil, `byte 0`},
		{"random", rnd, `byte 0`},
	}
}

// streamBad are bad record streams made from a good one.
func streamBad(t *testing.T, good []byte) []badInput {
	h, recs := parseStream(t, good)
	var bounds []int64
	for _, r := range recs {
		bounds = append(bounds, r.from)
	}
	bounds = append(bounds, recs[len(recs)-1].to)
	var bad []badInput
	for _, c := range cutPoints(bounds, int64(len(good))) {
		bad = append(bad, badInput{fmt.Sprintf("cut-at-%d", c), good[:c], `byte \d+`})
	}
	flip := func(name string, at int64, bit byte, want string) {
		b := bytes.Clone(good)
		b[at] ^= bit
		bad = append(bad, badInput{name, b, want})
	}
	magic := int64(bytes.Index(good, []byte("ckpt-stream")))
	flip("flip-magic", magic+2, 0x01, `bad magic`)
	flip("flip-frame-byte", recs[1].from, 0x01, `bad frame byte`)
	flip("flip-body-length", recs[1].from+int64(2+len(recs[1].Kind)+1), 0x40, `byte \d+`)
	foreign := func(name string, edit func(*image.Header), want string) {
		h2 := *h
		edit(&h2)
		bad = append(bad, badInput{name, encodeStream(t, &h2, recs), want})
	}
	foreign("version-99", func(h *image.Header) { h.Version = 99 }, `version 99 is not supported`)
	foreign("arch-arm64", func(h *image.Header) { h.Arch = "arm64" }, `from an arm64 machine`)
	foreign("page-64k", func(h *image.Header) { h.PageSize = 65536 }, `65536-byte pages`)
	return append(bad, commonBad()...)
}

// runReader runs one tool on an input with a deadline and returns its
// stderr and error.
func runReader(t *testing.T, in badInput, tool string, args ...string) (string, error) {
	t.Helper()
	src := "/dev/zero"
	if in.data != nil {
		src = filepath.Join(t.TempDir(), "in")
		if err := os.WriteFile(src, in.data, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(src)
	}
	line := fmt.Sprintf("%s %s < %s > /dev/null", tool, strings.Join(args, " "), src)
	stderr, err := run(t, 60*time.Second, line)
	if err != nil && strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("%s on %s: %v", tool, in.name, err)
	}
	return stderr, err
}

// checkRefusal checks that a reader failed with a message that names
// where, and says what want says.
func checkRefusal(t *testing.T, tool string, in badInput, stderr string, err error) {
	t.Helper()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Errorf("%s accepted %s (%v): %q", tool, in.name, err, stderr)
		return
	}
	// One line says what failed; ckpt-restore may say before it that it
	// waits for a PID (held by a process killed by the try before).
	all := strings.Split(strings.TrimSpace(stderr), "\n")
	msg := all[len(all)-1]
	for _, l := range all[:len(all)-1] {
		if !strings.Contains(l, "waiting up to") {
			t.Errorf("%s on %s: more than one line of error: %q", tool, in.name, stderr)
		}
	}
	if !strings.HasPrefix(msg, tool+": ") {
		t.Errorf("%s on %s: want a line starting %q, got %q", tool, in.name, tool+": ", msg)
	}
	if !where.MatchString(msg) || !regexp.MustCompile(in.want).MatchString(msg) {
		t.Errorf("%s on %s: %q does not name where, or does not match %q", tool, in.name,
			msg, in.want)
	}
}

func TestBadInputStages(t *testing.T) {
	d := dumpRemapTree(t)
	scan, err := os.ReadFile(d.scan)
	if err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(d.full)
	if err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(d.img)
	if err != nil {
		t.Fatal(err)
	}
	asStream := badInput{"archive", img, `this is a ckpt archive, not a record stream`}
	packed := badInput{"archive", img, `already a ckpt archive`}
	out := t.TempDir()
	cases := []struct {
		tool   string
		args   []string
		inputs []badInput
	}{
		{"ckpt-files", nil, append(streamBad(t, scan), asStream)},
		{"ckpt-mem", nil, append(streamBad(t, scan), asStream)},
		{"ckpt-pack", []string{"-o", out + "/img"}, append(unforeign(streamBad(t, full)), packed)},
		{"ckpt-show", nil, unforeign(streamBad(t, full))},
	}
	for _, c := range cases {
		t.Run(c.tool, func(t *testing.T) {
			for _, in := range c.inputs {
				stderr, err := runReader(t, in, c.tool, c.args...)
				checkRefusal(t, c.tool, in, stderr, err)
				if got := dirList(t, d.dir); !slices.Equal(got, d.base) {
					t.Fatalf("%s on %s: %s holds %q, held %q", c.tool, in.name, d.dir, got, d.base)
				}
				if left := dirList(t, out); len(left) > 0 {
					t.Fatalf("%s on %s left %q", c.tool, in.name, left)
				}
			}
			t.Logf("%s refused %d bad inputs", c.tool, len(c.inputs))
		})
	}
	c := counting{&subject{pid: d.ctr}, d.log}
	c.checkRuns(t, "after the stages read bad input")
}

// unforeign drops the inputs that only stages reading the live tree
// refuse: a stream from another architecture or page size is packed and
// shown as it is.
func unforeign(in []badInput) []badInput {
	return slices.DeleteFunc(in, func(b badInput) bool {
		return b.name == "arch-arm64" || b.name == "page-64k"
	})
}

// archiveBad are bad archives made from a good one: cut, flipped, of
// another version, or holding a stream that is foreign or out of order.
func archiveBad(t *testing.T, img, full []byte, d *dumped) []badInput {
	ix, err := archive.ReadIndex(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Frames) < 3 {
		t.Fatalf("the archive has %d frames, want 3 or more", len(ix.Frames))
	}
	bounds := []int64{0, 16}
	for _, fr := range ix.Frames {
		bounds = append(bounds, fr.Offset, fr.Offset+24)
	}
	size := int64(len(img))
	bounds = append(bounds, size-24, size)
	// Fewer cuts than for a stream: a restore cut after its first frame
	// creates the tree, then undoes it, and the next one waits for init
	// to reap what was killed.
	var bad []badInput
	for _, c := range cutPoints(bounds, size) {
		if c > ix.Frames[1].Offset && !slices.Contains(bounds, c) && !slices.Contains(bounds, c-1) {
			continue
		}
		bad = append(bad, badInput{fmt.Sprintf("cut-at-%d", c), img[:c], `byte \d+`})
	}
	flip := func(name string, at int64, want string) {
		b := bytes.Clone(img)
		b[at] ^= 0x10
		bad = append(bad, badInput{name, b, want})
	}
	last := ix.Frames[len(ix.Frames)-1]
	flip("flip-header", 3, `archive header at byte 0`)
	flip("flip-frame-header", ix.Frames[1].Offset+5, `frame at byte \d+`)
	flip("flip-page-data", ix.Frames[1].Offset+24+int64(ix.Frames[1].Stored)/2, `frame at byte \d+`)
	flip("flip-last-frame", last.Offset+24+int64(last.Stored)-1, `frame at byte \d+`)
	flip("flip-index", size-24-8, `index at byte \d+`)
	flip("flip-trailer", size-10, `trailer at byte \d+`)
	v2 := bytes.Clone(img)
	binary.LittleEndian.PutUint16(v2[8:], 2)
	crc := crc32.Checksum(v2[:12], crc32.MakeTable(crc32.Castagnoli))
	binary.LittleEndian.PutUint32(v2[12:], crc)
	bad = append(bad, badInput{"archive-version-2", v2, `version 2`})
	bad = append(bad, badInput{"stream", full, `this is a record stream, not an archive`})
	bad = append(bad, commonBad()...)
	return bad
}

// restoreBad are sound archives of streams that restore must refuse.
func restoreBad(t *testing.T, full []byte, d *dumped) []badInput {
	h, recs := parseStream(t, full)
	var bad []badInput
	pack := func(name string, h *image.Header, recs []record, want string) {
		bad = append(bad, badInput{name, packStream(t, encodeStream(t, h, recs)), want})
	}
	foreign := func(name string, edit func(*image.Header), want string) {
		h2 := *h
		edit(&h2)
		pack(name, &h2, recs, want)
	}
	foreign("version-99", func(h *image.Header) { h.Version = 99 }, `version 99 is not supported`)
	foreign("arch-arm64", func(h *image.Header) { h.Arch = "arm64" }, `for arm64`)
	foreign("page-64k", func(h *image.Header) { h.PageSize = 65536 }, `65536-byte pages`)

	first := func(kind string, pid int) int {
		return slices.IndexFunc(recs, func(r record) bool { return r.Kind == kind && r.pid == pid })
	}
	move := func(from, to int) []record {
		out := slices.Clone(recs)
		r := out[from]
		out = slices.Delete(out, from, from+1)
		return slices.Insert(out, to, r)
	}
	ctrTask := first(image.KindTask, d.ctr)
	pack("pages-before-task", h, move(first(image.KindPages, d.ctr), ctrTask),
		fmt.Sprintf(`record \d+ .*pages of pid %d come before its task record`, d.ctr))
	pack("fd-before-task", h, move(first(image.KindFd, d.ctr), ctrTask),
		fmt.Sprintf(`record \d+ .*fd \d+ of pid %d comes before its task record`, d.ctr))
	shTask := first(image.KindTask, d.sh)
	if shTask > ctrTask {
		t.Fatalf("the stream lists the counter (%d) before its parent (%d)", d.ctr, d.sh)
	}
	pack("child-before-parent", h, move(ctrTask, shTask),
		fmt.Sprintf(`record \d+ .*pid %d comes first, not the root %d`, d.ctr, d.sh))
	pack("task-twice", h, append(slices.Clone(recs), recs[ctrTask]),
		fmt.Sprintf(`record \d+ .*pid %d: the image lists it twice`, d.ctr))
	return bad
}

func TestBadInputRestore(t *testing.T) {
	d := dumpRemapTree(t)
	full, err := os.ReadFile(d.full)
	if err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(d.img)
	if err != nil {
		t.Fatal(err)
	}
	killPID(d.ctr)
	killPID(d.sh)
	waitFor(t, 10*time.Second, "the dumped tree to be gone", func() bool {
		return procState(d.ctr) == "" && procState(d.sh) == ""
	})
	integrity := archiveBad(t, img, full, d)
	// The log changes as the counter runs on: restore takes it as it is.
	readers := []string{"ckpt-pack --verify -", "ckpt-show", "ckpt-restore --accept-changed"}
	for _, tool := range readers {
		name := strings.Fields(tool)[0]
		t.Run(name, func(t *testing.T) {
			inputs := integrity
			switch name {
			case "ckpt-restore":
				inputs = append(slices.Clone(integrity), restoreBad(t, full, d)...)
			case "ckpt-show":
				inputs = showBad(integrity)
			}
			for _, in := range inputs {
				stderr, err := runReader(t, in, tool)
				checkRefusal(t, name, in, stderr, err)
				checkNothingLeft(t, d, name+" on "+in.name)
			}
			t.Logf("%s refused %d bad archives", name, len(inputs))
		})
	}
	// The good archive is untouched, and restores.
	t.Cleanup(func() { killPID(d.ctr); killPID(d.sh) })
	stderr, err := run(t, 60*time.Second, "ckpt-restore --accept-changed "+d.img)
	if err != nil {
		t.Fatalf("restore of the good archive: %v\n%s", err, stderr)
	}
	c := counting{&subject{pid: d.ctr}, d.log}
	c.checkRuns(t, "restored after the bad archives")
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fd/3", d.ctr))
	if err != nil || string(b) != "remapped file\n" {
		t.Fatalf("the restored counter's fd 3 reads %q, %v", b, err)
	}
	if got := dirList(t, d.dir); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("%s holds %q after the restore, want only a", d.dir, got)
	}
}

// showBad adapts the bad archives to ckpt-show, which reads a stream as
// well as an archive, and takes an input whose magic is not the
// archive's for a stream.
func showBad(in []badInput) []badInput {
	var out []badInput
	for _, b := range in {
		switch b.name {
		case "stream":
			continue
		case "flip-header":
			b.want = `stream record 0 at byte 0`
		}
		out = append(out, b)
	}
	return out
}

// checkNothingLeft checks that a failed restore left no process of the
// tree, no process of ckpt-restore's, and the remap's hidden link in
// place for the next try.
func checkNothingLeft(t *testing.T, d *dumped, why string) {
	t.Helper()
	for _, pid := range []int{d.sh, d.ctr} {
		if alive(pid) {
			t.Fatalf("%s: pid %d runs (state %s)", why, pid, procState(pid))
		}
	}
	if left := restorerLeft(); len(left) > 0 {
		t.Fatalf("%s: processes of ckpt-restore are left: %v", why, left)
	}
	if got := dirList(t, d.dir); !slices.Equal(got, d.base) {
		t.Fatalf("%s: %s holds %q, held %q", why, d.dir, got, d.base)
	}
}

// restorerLeft lists the live processes that run this run's
// ckpt-restore: a stub, or a task not yet given its program.
func restorerLeft() []int {
	want := tool("ckpt-restore")
	ents, _ := os.ReadDir("/proc")
	var left []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe == want && alive(pid) {
			left = append(left, pid)
		}
	}
	return left
}
