package tests

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The dump pipeline, run by the test with a relay of its own on every
// pipe (ckpt-scan | relay | ckpt-files | relay | ckpt-mem | relay |
// ckpt-pack | relay > img), so a test can hold the stream at a chosen
// record, kill a stage there, and let the rest go on. A relay passes on
// what the protocol needs: the end of its input (EOF downstream) and the
// close of its output (the reader gone, upstream).

// stageNames are the stages of a dump, in order.
var stageNames = []string{"ckpt-scan", "ckpt-files", "ckpt-mem", "ckpt-pack"}

// stageProc is one running stage.
type stageProc struct {
	name   string
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

// relay copies one pipe to the next stage, or to the archive file.
type relay struct {
	from   *os.File // read end of the upstream stage's stdout
	to     *os.File // write end of the downstream stage's stdin, or the archive
	framed bool     // from carries a record stream: count records
	hold   int      // records (or reads, unframed) to pass before holding; -1 never
	held   chan struct{}
	resume chan struct{}
	gone   chan struct{} // closed when the reader of a piped "to" went away
	done   chan struct{}

	mu      sync.Mutex
	passed  int   // records (or reads) passed
	bytes   int64 // bytes passed
	closeTo sync.Once
	closeFr sync.Once
}

// pipeline is one dump run.
type pipeline struct {
	t      *testing.T
	stages []*stageProc
	relays []*relay // relays[i] carries the stdout of stages[i]
	img    string
}

// holdAt says where relays hold: key i is the relay after stage i, value
// the records it passes first (for the last one, the archive, the reads).
type holdAt map[int]int

// startDump starts the pipeline on pid. Relays not named in holds never
// hold. The archive goes to a file in a new temporary directory.
func startDump(t *testing.T, pid int, kill bool, holds holdAt) *pipeline {
	t.Helper()
	p := &pipeline{t: t, img: filepath.Join(t.TempDir(), "img")}
	img, err := os.Create(p.img)
	if err != nil {
		t.Fatal(err)
	}
	var stdin *os.File
	for i, name := range stageNames {
		args := []string{}
		if i == 0 {
			if kill {
				args = append(args, "--kill")
			}
			args = append(args, strconv.Itoa(pid))
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		sp := &stageProc{name: name, cmd: exec.Command(tool(name), args...),
			done: make(chan struct{})}
		sp.cmd.Stdin, sp.cmd.Stdout, sp.cmd.Stderr = stdin, outW, &sp.stderr
		if stdin == nil {
			sp.cmd.Stdin = nil // /dev/null
		}
		if err := sp.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			sp.err = sp.cmd.Wait()
			close(sp.done)
		}()
		outW.Close()
		if stdin != nil {
			stdin.Close()
		}
		p.stages = append(p.stages, sp)
		t.Cleanup(func() { killPID(sp.cmd.Process.Pid) })

		var to *os.File
		if i < len(stageNames)-1 {
			var r *os.File
			if r, to, err = os.Pipe(); err != nil {
				t.Fatal(err)
			}
			stdin = r
		} else {
			to = img
		}
		hold, ok := holds[i]
		if !ok {
			hold = -1
		}
		rl := &relay{from: outR, to: to, framed: i < len(stageNames)-1, hold: hold,
			held: make(chan struct{}), resume: make(chan struct{}),
			gone: make(chan struct{}), done: make(chan struct{})}
		p.relays = append(p.relays, rl)
		go rl.run()
		if i < len(stageNames)-1 {
			go rl.watchReader()
		}
	}
	t.Cleanup(p.resume)
	return p
}

// stage returns the running stage called name.
func (p *pipeline) stage(name string) *stageProc {
	for _, s := range p.stages {
		if s.name == name {
			return s
		}
	}
	p.t.Fatalf("no stage %s", name)
	return nil
}

// waitHeld waits until relay i holds.
func (p *pipeline) waitHeld(i int, d time.Duration) {
	p.t.Helper()
	select {
	case <-p.relays[i].held:
	case <-time.After(d):
		p.t.Fatalf("relay after %s did not reach its hold point in %v (%s)",
			stageNames[i], d, p.stderrs())
	}
}

// kill sends SIGKILL to one stage and waits for it to die.
func (p *pipeline) kill(name string) {
	p.t.Helper()
	s := p.stage(name)
	_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		p.t.Fatalf("%s did not die of SIGKILL in 5s", name)
	}
}

// resume lets every relay go on.
func (p *pipeline) resume() {
	for _, r := range p.relays {
		select {
		case <-r.resume:
		default:
			close(r.resume)
		}
	}
}

// wait waits for every stage to exit and returns, by name, the error each
// exited with (nil for success).
func (p *pipeline) wait(d time.Duration) map[string]error {
	p.t.Helper()
	deadline := time.After(d)
	out := map[string]error{}
	for _, s := range p.stages {
		select {
		case <-s.done:
			out[s.name] = s.err
		case <-deadline:
			p.t.Fatalf("%s still runs %v into the dump: a stage hangs (%s)", s.name, d, p.stderrs())
		}
	}
	select {
	case <-p.relays[len(p.relays)-1].done:
	case <-deadline:
		p.t.Fatalf("the archive relay did not finish in %v", d)
	}
	return out
}

