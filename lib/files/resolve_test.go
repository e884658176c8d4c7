package files

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
)

// self is a task record of the test process, with the right start time
// and nothing else.
func self(t *testing.T) *image.Task {
	t.Helper()
	st, err := startTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return &image.Task{PID: os.Getpid(), StartTime: st}
}

func TestTaskChanged(t *testing.T) {
	task := self(t)
	task.StartTime++
	_, err := Resolve(context.Background(), []*image.Task{task}, nil, Options{})
	var fe *Error
	if !errors.As(err, &fe) || !errors.Is(err, ErrChanged) || fe.Use.PID != os.Getpid() {
		t.Fatalf("got %v, want the task refused as changed", err)
	}
}

func TestFdChanged(t *testing.T) {
	f, err := os.Open("testdata/stat-cat")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	live, err := statFollow(procPath(Use{Kind: UseFd, PID: os.Getpid(), Fd: int(f.Fd())}))
	if err != nil {
		t.Fatal(err)
	}
	fd := &image.Fd{PID: os.Getpid(), Fd: int(f.Fd()), Link: f.Name(),
		Dev: live.Dev, Ino: live.Ino + 1}
	_, err = Resolve(context.Background(), []*image.Task{self(t)}, []*image.Fd{fd}, Options{})
	if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "the scan saw inode") {
		t.Fatalf("got %v, want the fd refused as changed", err)
	}
}

func TestFdWithoutTask(t *testing.T) {
	fd := &image.Fd{PID: os.Getpid(), Fd: 0, Link: "/dev/null"}
	_, err := Resolve(context.Background(), nil, []*image.Fd{fd}, Options{})
	if err == nil || !strings.Contains(err.Error(), "no task record") {
		t.Fatalf("got %v", err)
	}
}

func TestPassThrough(t *testing.T) {
	var in bytes.Buffer
	w := stream.NewWriter(&in)
	if err := w.WriteHeader(stream.NewHeader("ckpt-scan")); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRecord(stream.Record{Kind: "future-kind", Body: []byte{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	sum, err := Run(context.Background(), &in, &out, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := stream.NewReader(&out)
	rec, err := r.Next()
	if err != nil || rec.Kind != "future-kind" || !bytes.Equal(rec.Body, []byte{1, 2, 3}) {
		t.Fatalf("got %+v, %v", rec, err)
	}
	if _, err := r.Next(); err == nil || sum.Tasks != 0 {
		t.Fatalf("want the end after the one record; summary %+v", sum)
	}
}

func TestTwice(t *testing.T) {
	var in bytes.Buffer
	w := stream.NewWriter(&in)
	h := stream.NewHeader("ckpt-scan")
	h.Stages = append(h.Stages, StageName)
	if err := w.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := Run(context.Background(), &in, &out, Options{}, nil); err == nil {
		t.Fatal("a stream that went through ckpt-files was taken again")
	}
}

func TestTruncatedInput(t *testing.T) {
	var in bytes.Buffer
	w := stream.NewWriter(&in)
	if err := w.WriteHeader(stream.NewHeader("ckpt-scan")); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(image.KindTask, self(t)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := Run(context.Background(), &in, &out, Options{}, nil); !errors.Is(err, stream.ErrTruncated) {
		t.Fatalf("got %v, want a truncated stream refused", err)
	}
}
