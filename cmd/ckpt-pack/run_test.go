package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/archive"
	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stage"
	"github.com/ckpt/ckpt/lib/stream"
)

// sample returns a small record stream whose header names control.
func sample(t *testing.T, control string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := stream.NewWriter(&buf)
	h := stream.NewHeader("ckpt-scan")
	h.RootPID, h.Control, h.Kill = 42, control, control != ""
	must(t, w.WriteHeader(h))
	must(t, w.Write(image.KindTask, &image.Task{PID: 42, Comm: "x"}))
	must(t, w.Write(image.KindPages, &image.Pages{PID: 42, Addr: 4096, Data: make([]byte, 8192)}))
	must(t, w.End())
	return buf.Bytes()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func runPack(args []string, in io.Reader, out io.Writer) (string, error) {
	var stderr bytes.Buffer
	err := run(context.Background(), args, in, out, &stderr)
	return stderr.String(), err
}

func TestPackToFile(t *testing.T) {
	img := filepath.Join(t.TempDir(), "app.img")
	msg, err := runPack([]string{"-v", "-o", img}, bytes.NewReader(sample(t, "")), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "4 records (header 1, task 1, pages 1, end 1), 1 tasks") {
		t.Errorf("-v said %q", msg)
	}
	st, err := os.Stat(img)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("archive %v, %v", st, err)
	}
	f, _ := os.Open(img)
	defer f.Close()
	sum, err := archive.Verify(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sum.Header.Stages, " "); got != "ckpt-scan ckpt-pack" {
		t.Errorf("stages %q", got)
	}
	msg, err = runPack([]string{"--verify", img}, nil, io.Discard)
	if err != nil || !strings.Contains(msg, "ok: 4 records") || !strings.Contains(msg, "root pid 42") {
		t.Fatalf("verify said %q, %v", msg, err)
	}
}

func TestPackToStdout(t *testing.T) {
	var out bytes.Buffer
	if _, err := runPack(nil, bytes.NewReader(sample(t, "")), &out); err != nil {
		t.Fatal(err)
	}
	if _, err := archive.Verify(&out); err != nil {
		t.Fatal(err)
	}
}

// TestFailures checks that nothing is left behind and nothing is reported
// complete when the input or the output fails.
func TestFailures(t *testing.T) {
	dir := t.TempDir()
	s := sample(t, "")
	var packed bytes.Buffer
	if _, err := runPack(nil, bytes.NewReader(s), &packed); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		in   []byte
		out  string
		want string
	}{
		{"truncated", s[:len(s)-3], "app.img", "stream truncated"},
		{"empty", nil, "app.img", "empty input"},
		{"archive as input", packed.Bytes(), "app.img", "already a ckpt archive"},
		{"disk full", s, "/dev/full", "no space left on device"},
		{"no directory", s, "nodir/app.img", "no such file or directory"},
	} {
		out := c.out
		if !filepath.IsAbs(out) {
			out = filepath.Join(dir, out)
		}
		_, err := runPack([]string{"-o", out}, bytes.NewReader(c.in), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("%s: left %v behind", c.name, left[0].Name())
		}
	}
}

// fakeScan listens on a control socket like ckpt-scan --kill and sends
// on lines everything a stage says, then "closed".
func fakeScan(t *testing.T) (string, chan string) {
	path := filepath.Join(t.TempDir(), "control")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	lines := make(chan string, 10)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				lines <- "closed"
				return
			}
			lines <- strings.TrimSpace(line)
			if strings.HasPrefix(line, "complete") {
				conn.Write([]byte("ok killed\n"))
			}
		}
	}()
	return path, lines
}

func expect(t *testing.T, lines chan string, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-lines:
			if got != w {
				t.Fatalf("control socket got %q, want %q", got, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("control socket: no %q within 10 s", w)
		}
	}
}

func TestControlComplete(t *testing.T) {
	path, lines := fakeScan(t)
	img := filepath.Join(t.TempDir(), "app.img")
	msg, err := runPack([]string{"-v", "-o", img}, bytes.NewReader(sample(t, path)), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, lines, "hello ckpt-pack", "complete ckpt-pack", "closed")
	if !strings.Contains(msg, "ckpt-scan answered: ok killed") {
		t.Errorf("-v said %q", msg)
	}
}

func TestControlFailure(t *testing.T) {
	path, lines := fakeScan(t)
	s := sample(t, path)
	_, err := runPack([]string{"-o", "/dev/full"}, bytes.NewReader(s), io.Discard)
	if err == nil {
		t.Fatal("packing to /dev/full succeeded")
	}
	expect(t, lines, "hello ckpt-pack", "closed")
}

// TestReleasesUpstream runs ckpt-pack behind a pipe whose writer, like
// every stage, waits after its end record until its reader is gone.
func TestReleasesUpstream(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	released := make(chan error, 1)
	go func() {
		if _, err := w.Write(sample(t, "")); err != nil {
			released <- err
			return
		}
		released <- stage.WaitReaderGone(w)
	}()
	if _, err := runPack(nil, r, io.Discard); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-released:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream stage was not released within 10 s")
	}
}

func TestVerifyCorrupt(t *testing.T) {
	img := filepath.Join(t.TempDir(), "app.img")
	if _, err := runPack([]string{"-o", img}, bytes.NewReader(sample(t, "")), io.Discard); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(img)
	b[len(b)/2] ^= 0x10
	must(t, os.WriteFile(img, b, 0o600))
	_, err := runPack([]string{"-verify", img}, nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "at byte") {
		t.Fatalf("got %v", err)
	}
}

func TestHelpAndArgs(t *testing.T) {
	msg, err := runPack([]string{"--help"}, nil, io.Discard)
	if err != nil || !strings.Contains(msg, "Example:") {
		t.Fatalf("help: %q, %v", msg, err)
	}
	if _, err := runPack([]string{"extra"}, nil, io.Discard); err == nil {
		t.Fatal("an extra argument was accepted")
	}
}