// stderrs returns what the stages said, for failure messages.
func (p *pipeline) stderrs() string {
	var b strings.Builder
	for _, s := range p.stages {
		select {
		case <-s.done:
			fmt.Fprintf(&b, "[%s: %v: %s] ", s.name, s.err, strings.TrimSpace(s.stderr.String()))
		default:
			fmt.Fprintf(&b, "[%s: running] ", s.name)
		}
	}
	return b.String()
}

func (r *relay) run() {
	defer close(r.done)
	defer r.closeFrom()
	defer r.closeOut()
	br := bufio.NewReaderSize(r.from, 1<<20)
	buf := make([]byte, 1<<20)
	for {
		r.mu.Lock()
		passed := r.passed
		r.mu.Unlock()
		if passed == r.hold {
			close(r.held)
			<-r.resume
		}
		if r.hold == holdEnd && passed == 0 {
			if err := r.buffer(br); err != nil {
				return
			}
			continue
		}
		var n int64
		var err error
		if r.framed {
			n, _, err = copyRecord(r.to, br)
		} else {
			var m int
			if m, err = br.Read(buf); m > 0 {
				_, werr := r.to.Write(buf[:m])
				n, err = int64(m), errors.Join(err, werr)
			}
		}
		r.mu.Lock()
		r.bytes += n
		if err == nil {
			r.passed++
		}
		r.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// holdEnd as a hold point: read the upstream stage's whole stream, up
// to its end record, but pass nothing on until resumed. The upstream
// stage has then done all its work and waits for its reader to go.
const holdEnd = -2

// buffer reads records up to the end record, holds, then passes them on.
func (r *relay) buffer(br *bufio.Reader) error {
	var buf bytes.Buffer
	var n int
	for {
		_, kind, err := copyRecord(&buf, br)
		if err != nil {
			return err
		}
		n++
		if kind == "end" {
			break
		}
	}
	close(r.held)
	<-r.resume
	if _, err := r.to.Write(buf.Bytes()); err != nil {
		return err
	}
	r.mu.Lock()
	r.passed += n
	r.bytes += int64(buf.Len())
	r.mu.Unlock()
	return nil
}

func (r *relay) closeOut()  { r.closeTo.Do(func() { r.to.Close() }) }
func (r *relay) closeFrom() { r.closeFr.Do(func() { r.from.Close() }) }

// watchReader closes the relay's input once the reader of its output
// went away, as a stage's Finish would see it.
func (r *relay) watchReader() {
	rc, err := r.to.SyscallConn()
	if err != nil {
		return
	}
	for {
		var revents int16
		cerr := rc.Control(func(fd uintptr) {
			fds := []unix.PollFd{{Fd: int32(fd)}}
			if n, _ := unix.Poll(fds, 100); n > 0 {
				revents = fds[0].Revents
			}
		})
		if cerr != nil {
			return // closed: the input ended
		}
		if revents&(unix.POLLERR|unix.POLLHUP) != 0 {
			close(r.gone)
			r.closeFrom()
			return
		}
	}
}

// copyRecord copies one record of the stream framing (docs/FORMAT.md)
// and returns its kind.
func copyRecord(w io.Writer, r *bufio.Reader) (int64, string, error) {
	var head []byte
	b, err := r.ReadByte()
	if err != nil {
		return 0, "", err
	}
	if b != 0x92 {
		return 0, "", fmt.Errorf("bad frame byte %#x", b)
	}
	head = append(head, b)
	k, err := r.ReadByte()
	if err != nil {
		return 0, "", err
	}
	head = append(head, k)
	var kindLen int
	switch {
	case k&0xe0 == 0xa0:
		kindLen = int(k & 0x1f)
	case k == 0xd9:
		l, err := r.ReadByte()
		if err != nil {
			return 0, "", err
		}
		head, kindLen = append(head, l), int(l)
	default:
		return 0, "", fmt.Errorf("bad kind byte %#x", k)
	}
	kind := make([]byte, kindLen)
	if _, err := io.ReadFull(r, kind); err != nil {
		return 0, "", err
	}
	head = append(head, kind...)
	bt, err := r.ReadByte()
	if err != nil {
		return 0, "", err
	}
	size := map[byte]int{0xc4: 1, 0xc5: 2, 0xc6: 4}[bt]
	if size == 0 {
		return 0, "", fmt.Errorf("bad body byte %#x", bt)
	}
	lenBytes := make([]byte, size)
	if _, err := io.ReadFull(r, lenBytes); err != nil {
		return 0, "", err
	}
	head = append(append(head, bt), lenBytes...)
	var bodyLen uint64
	for _, c := range lenBytes {
		bodyLen = bodyLen<<8 | uint64(c)
	}
	if _, err := w.Write(head); err != nil {
		return 0, "", err
	}
	n, err := io.CopyN(w, r, int64(bodyLen))
	return int64(len(head)) + n, string(kind), err
}
