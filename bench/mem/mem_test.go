// Package mem measures ckpt-mem: how fast it dumps a process with a lot of
// dirtied anonymous memory, and how much memory it needs to do so.
//
//	go test ./bench/mem                                # peak RSS check, 512 MiB
//	go test ./bench/mem -run '^$' -bench . -benchtime 5x  # 1 GiB; see run.sh
//
// There is no ckpt-scan here: the tests write the header and task record
// by hand, with the vmas read from /proc/PID/maps of a child stopped with
// SIGSTOP, and pipe them into a freshly built ckpt-mem.
package mem

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/pages"
	"github.com/ckpt/ckpt/lib/pages/pagestest"
	"github.com/ckpt/ckpt/lib/stream"
)

// childSrc maps argv[1] MiB of anonymous memory, fills the first half
// with random bytes and the second with a repeating 256-byte pattern (no
// page of it is all zero), prints "ready" and waits.
const childSrc = `
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
	size_t size = (size_t)atol(argv[1]) << 20;
	uint64_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return 1;
	uint64_t x = 88172645463325252ull;
	size_t words = size / 8;
	for (size_t i = 0; i < words / 2; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		m[i] = x;
	}
	for (size_t i = words / 2; i < words; i++)
		m[i] = 0x0101010101010101ull * (i % 32 + 1);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
`

var ckptMem string // the ckpt-mem binary, built by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ckpt-bench-mem")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ckptMem = filepath.Join(dir, "ckpt-mem")
	out, err := exec.Command("go", "build", "-o", ckptMem,
		"github.com/ckpt/ckpt/cmd/ckpt-mem").CombinedOutput()
	code := 1
	if err != nil {
		fmt.Fprintf(os.Stderr, "build ckpt-mem: %v\n%s", err, out)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// subject is a stopped child with mib MiB of dirtied memory, and the
// stream that describes it.
type subject struct {
	pid   int
	mib   int
	input []byte
}

func startSubject(tb testing.TB, mib int) *subject {
	tb.Helper()
	pagestest.RequireRoot(tb)
	p, _ := pagestest.Start(tb, pagestest.BuildC(tb, childSrc), strconv.Itoa(mib))
	task := image.Task{PID: p.Pid, Comm: "subject"}
	var err error
	if task.Vmas, err = pagestest.Vmas(p.Pid); err != nil {
		tb.Fatal(err)
	}
	if task.StartTime, err = pagestest.StartTime(p.Pid); err != nil {
		tb.Fatal(err)
	}

	var b bytes.Buffer
	w := stream.NewWriter(&b)
	if err := errors.Join(w.WriteHeader(stream.NewHeader("bench")),
		w.Write(image.KindTask, &task), w.End()); err != nil {
		tb.Fatal(err)
	}
	return &subject{pid: p.Pid, mib: mib, input: b.Bytes()}
}

// result is what one run of ckpt-mem did.
type result struct {
	took    time.Duration // from start until its output ended
	bytes   int64         // pages record bytes in its output (0 for /dev/null)
	peakRSS int64         // bytes: ckpt-mem's VmHWM
	verbose string        // what -v said
}

// Where run sends ckpt-mem's output.
const (
	toNull    = iota // /dev/null
	toReader         // a pipe, read here with stream.Reader, which checks it all
	toCounter        // a pipe, read here by countFrames, which costs next to nothing
)

// run runs ckpt-mem -v on the subject's stream, its output going to out.
func (s *subject) run(tb testing.TB, out int) result {
	tb.Helper()
	cmd := exec.Command(ckptMem, "-v")
	cmd.Stdin = bytes.NewReader(s.input)
	var errs bytes.Buffer
	cmd.Stderr = &errs
	var pipe io.ReadCloser
	if out == toNull {
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			tb.Fatal(err)
		}
		defer null.Close()
		cmd.Stdout = null
	} else {
		var err error
		if pipe, err = cmd.StdoutPipe(); err != nil {
			tb.Fatal(err)
		}
	}

	start := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	var res result
	stop := pagestest.WatchHWM(cmd.Process.Pid, &res.peakRSS)
	if pipe != nil {
		count := countPages
		if out == toCounter {
			count = countFrames
		}
		n, err := count(pipe)
		res.took, res.bytes = time.Since(start), n
		stop() // ckpt-mem is still there: it waits for the pipe to close
		pipe.Close()
		if err != nil {
			_ = cmd.Wait()
			tb.Fatalf("ckpt-mem output: %v\n%s", err, errs.String())
		}
	}
	if err := cmd.Wait(); err != nil {
		tb.Fatalf("ckpt-mem: %v\n%s", err, errs.String())
	}
	if pipe == nil {
		res.took = time.Since(start)
		stop()
	}
	res.verbose = errs.String()
	return res
}

