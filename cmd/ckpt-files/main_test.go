package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/stream"
)

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"--help"}, nil, io.Discard, &stderr)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "Example:") {
		t.Fatalf("got %v, %q", err, stderr.String())
	}
}

func TestArgs(t *testing.T) {
	err := run(context.Background(), []string{"123"}, nil, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("an argument was accepted")
	}
}

// emptyStream is a stream from ckpt-scan with no records.
func emptyStream(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	w := stream.NewWriter(&b)
	if err := w.WriteHeader(stream.NewHeader("ckpt-scan")); err != nil {
		t.Fatal(err)
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestVerbose(t *testing.T) {
	var out, stderr bytes.Buffer
	err := run(context.Background(), []string{"-v"}, bytes.NewReader(emptyStream(t)), &out, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	want := "ckpt-files: 0 tasks, 0 fds, 0 file mappings: 0 files in "
	if !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("stderr %q", stderr.String())
	}
	if _, err := stream.NewReader(&out).Next(); err != io.EOF {
		t.Errorf("output: %v, want an empty stream", err)
	}
}

// TestWaitsForReader checks that the stage, writing to a pipe, returns
// only once the pipe's reader has gone: stages downstream hold the tree
// through it until then.
func TestWaitsForReader(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), nil, bytes.NewReader(emptyStream(t)), w, io.Discard)
	}()
	if _, err := stream.NewReader(r).Next(); err != io.EOF {
		t.Fatalf("read the output: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("returned (%v) while its reader was still there", err)
	case <-time.After(100 * time.Millisecond):
	}
	r.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting 10s after its reader went away")
	}
}

func TestSize(t *testing.T) {
	good := map[string]int64{"0": 0, "123": 123, "1K": 1024, "64M": 64 << 20, "64MiB": 64 << 20,
		"2g": 2 << 30, "1T": 1 << 40, "10B": 10, "3KB": 3072}
	for in, want := range good {
		var s size
		if err := s.Set(in); err != nil || int64(s) != want {
			t.Errorf("%q: got %d, %v; want %d", in, s, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1", "1.5G", "1X", "9999999T", "iB"} {
		var s size
		if err := s.Set(in); err == nil {
			t.Errorf("%q: got %d, want an error", in, s)
		}
	}
}

func TestMaxGhostSizeFlag(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"--max-ghost-size", "lots"},
		bytes.NewReader(emptyStream(t)), io.Discard, &stderr)
	if err == nil || !strings.Contains(stderr.String(), "bad size") {
		t.Fatalf("got %v, %q", err, stderr.String())
	}
}
