package tests

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
	"golang.org/x/sys/unix"
)

// addPending copies the record stream in to out, with a SIGUSR1 from the
// kernel (SI_USER) added to the signals pending for every process.
func addPending(t *testing.T, in, out string) {
	t.Helper()
	src, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	r := stream.NewReader(src)
	h, err := r.Header()
	if err != nil {
		t.Fatal(err)
	}
	w := stream.NewWriter(dst)
	if err := w.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	info := make([]byte, image.SigInfoSize)
	binary.LittleEndian.PutUint32(info, uint32(unix.SIGUSR1))
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		if rec.Kind != image.KindTask {
			if err := w.WriteRecord(rec); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var tk image.Task
		if err := rec.Decode(&tk); err != nil {
			t.Fatal(err)
		}
		tk.SharedPending = append(tk.SharedPending, info)
		if err := w.Write(image.KindTask, &tk); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
}

// TestRestartWithSignal restores a process that waits in pause() with a
// signal pending that it handles: as in the kernel, the handler runs and
// pause returns EINTR, so the process sees it woke. (Restoring the
// restart by rewinding the instruction pointer instead runs the handler
// and then pause again, and the process sleeps on.)
func TestRestartWithSignal(t *testing.T) {
	prog := compileC(t, "sigpause.c")
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	s := start(t, out, prog)
	waitFor(t, 10*time.Second, "READY", func() bool { return slices.Contains(lines(t, out), "READY") })
	waitFor(t, 10*time.Second, "pause", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", s.pid))
		return strings.HasSuffix(string(b), "do_sys_pause")
	})
	scanned, edited := filepath.Join(dir, "scan"), filepath.Join(dir, "edited")
	img := filepath.Join(dir, "img")
	if stderr, err := run(t, 30*time.Second, fmt.Sprintf("ckpt-scan %d > %s", s.pid, scanned)); err != nil {
		t.Fatalf("scan: %v\n%s", err, stderr)
	}
	addPending(t, scanned, edited)
	line := fmt.Sprintf("ckpt-files < %s | ckpt-mem | ckpt-pack > %s", edited, img)
	if stderr, err := run(t, 30*time.Second, line); err != nil {
		t.Fatalf("dump: %v\n%s", err, stderr)
	}
	killPID(s.pid)
	<-s.exited
	t.Cleanup(func() { killPID(s.pid) })
	// The image was read from a file scan, so nothing held the subject:
	// restore refuses it unless told the subject did not run meanwhile
	// (it was in pause()).
	stderr, err := run(t, 60*time.Second, "ckpt-restore "+img)
	if err == nil || !strings.Contains(stderr, "--accept-unfrozen") || procState(s.pid) != "" {
		t.Fatalf("restore of an unfrozen image: %v, state %q\n%s", err, procState(s.pid), stderr)
	}
	if stderr, err := run(t, 60*time.Second, "ckpt-restore --accept-unfrozen "+img); err != nil {
		t.Fatalf("restore: %v\n%s", err, stderr)
	}
	waitFor(t, 10*time.Second, "the restored process to wake from pause", func() bool {
		return slices.Contains(lines(t, out), "WOKE 1")
	})
}