// countPages reads a stream to its end with stream.Reader and counts the
// bytes of pages records (their bodies: the data and about 40 bytes each).
func countPages(r io.Reader) (int64, error) {
	sr := stream.NewReader(r)
	var n int64
	for {
		rec, err := sr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if rec.Kind == image.KindPages {
			n += int64(len(rec.Body))
		}
	}
}

// countFrames reads a stream as stream.Writer frames it, [kind, body]
// with a fixstr kind and a bin32 body, into one reused buffer up to the
// end record, and counts the bytes of pages bodies. It checks nothing
// else: it stands for a consumer that costs nothing.
func countFrames(r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	buf := make([]byte, stream.MaxRecord)
	var n int64
	for {
		var head [2]byte
		if _, err := io.ReadFull(br, head[:]); err != nil {
			return n, err
		}
		if head[0] != 0x92 || head[1]&0xe0 != 0xa0 {
			return n, fmt.Errorf("unexpected frame start % x", head)
		}
		kind := make([]byte, head[1]&0x1f)
		var size [5]byte
		if _, err := io.ReadFull(br, kind); err != nil {
			return n, err
		}
		if _, err := io.ReadFull(br, size[:]); err != nil {
			return n, err
		}
		body := binary.BigEndian.Uint32(size[1:])
		if size[0] != 0xc6 || body > stream.MaxRecord {
			return n, fmt.Errorf("unexpected body header % x", size)
		}
		if _, err := io.ReadFull(br, buf[:body]); err != nil {
			return n, err
		}
		switch string(kind) {
		case image.KindPages:
			n += int64(body)
		case image.KindEnd:
			return n, nil
		}
	}
}

// TestPeakRSS dumps a 512 MiB process and checks that ckpt-mem's peak RSS
// stays under 64 MiB: its memory use must not grow with the process.
func TestPeakRSS(t *testing.T) {
	s := startSubject(t, 512)
	res := s.run(t, toReader)
	t.Logf("512 MiB through a pipe: %v, %.0f MB/s, peak RSS %.1f MiB; %s", res.took,
		float64(res.bytes)/res.took.Seconds()/1e6, float64(res.peakRSS)/(1<<20), res.verbose)
	if res.bytes < 512<<20 {
		t.Errorf("dumped %d bytes, want at least 512 MiB", res.bytes)
	}
	if res.peakRSS >= 64<<20 {
		t.Errorf("peak RSS %d bytes, want under 64 MiB", res.peakRSS)
	}
}

// benchMiB is the subject's size for benchmarks: CKPT_BENCH_MIB, or 1024.
func benchMiB(b *testing.B) int {
	if s := os.Getenv("CKPT_BENCH_MIB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("CKPT_BENCH_MIB=%q: %v", s, err)
		}
		return n
	}
	return 1024
}

// BenchmarkCkptMem runs ckpt-mem on a process of 1 GiB of dirtied memory,
// its output to /dev/null, and through a pipe to a frame counter and to a
// stream.Reader (what a real consumer would do).
func BenchmarkCkptMem(b *testing.B) {
	s := startSubject(b, benchMiB(b))
	for _, tc := range []struct {
		name string
		out  int
	}{{"devnull", toNull}, {"pipe-counter", toCounter}, {"pipe-stream-reader", toReader}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(s.mib) << 20)
			var peak int64
			for b.Loop() {
				res := s.run(b, tc.out)
				peak = max(peak, res.peakRSS)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
		})
	}
}

// BenchmarkDumper runs the page dumper in process with an emit that does
// nothing: the cost of finding, reading and checking pages alone.
func BenchmarkDumper(b *testing.B) {
	s := startSubject(b, benchMiB(b))
	vmas, err := pagestest.Vmas(s.pid)
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range []pages.Method{pages.Scan, pages.Read} {
		b.Run(m.String(), func(b *testing.B) {
			b.SetBytes(int64(s.mib) << 20)
			d := pages.NewDumper(0)
			d.Method = m
			for b.Loop() {
				if _, err := d.Dump(s.pid, 0, vmas, func(*pages.Run) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
