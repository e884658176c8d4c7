package pages

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/pages/pagestest"
	"github.com/vmihailenco/msgpack/v5"
)

// child is a stopped instance of childSrc.
type child struct {
	pid                                 int
	start                               uint64
	anon, file, shared, pn, sparse, big uint64 // addresses it printed
	vmas                                []image.Vma
}

func startChild(t *testing.T) *child {
	t.Helper()
	pagestest.RequireRoot(t)
	if pageSize != 4096 {
		t.Skipf("the test program assumes 4096-byte pages, not %d", pageSize)
	}
	bin := pagestest.BuildC(t, childSrc)
	dir := t.TempDir()
	for _, f := range []struct{ name, b string }{{"priv", "F"}, {"shared", "S"}} {
		data := bytes.Repeat([]byte(f.b), 8*4096)
		if err := os.WriteFile(filepath.Join(dir, f.name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, fields := pagestest.Start(t, bin, filepath.Join(dir, "priv"), filepath.Join(dir, "shared"))
	c := &child{pid: p.Pid}
	for i, dst := range []*uint64{&c.anon, &c.file, &c.shared, &c.pn, &c.sparse, &c.big} {
		v, err := strconv.ParseUint(fields[i], 16, 64)
		if err != nil {
			t.Fatalf("child printed %q: %v", fields, err)
		}
		*dst = v
	}
	var err error
	if c.vmas, err = pagestest.Vmas(c.pid); err != nil {
		t.Fatal(err)
	}
	if c.start, err = pagestest.StartTime(c.pid); err != nil {
		t.Fatal(err)
	}
	return c
}

// dumped is one emitted record, copied.
type dumped struct {
	addr uint64
	data []byte
}

func dump(t *testing.T, d *Dumper, c *child) ([]dumped, Stats) {
	t.Helper()
	var recs []dumped
	st, err := d.Dump(c.pid, c.start, c.vmas, func(r *Run) error {
		// Keep what the record body says, which is what goes downstream.
		body, err := r.Body()
		if err != nil {
			return err
		}
		var p image.Pages
		if err := msgpack.Unmarshal(body, &p); err != nil {
			return err
		}
		if p.PID != c.pid || p.Addr != r.Addr || !bytes.Equal(p.Data, r.Data) {
			t.Errorf("record at %#x for pid %d: body and run differ", r.Addr, p.PID)
		}
		recs = append(recs, dumped{p.Addr, p.Data})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs, st
}

// in returns the records that lie in [lo, hi).
func in(recs []dumped, lo, hi uint64) []dumped {
	var out []dumped
	for _, r := range recs {
		if r.addr >= lo && r.addr < hi {
			out = append(out, r)
		}
	}
	return out
}

func describe(recs []dumped, base uint64) string {
	var s []string
	for _, r := range recs {
		s = append(s, fmt.Sprintf("page %d +%d", (r.addr-base)/4096, len(r.data)/4096))
	}
	return strings.Join(s, ", ")
}

// want is a run of pages expected in the dump: its first page (counted
// from the mapping's start) and the pages' contents. A run comes as
// records cut where the address is a multiple of image.MaxChunk.
type want struct {
	page  int
	pages [][]byte
}

func check(t *testing.T, what string, got []dumped, base uint64, wants []want) {
	t.Helper()
	var ws []want
	for _, w := range wants {
		for i, p := range w.pages {
			addr := base + uint64(w.page+i)*4096
			if i == 0 || addr%image.MaxChunk == 0 {
				ws = append(ws, want{page: w.page + i})
			}
			ws[len(ws)-1].pages = append(ws[len(ws)-1].pages, p)
		}
	}
	var desc []string
	for _, w := range ws {
		desc = append(desc, fmt.Sprintf("page %d +%d", w.page, len(w.pages)))
	}
	if g, w := describe(got, base), strings.Join(desc, ", "); g != w {
		t.Fatalf("%s: records %s, want %s", what, g, w)
	}
	for i, w := range ws {
		if !bytes.Equal(got[i].data, bytes.Join(w.pages, nil)) {
			t.Errorf("%s: record at page %d has the wrong bytes", what, w.page)
		}
	}
}

func patterned(from, to, tag int) [][]byte {
	var p [][]byte
	for i := from; i < to; i++ {
		p = append(p, pattern(i, tag))
	}
	return p
}

func TestDumpChild(t *testing.T) {
	c := startChild(t)
	for _, m := range []Method{Scan, Read} {
		t.Run(m.String(), func(t *testing.T) {
			d := NewDumper(0)
			d.Method = m
			recs, st := dump(t, d, c)
			checkChild(t, c, recs)
			if st.Method != m || st.Records != len(recs) {
				t.Errorf("stats %+v for %d records", st, len(recs))
			}
			if st.Zero < 2 || st.Pages+st.Zero != st.Found {
				t.Errorf("stats %+v: found pages are neither emitted nor zero", st)
			}
		})
	}
}

func checkChild(t *testing.T, c *child, recs []dumped) {
	t.Helper()
	check(t, "anon", in(recs, c.anon, c.anon+400*4096), c.anon, []want{
		{0, patterned(0, 300, 1)},
		{302, patterned(302, 305, 1)},
		{306, patterned(306, 307, 1)},
	})
	page6 := bytes.Repeat([]byte("F"), 4096)
	page6[0] = 'X'
	check(t, "private file", in(recs, c.file, c.file+8*4096), c.file, []want{
		{2, patterned(2, 3, 2)},
		{5, [][]byte{make([]byte, 4096), page6}},
	})
	check(t, "shared file", in(recs, c.shared, c.shared+8*4096), c.shared, nil)
	check(t, "unreadable", in(recs, c.pn, c.pn+4*4096), c.pn, []want{
		{1, patterned(1, 3, 3)},
	})
	var sparse []want
	for i := 0; i < 4000; i += 2 {
		sparse = append(sparse, want{i, patterned(i, i+1, 4)})
	}
	check(t, "sparse", in(recs, c.sparse, c.sparse+4000*4096), c.sparse, sparse)
	check(t, "big", in(recs, c.big, c.big+1600*4096), c.big, []want{
		{0, patterned(0, 700, 5)},
		{701, patterned(701, 1600, 5)},
	})
	checkAll(t, c, recs)
}

// checkAll checks every record: in order, whole pages, within one chunk
// (the addresses between two multiples of image.MaxChunk), within one
// dumped mapping, and equal to what /proc/PID/mem reads.
func checkAll(t *testing.T, c *child, recs []dumped) {
	t.Helper()
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", c.pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	var last uint64
	for _, r := range recs {
		end := r.addr + uint64(len(r.data))
		if r.addr < last || r.addr%4096 != 0 || len(r.data)%4096 != 0 ||
			len(r.data) == 0 || r.addr/image.MaxChunk != (end-1)/image.MaxChunk {
			t.Fatalf("record at %#x of %d bytes is out of order, not whole pages or not "+
				"in one chunk", r.addr, len(r.data))
		}
		last = end
		i := slices.IndexFunc(c.vmas, func(v image.Vma) bool {
			return v.Start <= r.addr && end <= v.End
		})
		if i < 0 || c.vmas[i].Shared || c.vmas[i].Kind != image.VmaAnon &&
			c.vmas[i].Kind != image.VmaFile {
			t.Fatalf("record at %#x of %d bytes is not inside one private mapping", r.addr,
				len(r.data))
		}
		b := make([]byte, len(r.data))
		if _, err := mem.ReadAt(b, int64(r.addr)); err != nil || !bytes.Equal(b, r.data) {
			t.Fatalf("record at %#x differs from memory (%v)", r.addr, err)
		}
	}
}

// TestScanEqualsRead dumps the child by reading the page map and with
// PAGEMAP_SCAN, with output arrays that fill at every call, and ones
// larger than the kernel's own buffer of 512 regions, where walk_end is
// left behind the regions returned: all must give the same records.
func TestScanEqualsRead(t *testing.T) {
	c := startChild(t)
	d := NewDumper(0)
	d.Method = Read
	want, _ := dump(t, d, c)
	for _, n := range []int{1, 2, 3, 7, 512, 700, 1500} {
		d := NewDumper(0)
		d.Method = Scan
		d.regs = make([]pageRegion, n)
		got, _ := dump(t, d, c)
		if !slices.EqualFunc(got, want, func(a, b dumped) bool {
			return a.addr == b.addr && bytes.Equal(a.data, b.data)
		}) {
			t.Errorf("scan with %d regions: %d records differ from the page map's %d",
				n, len(got), len(want))
		}
	}
}

// TestBatchSizes dumps through batches of many sizes, so that batches end
// in the middle of runs, and checks that the records are the same.
func TestBatchSizes(t *testing.T) {
	c := startChild(t)
	want, _ := dump(t, NewDumper(0), c)
	for _, n := range []int{0, 2 << 20, 2<<20 + 4096, 3<<20 - 4096, 64 << 20} {
		got, _ := dump(t, NewDumper(n), c)
		checkChild(t, c, got)
		if !slices.EqualFunc(got, want, func(a, b dumped) bool {
			return a.addr == b.addr && bytes.Equal(a.data, b.data)
		}) {
			t.Errorf("batch of %d bytes: %d records differ from the default's %d",
				n, len(got), len(want))
		}
	}
}

func TestStartTimeMismatch(t *testing.T) {
	c := startChild(t)
	_, err := NewDumper(0).Dump(c.pid, c.start+1, c.vmas, func(*Run) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("dump with a wrong start time: %v", err)
	}
}

func TestUnreadablePage(t *testing.T) {
	c := startChild(t)
	d := NewDumper(0)
	tk := &task{Dumper: d, pid: c.pid, vmas: []image.Vma{{Start: 4096, End: 8192,
		Kind: image.VmaAnon, Name: "[fake]"}}}
	defer tk.close()
	err := tk.readv([]piece{{addr: 4096, n: 4096}}, make([]byte, 4096))
	var me *MappingError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "read page at 0x1000") ||
		!strings.Contains(err.Error(), fmt.Sprintf("pid %d:", c.pid)) {
		t.Fatalf("reading an unmapped page: %v", err)
	}
}

func TestSharedAnonRefused(t *testing.T) {
	vmas := []image.Vma{{Start: 0x10000, End: 0x20000, Kind: image.VmaAnon, Shared: true,
		Name: "/dev/zero (deleted)"}}
	_, err := NewDumper(0).Dump(os.Getpid(), 0, vmas, nil)
	want := "pid " + strconv.Itoa(os.Getpid()) +
		": mapping 10000-20000 (/dev/zero (deleted)): shared anonymous memory has no shmem file: " +
		"the stream did not go through ckpt-files"
	if !errors.Is(err, ErrSharedAnon) || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		kind   string
		shared bool
		want   plan
		err    bool
		fileID int
	}{
		{image.VmaAnon, true, planSkip, false, 3},
		{image.VmaAnon, false, planAnon, false, 0},
		{image.VmaAnon, true, planSkip, true, 0},
		{image.VmaFile, false, planFile, false, 0},
		{image.VmaFile, true, planSkip, false, 0},
		{image.VmaVdso, false, planSkip, false, 0},
		{image.VmaVvar, false, planSkip, false, 0},
		{image.VmaVvarVclock, false, planSkip, false, 0},
		{image.VmaVsyscall, false, planSkip, false, 0},
		{"tomorrow", false, planSkip, true, 0},
	} {
		p, err := planFor(&image.Vma{Kind: tc.kind, Shared: tc.shared, FileID: tc.fileID})
		if p != tc.want || (err != nil) != tc.err {
			t.Errorf("%s shared=%v: plan %d, %v", tc.kind, tc.shared, p, err)
		}
	}
}

// TestRunBody checks that a run's body is what msgpack.Marshal makes of
// its Pages, and that making it leaves Data alone.
func TestRunBody(t *testing.T) {
	whole := make([]byte, headroom+3*4096)
	for i := range whole {
		whole[i] = byte(i)
	}
	for _, tc := range []struct {
		pid  int
		addr uint64
		off  int
		n    int
	}{
		{1, 0, 0, 4096},
		{4194304, 0x7fff_ffff_f000, 4096, 8192},
		{300, 0x1000, 8192, 4096},
		{1 << 30, 1 << 46, 0, 3 * 4096},
	} {
		data := whole[headroom+tc.off : headroom+tc.off+tc.n]
		want, err := msgpack.Marshal(&image.Pages{PID: tc.pid, Addr: tc.addr, Data: bytes.Clone(data)})
		if err != nil {
			t.Fatal(err)
		}
		r := Run{Pages: image.Pages{PID: tc.pid, Addr: tc.addr, Data: data}, buf: whole,
			off: headroom + tc.off, enc: newBodyEncoder()}
		got, err := r.Body()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("pid %d addr %#x: body differs from msgpack.Marshal", tc.pid, tc.addr)
		}
	}
}
