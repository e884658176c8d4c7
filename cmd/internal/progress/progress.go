// Package progress shows how far a long stage has come: one line on the
// terminal, rewritten in place, such as
//
//	ckpt-mem: 412.0 MiB of memory dumped, 830 MiB/s
//
// It draws only when its output is a terminal, and only once the stage
// has run for Delay, so short runs and logs stay quiet. It is a few lines
// on purpose: in a pipeline several stages share one terminal, so only
// the stages that take long (ckpt-mem, which reads the frozen tree, and
// ckpt-restore) show one, and a progress bar library that owns the
// terminal would fight the others.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Delay is how long a stage runs before its line appears; Tick is how
// often the line is drawn again.
const (
	Delay = time.Second
	Tick  = 200 * time.Millisecond
)

// Meter counts the bytes a stage has done and shows them.
type Meter struct {
	out   io.Writer
	label string // "ckpt-mem: "
	verb  string // "of memory dumped"
	n     atomic.Int64
	start time.Time

	mu    sync.Mutex // the line, and writes through the meter
	shown bool
	stop  chan struct{}
	done  chan struct{}
}

// Start returns a Meter for the stage name, counting bytes and saying
// "N MiB verb". It draws on out only when out is a terminal.
func Start(out io.Writer, name, verb string) *Meter {
	return start(out, name, verb, isTerminal(out), Delay, Tick)
}

func start(out io.Writer, name, verb string, draw bool, delay, tick time.Duration) *Meter {
	m := &Meter{out: out, label: name + ": ", verb: verb, start: time.Now()}
	if draw {
		m.stop, m.done = make(chan struct{}), make(chan struct{})
		go m.loop(delay, tick)
	}
	return m
}

// Add counts n more bytes done. A nil Meter counts nothing.
func (m *Meter) Add(n int64) {
	if m != nil {
		m.n.Add(n)
	}
}

// Write writes p to the output, the progress line cleared first: what a
// stage says while the meter runs goes through it.
func (m *Meter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clear()
	return m.out.Write(p)
}

// Stop clears the line for good. The meter counts on but never draws
// again.
func (m *Meter) Stop() {
	if m == nil || m.stop == nil {
		return
	}
	close(m.stop)
	<-m.done
	m.stop = nil
	m.mu.Lock()
	m.clear()
	m.mu.Unlock()
}

func (m *Meter) loop(delay, tick time.Duration) {
	defer close(m.done)
	select {
	case <-time.After(delay):
	case <-m.stop:
		return
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		m.draw()
		select {
		case <-t.C:
		case <-m.stop:
			return
		}
	}
}

func (m *Meter) draw() {
	n := m.n.Load()
	rate := float64(n) / time.Since(m.start).Seconds() / (1 << 20)
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(m.out, "\r%s%.1f MiB %s, %.0f MiB/s\x1b[K", m.label, float64(n)/(1<<20),
		m.verb, rate)
	m.shown = true
}

// clear erases the line, if one is shown. The caller holds mu.
func (m *Meter) clear() {
	if m.shown {
		fmt.Fprint(m.out, "\r\x1b[K")
		m.shown = false
	}
}

// Reader counts what is read through it.
type Reader struct {
	R io.Reader
	M *Meter
}

func (r Reader) Read(p []byte) (int, error) {
	n, err := r.R.Read(p)
	r.M.Add(int64(n))
	return n, err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
