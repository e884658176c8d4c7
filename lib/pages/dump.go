package pages

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// DefaultBatch is the number of bytes Dump reads from a task at a time,
// at most, with one process_vm_readv call.
const DefaultBatch = 4 << 20

// Dumper dumps the pages of tasks, one after another, reusing its
// buffers: two batches, one being read from the task while the other is
// emitted, and a few KiB besides. A Dumper is not safe for concurrent use.
type Dumper struct {
	// Method is how pages are found. With Auto, the first task tells
	// whether the kernel has PAGEMAP_SCAN, and the answer is kept.
	Method Method

	batches [2]*batch
	spans   []span             // scratch for the finder
	remote  []unix.RemoteIovec // scratch for process_vm_readv
	regs    []pageRegion       // PAGEMAP_SCAN output
	entries []byte             // /proc/PID/pagemap entries, for Read
	zero    []byte             // one page of zeros
	enc     *bodyEncoder
}

// NewDumper returns a Dumper that reads up to size bytes at a time
// (DefaultBatch if size is 0); size is rounded to whole pages of at
// least two chunks (image.MaxChunk).
func NewDumper(size int) *Dumper {
	if size <= 0 {
		size = DefaultBatch
	}
	size = max(size, 2*image.MaxChunk) / pageSize * pageSize
	d := &Dumper{
		remote:  make([]unix.RemoteIovec, 0, iovMax),
		regs:    make([]pageRegion, 512),
		entries: make([]byte, 64<<10),
		zero:    make([]byte, pageSize),
		enc:     newBodyEncoder(),
	}
	for i := range d.batches {
		d.batches[i] = &batch{whole: make([]byte, headroom+size)}
	}
	return d
}

// task is the state of one Dump. The reading goroutine owns the finder,
// the descriptors, the scratch buffers and found; the emitting one owns
// stats and the encoder. Batches go from one to the other on channels.
type task struct {
	*Dumper
	pid     int
	vmas    []image.Vma
	plans   []plan
	find    finder
	pagemap *os.File
	mem     *os.File // /proc/PID/mem, opened when first needed
	emit    func(*Run) error

	full    chan *batch // read, to be emitted
	free    chan *batch // emitted, to be filled again
	quit    chan struct{}
	readErr error // set by the reading goroutine before it closes full
	found   int
	stats   Stats
}

// errQuit stops the reading goroutine when the emitting one has failed.
var errQuit = errors.New("dump stopped")

// Dump finds and reads the pages that matter in the mappings vmas of the
// live process pid, and calls emit with each run of them, in address
// order. A run is at most image.MaxChunk bytes of contiguous pages; it
// never spans two mappings nor an address that is a multiple of
// image.MaxChunk, so runs are the same whatever the batch size. Each run
// is only valid until emit returns. Pages are read in a second goroutine
// while emit runs; emit is called on the caller's goroutine.
//
// When startTime is not 0, Dump first checks that pid still is the process
// that started then (field 22 of /proc/PID/stat), so a reused PID is not
// dumped in its place.
//
// Preconditions: the process is stopped (held by ckpt-scan, or SIGSTOP);
// otherwise Dump reads memory as it changes. The caller may read
// /proc/PID/pagemap and the process's memory (root, or ptrace access).
func (d *Dumper) Dump(pid int, startTime uint64, vmas []image.Vma,
	emit func(*Run) error) (Stats, error) {
	t := &task{Dumper: d, pid: pid, vmas: vmas, emit: emit}
	defer t.close()

	if err := t.plan(); err != nil {
		return t.stats, err
	}
	if t.stats.Mappings == 0 {
		return t.stats, nil
	}
	if err := t.open(startTime); err != nil {
		return t.stats, err
	}

	// One goroutine reads batches while this one emits the one before.
	t.full = make(chan *batch)
	t.free = make(chan *batch, len(d.batches))
	t.quit = make(chan struct{})
	for _, b := range d.batches {
		b.reset()
		t.free <- b
	}
	go func() {
		defer close(t.full)
		t.readErr = t.collect()
	}()

	err := t.emitAll()
	close(t.quit)
	for range t.full {
		// Wait for the reader to stop.
	}
	if err == nil {
		err = t.readErr
	}
	t.stats.Found = t.found
	t.stats.Bytes = int64(t.stats.Pages) * int64(pageSize)
	return t.stats, err
}

// plan decides what to do with every mapping before anything is read, so
// an unsupported one fails the dump at once.
func (t *task) plan() error {
	t.plans = make([]plan, len(t.vmas))
	for i := range t.vmas {
		v := &t.vmas[i]
		p, err := planFor(v)
		if err != nil {
			return &MappingError{t.pid, *v, err}
		}
		ps := uint64(pageSize)
		if p != planSkip && (v.Start%ps != 0 || v.End%ps != 0 || v.End <= v.Start) {
			return &MappingError{t.pid, *v, errors.New("bounds are not whole pages")}
		}
		if p != planSkip {
			t.stats.Mappings++
		}
		t.plans[i] = p
	}
	return nil
}

// open opens the page map, checks the start time and picks the finder.
func (t *task) open(startTime uint64) error {
	f, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", t.pid))
	if err != nil {
		return fmt.Errorf("pid %d: open page map: %w", t.pid, err)
	}
	t.pagemap = f

	// Check after the open: the descriptor now pins the process we check.
	if startTime != 0 {
		if err := checkStart(t.pid, startTime); err != nil {
			return err
		}
	}

	if t.Method == Auto {
		t.Method = t.probe()
	}
	t.stats.Method = t.Method
	switch t.Method {
	case Scan:
		t.find = &scanFinder{pagemap: f, regs: t.regs}
	case Read:
		t.find = &readFinder{pagemap: f, buf: t.entries}
	default:
		return fmt.Errorf("unknown page map method %v", t.Method)
	}
	return nil
}

// probe tells Scan from Read with an empty PAGEMAP_SCAN call.
func (t *task) probe() Method {
	arg := scanArg{anyOf: pageIsPresent}
	if _, err := ioctlScan(int(t.pagemap.Fd()), &arg, t.regs); err != nil && scanMissing(err) {
		return Read
	}
	return Scan
}

func (t *task) close() {
	if t.pagemap != nil {
		t.pagemap.Close()
	}
	if t.mem != nil {
		t.mem.Close()
	}
}

// checkStart fails unless process pid started at startTime (clock ticks
// after boot, field 22 of /proc/PID/stat).
func checkStart(pid int, startTime uint64) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return fmt.Errorf("pid %d: read stat: %w", pid, err)
	}

	// The fields after comm, which may hold anything, follow its last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return fmt.Errorf("pid %d: malformed stat %q", pid, b)
	}
	fields := bytes.Fields(b[i+1:])
	if len(fields) < 20 {
		return fmt.Errorf("pid %d: malformed stat %q", pid, b)
	}
	got, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return fmt.Errorf("pid %d: malformed start time in stat: %w", pid, err)
	}
	if got != startTime {
		return fmt.Errorf("pid %d: started at tick %d, not %d: another process now has this pid",
			pid, got, startTime)
	}
	return nil
}
