package show

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/ckpt/ckpt/lib/archive"
	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
	"github.com/vmihailenco/msgpack/v5"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func marshalJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := marshal(v) // as WriteJSON writes: without HTML escapes
	must(t, err)
	return string(b)
}

func TestDecodeKeepsOrder(t *testing.T) {
	type body struct {
		PID  int      `msgpack:"pid"`
		Addr uint64   `msgpack:"addr"`
		Neg  int64    `msgpack:"neg"`
		Name string   `msgpack:"name"`
		Bin  []byte   `msgpack:"bin"`
		List []string `msgpack:"list"`
		F    float64  `msgpack:"f"`
		Nil  []int    `msgpack:"nil"`
		Yes  bool     `msgpack:"yes"`
	}
	b, err := msgpack.Marshal(&body{7, math.MaxUint64, -512, "a<b>&c", []byte{1, 2},
		[]string{"x"}, 0.5, nil, true})
	must(t, err)
	v, err := Decode(b)
	must(t, err)
	want := `{"pid":7,"addr":18446744073709551615,"neg":-512,"name":"a<b>&c",` +
		`"bin":"AQI=","list":["x"],"f":0.5,"nil":null,"yes":true}`
	if got := marshalJSON(t, v); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestDecodeOddValues(t *testing.T) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	must(t, enc.EncodeMapLen(4))
	must(t, enc.EncodeInt(3)) // an integer key
	must(t, enc.EncodeFloat64(math.NaN()))
	must(t, enc.EncodeBool(true)) // a bool key
	must(t, enc.EncodeFloat64(math.Inf(-1)))
	must(t, enc.EncodeString("ext"))
	must(t, enc.EncodeExtHeader(5, 2))
	buf.Write([]byte{9, 8})
	must(t, enc.EncodeString("map"))
	must(t, enc.EncodeMapLen(0))
	v, err := Decode(buf.Bytes())
	must(t, err)
	want := `{"3":"NaN","true":"-Inf","ext":{"ext":5,"data":"CQg="},"map":{}}`
	if got := marshalJSON(t, v); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestDecodeRefuses(t *testing.T) {
	deep := bytes.Repeat([]byte{0x91}, 1000)
	for name, b := range map[string][]byte{
		"empty":        {},
		"unused code":  {0xc1},
		"deep":         append(deep, 0),
		"huge array":   {0xdd, 0xff, 0xff, 0xff, 0xff},
		"huge map":     {0xdf, 0x7f, 0xff, 0xff, 0xff, 0},
		"huge ext":     {0xc9, 0xff, 0xff, 0xff, 0xff, 1},
		"short string": {0xdb, 0, 0, 1, 0, 'a'},
		"short map":    {0x82, 0xa1, 'a', 1},
	} {
		if v, err := Decode(b); err == nil {
			t.Errorf("%s: decoded as %v", name, v)
		}
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := msgpack.Marshal(&image.Task{PID: 1, Comm: "x", Vmas: []image.Vma{{Start: 1}}})
	f.Add(b)
	f.Add([]byte{0x81, 0x01, 0xd4, 0x01, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode(b)
		if err != nil {
			return
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("decoded %x but cannot write it: %v", b, err)
		}
	})
}

// build writes a record stream of the given records, as kind and value
// pairs.
func build(t testing.TB, kv ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := stream.NewWriter(&buf)
	must(t, w.WriteHeader(&image.Header{Magic: image.Magic, Version: image.Version,
		Arch: "amd64", PageSize: 4096, Stages: []string{"test"}}))
	for i := 0; i < len(kv); i += 2 {
		must(t, w.Write(kv[i].(string), kv[i+1]))
	}
	must(t, w.End())
	return buf.Bytes()
}

func collect(t *testing.T, b []byte) *Summary {
	t.Helper()
	in, err := Open(bytes.NewReader(b))
	must(t, err)
	s, err := Collect(context.Background(), in)
	must(t, err)
	return s
}

// TestWarnings gathers a stream that is well formed but wrong in each way
// a summary warns about.
func TestWarnings(t *testing.T) {
	vmas := []image.Vma{{Start: 0x1000, End: 0x3000}, {Start: 0x3000, End: 0x4000}}
	b := build(t,
		image.KindPages, &image.Pages{PID: 5, Addr: 0x1000, Data: make([]byte, 4096)},
		image.KindTask, &image.Task{PID: 5, Vmas: vmas, ExeFileID: 9},
		image.KindPages, &image.Pages{PID: 5, Addr: 0x1000, Data: make([]byte, 3*4096)},
		image.KindPages, &image.Pages{PID: 5, Addr: 0x3000, Data: make([]byte, 2*4096)},
		image.KindPages, &image.Pages{PID: 5, Addr: 0x1000, Data: make([]byte, 100)},
		image.KindFd, &image.Fd{PID: 5, Fd: 3, FileID: 2},
		image.KindFile, &image.File{ID: 2, Kind: image.FileLinked},
		image.KindGhostData, &image.GhostData{FileID: 2, Data: []byte("x")},
		image.KindGhostData, &image.GhostData{FileID: 4, Data: []byte("x")},
		image.KindFd, &image.Fd{PID: 6, Fd: 0},
	)
	s := collect(t, b)
	want := []string{
		"pid 5: pages records come before its task record",
		"pid 5: exe is file 9, which no earlier file record defines",
		"pid 5: pages at 0x3000-0x5000 lie outside its mappings",
		"pid 5: pages at 0x1000: 100 bytes, not whole pages",
		"pid 5: fd 3 is file 2, which no earlier file record defines",
		"ghost data for file 2, which is \"linked\", not a ghost",
		"ghost data for file 2 at 0-1 lies outside its 0 bytes",
		"ghost data for file 4, which no earlier file record defines",
		"pid 6: fd or pages records, but no task record",
	}
	if got := strings.Join(s.Warnings, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	var out bytes.Buffer
	must(t, s.Write(&out))
	for _, w := range []string{"pid 6: no task record", "warnings\n  pid 5: pages records"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("summary lacks %q:\n%s", w, out.String())
		}
	}
}

func TestThreadState(t *testing.T) {
	r := make([]uint64, 27)
	r[10], r[15], r[16] = uint64(0xfffffffffffffffc), 0, 0x401000 // read, -EINTR
	for _, c := range []struct {
		arch string
		regs []uint64
		want string
	}{
		{"amd64", r, "in syscall read (0), rax -4, rip 0x401000"},
		{"amd64", r[:5], "5 register words: too few for x86_64"},
		{"arm64", r, "27 register words (arm64: not decoded)"},
	} {
		if got := ThreadState(c.arch, c.regs); got != c.want {
			t.Errorf("%s: got %q, want %q", c.arch, got, c.want)
		}
	}
	r[15] = 999
	if got := ThreadState("amd64", r); !strings.Contains(got, "unknown (999)") {
		t.Errorf("unknown call: %q", got)
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB",
		3 << 20: "3.0 MiB", 5 << 30: "5.0 GiB", 7 << 40: "7.0 TiB", 9 << 50: "9216.0 TiB"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}

// FuzzInput feeds anything to the whole reading path, as a stream and as
// the payload of an archive.
func FuzzInput(f *testing.F) {
	f.Add(build(f, image.KindTask, &image.Task{PID: 1, Threads: []image.Thread{{TID: 1}}},
		image.KindPages, &image.Pages{PID: 1, Data: make([]byte, 4096)}))
	var arc bytes.Buffer
	aw := archive.NewWriter(&arc)
	_, _ = aw.Write(build(f, image.KindFd, &image.Fd{PID: 1}))
	must(f, aw.Close())
	f.Add(arc.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, asJSON := range []bool{false, true} {
			in, err := Open(bytes.NewReader(b))
			if err != nil {
				continue
			}
			if asJSON {
				err = WriteJSON(context.Background(), io.Discard, in)
			} else {
				var s *Summary
				if s, err = Collect(context.Background(), in); err == nil {
					err = s.Write(io.Discard)
				}
			}
			in.Close()
		}
	})
}

// TestPartialSummary writes what was gathered from a truncated stream.
func TestPartialSummary(t *testing.T) {
	b := build(t, image.KindTask, &image.Task{PID: 3, Comm: "x"})
	in, err := Open(bytes.NewReader(b[:len(b)-3]))
	must(t, err)
	s, err := Collect(context.Background(), in)
	if err == nil || !strings.Contains(err.Error(), "stream record 2 at byte") {
		t.Fatalf("truncated: %v", err)
	}
	var out bytes.Buffer
	must(t, s.Write(&out))
	if got := out.String(); !strings.Contains(got, "task 3 x") ||
		!strings.Contains(got, "no end record") {
		t.Errorf("partial summary:\n%s", got)
	}
}
