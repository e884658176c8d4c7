package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stage"
	"github.com/ckpt/ckpt/lib/stream"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// runShow runs ckpt-show on input with args, and returns stdout, stderr and
// the error.
func runShow(input []byte, args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, bytes.NewReader(input), &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		must(t, os.MkdirAll("testdata", 0o755))
		must(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (go test -update rewrites it); output:\n%s",
			path, got)
	}
}

func TestGolden(t *testing.T) {
	s, a := sampleStream(t), sampleArchive(t)
	if *update { // a fixed input to try ckpt-show on; the end record's map is unordered
		must(t, os.WriteFile(filepath.Join("testdata", "sample.stream"), s, 0o644))
	}
	fixed, err := os.ReadFile(filepath.Join("testdata", "sample.stream"))
	must(t, err)
	for _, c := range []struct {
		golden string
		input  []byte
		args   []string
		writes bool // with -update; else it is only compared
	}{
		{"sample.txt", s, nil, true},
		{"sample.jsonl", s, []string{"-json"}, true},
		{"sample-archive.txt", a, nil, true},
		{"sample.jsonl", a, []string{"--json"}, false}, // the same records as the stream
		{"sample.txt", fixed, nil, false},
		{"sample.jsonl", fixed, []string{"-json"}, false},
	} {
		t.Run(c.golden, func(t *testing.T) {
			out, msg, err := runShow(c.input, c.args...)
			if err != nil || msg != "" {
				t.Fatalf("error %v, stderr %q", err, msg)
			}
			if c.writes || !*update {
				golden(t, c.golden, []byte(out))
			}
		})
	}
}

func TestFileArgument(t *testing.T) {
	img := filepath.Join(t.TempDir(), "app.img")
	must(t, os.WriteFile(img, sampleArchive(t), 0o600))
	out, _, err := runShow(nil, img)
	if err != nil || !strings.Contains(out, "archive   ") {
		t.Fatalf("%v:\n%s", err, out)
	}
	_, _, err = runShow(nil, filepath.Join(t.TempDir(), "none.img"))
	if err == nil || !strings.Contains(err.Error(), "none.img") {
		t.Fatalf("missing file: %v", err)
	}
	if _, _, err := runShow(nil, img, img); err == nil {
		t.Fatal("two files accepted")
	}
	long := filepath.Join(t.TempDir(), "long.stream")
	must(t, os.WriteFile(long, append(sampleStream(t), "more"...), 0o600))
	out, _, err = runShow(nil, "-json", long)
	if err == nil || !strings.Contains(err.Error(), "data after the end record, from byte") ||
		len(parseLines(t, out)) != len(sampleRecords())+2 {
		t.Fatalf("stream with data after its end: %v\n%s", err, out)
	}
}

func TestHelp(t *testing.T) {
	_, msg, err := runShow(nil, "--help")
	if err != nil || !strings.Contains(msg, "Example") || !strings.Contains(msg, "-json") {
		t.Fatalf("help: %v, %q", err, msg)
	}
}

// TestJSONParsesBack reads the -json output with encoding/json and checks
// every record against what was written.
func TestJSONParsesBack(t *testing.T) {
	out, _, err := runShow(sampleStream(t), "-json")
	must(t, err)
	recs := sampleRecords()
	lines := parseLines(t, out)
	if len(lines) != len(recs)+2 {
		t.Fatalf("%d lines for %d records", len(lines), len(recs)+2)
	}
	var prev int64 = -1
	for i, l := range lines {
		if l.Record != i || l.Offset <= prev {
			t.Errorf("line %d: record %d at offset %d after %d", i, l.Record, l.Offset, prev)
		}
		prev = l.Offset
		if i > 0 && i <= len(recs) && l.Kind != recs[i-1].Kind {
			t.Errorf("line %d: kind %q, want %q", i, l.Kind, recs[i-1].Kind)
		}
	}
	checkHeaderAndEnd(t, lines)
	checkData(t, lines, recs)

	// Registers come back exact, above 2^53 too.
	sh := lines[9]
	if sh.Kind != image.KindTask {
		t.Fatalf("line 9 is %s", sh.Kind)
	}
	regs := sh.Body["threads"].([]any)[0].(map[string]any)["regs"].([]any)
	if regs[10].(json.Number) != "18446744073709551104" || regs[15].(json.Number) != "61" {
		t.Errorf("rax %v, orig_rax %v", regs[10], regs[15])
	}
	if got := lines[len(lines)-2].Body["path"]; got != "/sys/fs/cgroup/app" {
		t.Errorf("unknown kind's body: path %v", got)
	}
}

type line struct {
	Record int            `json:"record"`
	Offset int64          `json:"offset"`
	Kind   string         `json:"kind"`
	Body   map[string]any `json:"body"`
}

func parseLines(t *testing.T, out string) []line {
	t.Helper()
	var lines []line
	for i, s := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if s == "" {
			break
		}
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		var l line
		if err := d.Decode(&l); err != nil {
			t.Fatalf("line %d %q: %v", i, s, err)
		}
		lines = append(lines, l)
	}
	return lines
}

func checkHeaderAndEnd(t *testing.T, lines []line) {
	t.Helper()
	h, e := lines[0], lines[len(lines)-1]
	if h.Kind != "header" || h.Body["magic"] != image.Magic ||
		fmt.Sprint(h.Body["stages"]) != "[ckpt-scan ckpt-files ckpt-mem]" {
		t.Errorf("header line %+v", h)
	}
	if e.Kind != "end" || e.Body["records"].(json.Number) != json.Number(fmt.Sprint(len(lines)-1)) {
		t.Errorf("end line %+v", e)
	}
	if kinds := e.Body["kinds"].(map[string]any); kinds["pages"].(json.Number) != "3" {
		t.Errorf("end kinds %v", kinds)
	}
}

