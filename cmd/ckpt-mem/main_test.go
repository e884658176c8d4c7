package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/pages/pagestest"
	"github.com/ckpt/ckpt/lib/stream"
)

// childSrc fills 300 anonymous pages, the first 100 with zeros, the rest
// with a pattern, prints their address and waits.
const childSrc = `
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
	char *a = mmap(NULL, 300 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(a, 0, 100 * 4096);
	for (long i = 100 * 4096; i < 300 * 4096; i++)
		a[i] = (char)(i % 251 + 1);
	printf("%lx\n", (unsigned long)a);
	fflush(stdout);
	for (;;)
		pause();
}
`

// input writes a stream of a header, a record of an unknown kind, the
// task, an fd record, the task again (a second task for the dumper) and
// the end.
func input(t *testing.T, task *image.Task) []byte {
	t.Helper()
	var b bytes.Buffer
	w := stream.NewWriter(&b)
	steps := []error{
		w.WriteHeader(stream.NewHeader("test")),
		w.WriteRecord(stream.Record{Kind: "future", Body: []byte{0x01}}),
		w.Write(image.KindTask, task),
		w.Write(image.KindFd, &image.Fd{PID: task.PID, Fd: 3, Link: "/dev/null"}),
		w.Write(image.KindTask, task),
		w.End(),
	}
	if err := errors.Join(steps...); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func readStream(t *testing.T, b []byte) (*image.Header, []stream.Record, error) {
	t.Helper()
	r := stream.NewReader(bytes.NewReader(b))
	h, err := r.Header()
	if err != nil {
		return nil, nil, err
	}
	var recs []stream.Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return h, recs, nil
		}
		if err != nil {
			return h, recs, err
		}
		recs = append(recs, rec)
	}
}

func stoppedChild(t *testing.T) (*image.Task, uint64) {
	t.Helper()
	pagestest.RequireRoot(t)
	p, fields := pagestest.Start(t, pagestest.BuildC(t, childSrc))
	addr, err := strconv.ParseUint(fields[0], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	task := &image.Task{PID: p.Pid, Comm: "child"}
	if task.Vmas, err = pagestest.Vmas(p.Pid); err != nil {
		t.Fatal(err)
	}
	if task.StartTime, err = pagestest.StartTime(p.Pid); err != nil {
		t.Fatal(err)
	}
	return task, addr
}

func TestRun(t *testing.T) {
	task, addr := stoppedChild(t)
	in := input(t, task)
	var out, errs bytes.Buffer
	if err := run(context.Background(), []string{"-v"}, bytes.NewReader(in), &out, &errs); err != nil {
		t.Fatal(err)
	}
	h, recs, err := readStream(t, out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(h.Stages, []string{"test", "ckpt-mem"}) {
		t.Errorf("stages %q", h.Stages)
	}
	_, inRecs, _ := readStream(t, in)

	// The input's records come out untouched, the pages right after the task.
	var kinds []string
	for _, r := range recs {
		if k := r.Kind; len(kinds) == 0 || kinds[len(kinds)-1] != k {
			kinds = append(kinds, k)
		}
	}
	want := []string{"future", "task", "pages", "fd", "task", "pages"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("record kinds %q, want %q", kinds, want)
	}
	passed := slices.DeleteFunc(slices.Clone(recs), func(r stream.Record) bool {
		return r.Kind == image.KindPages
	})
	if !slices.EqualFunc(passed, inRecs, func(a, b stream.Record) bool {
		return a.Kind == b.Kind && bytes.Equal(a.Body, b.Body)
	}) {
		t.Error("records were not passed through untouched")
	}

	checkPages(t, task.PID, addr, recs)
	if w := fmt.Sprintf("ckpt-mem: pid %d: ", task.PID); !strings.HasPrefix(errs.String(), w) ||
		!strings.Contains(errs.String(), "ckpt-mem: 2 tasks: ") {
		t.Errorf("-v printed %q, want a line per task and a summary", errs.String())
	}
}

// checkPages checks the pages records against the process's memory, and
// that the child's 200 patterned pages are there (once per task record),
// its zero pages not.
func checkPages(t *testing.T, pid int, addr uint64, recs []stream.Record) {
	t.Helper()
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	var inChild int
	for _, r := range recs {
		if r.Kind != image.KindPages {
			continue
		}
		var p image.Pages
		if err := r.Decode(&p); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, len(p.Data))
		if _, err := mem.ReadAt(b, int64(p.Addr)); err != nil || !bytes.Equal(b, p.Data) ||
			p.PID != pid || len(p.Data) > image.MaxChunk {
			t.Fatalf("pages record at %#x of %d bytes is wrong (%v)", p.Addr, len(p.Data), err)
		}
		for a := p.Addr; a < p.Addr+uint64(len(p.Data)); a += 4096 {
			switch {
			case a >= addr && a < addr+100*4096:
				t.Errorf("zero page at %#x dumped", a)
			case a >= addr && a < addr+300*4096:
				inChild++
			}
		}
	}
	if inChild != 2*200 {
		t.Errorf("%d of the child's 200 patterned pages dumped for its two task records",
			inChild)
	}
}

func TestRunFailsOnSharedAnon(t *testing.T) {
	task, _ := stoppedChild(t)
	task.Vmas = append(task.Vmas, image.Vma{Start: 0x10000, End: 0x11000, Kind: image.VmaAnon,
		Shared: true, Name: "/dev/zero (deleted)"})
	var out bytes.Buffer
	err := run(context.Background(), nil, bytes.NewReader(input(t, task)), &out, io.Discard)
	want := fmt.Sprintf("pid %d: mapping 10000-11000 (/dev/zero (deleted)): shared anonymous",
		task.PID)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want an error with %q", err, want)
	}
	if _, _, err := readStream(t, out.Bytes()); err == nil {
		t.Fatal("the output of a failed dump reads as a whole stream")
	}
}

func TestHelp(t *testing.T) {
	var errs bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, nil, io.Discard, &errs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errs.String(), "Example:") {
		t.Errorf("help says %q", errs.String())
	}
}
