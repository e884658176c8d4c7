package progress

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ckpt/ckpt/internal/ptytest"
)

// readFor reads what the terminal shows until want appears or 5 s pass.
func readFor(t *testing.T, master *os.File, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 4096)
	deadline := time.Now().Add(5 * time.Second)
	for !bytes.Contains(got, []byte(want)) && time.Now().Before(deadline) {
		_ = master.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, _ := master.Read(buf)
		got = append(got, buf[:n]...)
	}
	if !bytes.Contains(got, []byte(want)) {
		t.Fatalf("the terminal shows %q, want %q in it", got, want)
	}
	return string(got)
}

func TestDrawsOnATerminal(t *testing.T) {
	master, slave := ptytest.Open(t)
	if !isTerminal(slave) {
		t.Fatal("the pty slave is not a terminal")
	}
	m := start(slave, "ckpt-x", "read", true, 0, 10*time.Millisecond)
	m.Add(5 << 20)
	readFor(t, master, "\rckpt-x: 5.0 MiB read, ")
	fmt.Fprintf(m, "ckpt-x: pid 1 done\n")
	// The message starts on a cleared line.
	readFor(t, master, "\r\x1b[Kckpt-x: pid 1 done")
	m.Add(3 << 20)
	readFor(t, master, "ckpt-x: 8.0 MiB read")
	m.Stop()
	readFor(t, master, "\r\x1b[K")
	m.Stop() // twice is fine
}

func TestQuietElsewhere(t *testing.T) {
	var out bytes.Buffer
	if isTerminal(&out) {
		t.Fatal("a buffer is a terminal")
	}
	m := Start(&out, "ckpt-x", "read")
	m.Add(1 << 30)
	fmt.Fprintf(m, "said\n")
	time.Sleep(20 * time.Millisecond)
	m.Stop()
	if out.String() != "said\n" {
		t.Fatalf("wrote %q, want only the message", out.String())
	}
}

func TestQuietWhenShort(t *testing.T) {
	master, slave := ptytest.Open(t)
	m := start(slave, "ckpt-x", "read", true, time.Hour, time.Millisecond)
	m.Add(1 << 20)
	time.Sleep(20 * time.Millisecond)
	m.Stop()
	buf := make([]byte, 64)
	_ = master.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _ := master.Read(buf); n > 0 && strings.Contains(string(buf[:n]), "MiB") {
		t.Fatalf("a stage shorter than the delay drew %q", buf[:n])
	}
}

func TestReader(t *testing.T) {
	m := Start(new(bytes.Buffer), "x", "read")
	r := Reader{strings.NewReader("hello"), m}
	b := make([]byte, 3)
	r.Read(b)
	r.Read(b)
	if m.n.Load() != 5 {
		t.Fatalf("counted %d bytes, want 5", m.n.Load())
	}
}