// checkData checks that the data of pages and ghost-data records became
// their length and CRC-32C.
func checkData(t *testing.T, lines []line, recs []stream.Record) {
	t.Helper()
	seen := 0
	for i, rec := range recs {
		if rec.Kind != image.KindPages && rec.Kind != image.KindGhostData {
			continue
		}
		var p struct {
			Data []byte `msgpack:"data"`
		}
		must(t, rec.Decode(&p))
		crc := crc32.Checksum(p.Data, crc32.MakeTable(crc32.Castagnoli))
		d := lines[i+1].Body["data"].(map[string]any)
		if d["bytes"].(json.Number) != json.Number(fmt.Sprint(len(p.Data))) ||
			d["crc32c"] != fmt.Sprintf("%08x", crc) {
			t.Errorf("record %d: data %v, want %d bytes, crc %08x", i+1, d, len(p.Data), crc)
		}
		seen++
	}
	if seen != 5 {
		t.Errorf("%d data records", seen)
	}
}

// names says whether an error names where the problem is.
var names = regexp.MustCompile(`(stream record \d+|archive \w+) at byte \d+`)

// TestTruncatedStream cuts the sample at every byte near the start of a
// record, and at every 29th byte inside: each cut fails with the record
// and offset, and -json prints the records before the cut.
func TestTruncatedStream(t *testing.T) {
	s := sampleStream(t)
	full := parseLines(t, mustRunShow(t, s, "-json"))
	near := func(cut int) bool {
		for _, l := range full {
			if d := cut - int(l.Offset); d >= -24 && d <= 48 {
				return true
			}
		}
		return false
	}
	for cut := 0; cut < len(s); cut++ {
		if cut%29 != 0 && !near(cut) {
			continue
		}
		out, _, err := runShow(s[:cut], "-json")
		if err == nil || !names.MatchString(err.Error()) {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		whole := 0 // records whose frame ends before the cut
		for i := 1; i < len(full) && full[i].Offset <= int64(cut); i++ {
			whole++
		}
		if got := len(parseLines(t, out)); got != whole {
			t.Fatalf("cut at %d: %d lines, want %d", cut, got, whole)
		}
		if out, _, err := runShow(s[:cut]); err == nil || out != "" {
			t.Fatalf("summary of cut at %d: %v, %q", cut, err, out)
		}
	}
}

func TestTruncatedArchive(t *testing.T) {
	a := sampleArchive(t)
	for cut := 0; cut < len(a); cut++ {
		for _, args := range [][]string{nil, {"-json"}} {
			_, _, err := runShow(a[:cut], args...)
			if err == nil || !names.MatchString(err.Error()) && !strings.Contains(err.Error(),
				"empty input") {
				t.Fatalf("cut at %d, %v: %v", cut, args, err)
			}
		}
	}
}

func mustRunShow(t *testing.T, input []byte, args ...string) string {
	t.Helper()
	out, _, err := runShow(input, args...)
	must(t, err)
	return out
}

func TestGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	a := sampleArchive(t)
	flipped := bytes.Clone(a)
	flipped[40] ^= 0x10
	var wrong bytes.Buffer
	h := sampleHeader()
	h.Version = 99
	writeStream(t, stream.NewWriter(&wrong), h, nil, true)
	var badBody bytes.Buffer
	writeStream(t, stream.NewWriter(&badBody), sampleHeader(),
		[]stream.Record{{Kind: image.KindTask, Body: []byte{0xc1}}}, true)

	for _, c := range []struct {
		name  string
		input []byte
		want  string
	}{
		{"empty", nil, "empty input"},
		{"zeros", make([]byte, 4096), "stream record 0 at byte 0: bad frame byte 0x0"},
		{"text", []byte("hello world\n"), "bad frame byte 0x68"},
		{"random", random, "stream record 0 at byte 0"},
		{"archive magic then random", append([]byte("CKPTIMG\x00"), random...),
			"archive header at byte 0"},
		{"flipped bit", flipped, "archive frame at byte 16: frame checksum mismatch"},
		{"data after archive", append(bytes.Clone(a), 0), "data after the archive end"},
		{"version", wrong.Bytes(), "stream version 99 is not supported"},
		{"bad body", badBody.Bytes(), "stream record 1 at byte"},
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0}, "bad frame byte 0x28"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, args := range [][]string{nil, {"-json"}} {
				_, _, err := runShow(c.input, args...)
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("%v: got %v, want %q", args, err, c.want)
				}
			}
		})
	}
}

// TestReleasesUpstream runs ckpt-show as the last stage of a pipe whose
// writer stays open, as a stage's does until its reader is gone: it must
// stop at the end record and close its stdin, which the writer sees.
func TestReleasesUpstream(t *testing.T) {
	for _, args := range [][]string{nil, {"-json"}} {
		r, w, err := os.Pipe()
		must(t, err)
		s := sampleStream(t)
		go w.Write(s) // the pipe holds it; w stays open
		done := make(chan error, 1)
		go func() { done <- run(context.Background(), args, r, io.Discard, io.Discard) }()
		select {
		case err := <-done:
			must(t, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("%v: ckpt-show did not return after the end record", args)
		}
		gone := make(chan error, 1)
		go func() { gone <- stage.WaitReaderGone(w) }()
		select {
		case err := <-gone:
			must(t, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("%v: ckpt-show did not close its stdin", args)
		}
		w.Close()
	}
}
