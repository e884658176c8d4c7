package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
	"github.com/vmihailenco/msgpack/v5"
)

// sampleStream returns a record stream: two tasks with fds and pages, a
// file, a kind no stage knows, and, when big > 0, a pages record of big
// bytes of data.
func sampleStream(t testing.TB, pageBytes, big int) []byte {
	t.Helper()
	var buf bytes.Buffer
	sw := stream.NewWriter(&buf)
	rng := rand.New(rand.NewPCG(1, 2))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(sw.WriteHeader(stream.NewHeader("test")))
	must(sw.Write(image.KindFile, &image.File{ID: 1, Kind: image.FileLinked, Path: "/bin/sh"}))
	for _, pid := range []int{100, 70000} {
		must(sw.Write(image.KindTask, &image.Task{PID: pid, Comm: "t", Exe: "/bin/sh"}))
		must(sw.Write(image.KindFd, &image.Fd{PID: pid, Fd: 1, FileID: 1}))
		data := make([]byte, pageBytes)
		for i := range data {
			data[i] = byte(rng.IntN(4))
		}
		must(sw.Write(image.KindPages, &image.Pages{PID: pid, Addr: 4096, Data: data}))
		must(sw.Write(image.KindPages, &image.Pages{PID: pid, Addr: 1 << 30, Data: data[:pageBytes/2]}))
	}
	must(sw.WriteRecord(stream.Record{Kind: "future-kind", Body: []byte{0xc0}}))
	if big > 0 {
		data := make([]byte, big)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		must(sw.Write(image.KindPages, &image.Pages{PID: 100, Addr: 1 << 40, Data: data}))
	}
	must(sw.End())
	return buf.Bytes()
}

// pack writes s through a Writer in pieces of the given size.
func pack(t testing.TB, s []byte, piece, target, limit, nenc int) []byte {
	t.Helper()
	var out bytes.Buffer
	w := newWriter(&out, target, limit, nenc)
	for p := s; len(p) > 0; {
		n := min(piece, len(p))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Summary().Size != int64(out.Len()) {
		t.Fatalf("summary size %d, wrote %d", w.Summary().Size, out.Len())
	}
	return out.Bytes()
}

// smallArchive is a few KiB in several frames, one of them in the middle
// of a record.
func smallArchive(t testing.TB) []byte {
	return pack(t, sampleStream(t, 600, 1500), 97, 400, 1000, 1)
}

// unpack reads an archive the way restore does.
func unpack(b []byte, prefetch bool) ([]byte, *Reader, error) {
	ar, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	ar.prefetch = prefetch
	defer ar.Close()
	raw, err := io.ReadAll(ar)
	if err != nil {
		return raw, ar, err
	}
	return raw, ar, ar.Finish()
}

func TestRoundTrip(t *testing.T) {
	for _, c := range []struct{ pageBytes, big, piece, target, limit, nenc int }{
		{600, 1500, 1, 400, 1000, 1},
		{600, 0, 7, 400, 1000, 2},
		{4096, 0, 4096, 1 << 20, 8 << 20, 1},
		{1 << 20, 3 << 20, 1 << 20, 2 << 20, 2 << 20, 2},
		{300, 0, 1 << 30, frameTarget, frameLimit, encoders},
	} {
		name := fmt.Sprintf("%d/%d/%d/%d/%d/%d", c.pageBytes, c.big, c.piece, c.target, c.limit, c.nenc)
		t.Run(name, func(t *testing.T) {
			s := sampleStream(t, c.pageBytes, c.big)
			a := pack(t, s, c.piece, c.target, c.limit, c.nenc)
			for _, prefetch := range []bool{true, false} {
				raw, ar, err := unpack(a, prefetch)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(raw, s) {
					t.Fatalf("stream of %d bytes came back as %d different bytes", len(s), len(raw))
				}
				checkIndex(t, ar.Index(), s)
			}
		})
	}
}

// checkIndex checks an index against the stream it describes.
func checkIndex(t *testing.T, ix *Index, s []byte) {
	t.Helper()
	if ix.RawBytes != int64(len(s)) || ix.Kinds[image.KindPages] < 4 || len(ix.Tasks) != 2 {
		t.Fatalf("index %+v", ix)
	}
	task := ix.Tasks[1]
	if task.PID != 70000 || task.Kinds[image.KindTask] != 1 || task.Kinds[image.KindFd] != 1 ||
		task.Kinds[image.KindPages] != 2 {
		t.Fatalf("task %+v", task)
	}
	f := ix.Frames[task.Frame]
	var got image.Task
	if err := firstRecord(s[f.RawOffset+int64(task.Offset):], &got); err != nil || got.PID != 70000 {
		t.Fatalf("task record at frame %d offset %d: %+v, %v", task.Frame, task.Offset, got, err)
	}
}

// firstRecord decodes the body of the record b starts with.
func firstRecord(b []byte, v any) error {
	var h head
	p, err := parseFraming(b, &h)
	if err != nil {
		return err
	}
	return stream.Record{Kind: h.kind, Body: b[p : p+h.body]}.Decode(v)
}

func TestReadIndexAndFrame(t *testing.T) {
	s := sampleStream(t, 600, 1500)
	a := pack(t, s, 1000, 400, 1000, 1)
	ra := bytes.NewReader(a)
	ix, err := ReadIndex(ra, int64(len(a)))
	if err != nil {
		t.Fatal(err)
	}
	var whole []byte
	for _, f := range ix.Frames {
		raw, err := ReadFrame(ra, f)
		if err != nil {
			t.Fatal(err)
		}
		whole = append(whole, raw...)
	}
	if !bytes.Equal(whole, s) {
		t.Fatal("frames read one by one differ from the stream")
	}
	task := ix.Tasks[0]
	raw, err := ReadFrame(ra, ix.Frames[task.Frame])
	if err != nil {
		t.Fatal(err)
	}
	var got image.Task
	if err := firstRecord(raw[task.Offset:], &got); err != nil || got.PID != 100 {
		t.Fatalf("task record: %+v, %v", got, err)
	}
	if _, err := ReadIndex(ra, int64(len(a)-1)); err == nil {
		t.Fatal("ReadIndex on a cut archive succeeded")
	}
}

func TestVerify(t *testing.T) {
	a := smallArchive(t)
	sum, err := Verify(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Tasks != 2 || sum.Size != int64(len(a)) || sum.Frames < 5 || sum.Header == nil ||
		sum.Records != 13 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestTruncatedEverywhere(t *testing.T) {
	a := smallArchive(t)
	for i := range len(a) {
		_, err := Verify(bytes.NewReader(a[:i]))
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("archive cut at %d of %d: %v", i, len(a), err)
		}
	}
}

func TestBitFlipsEverywhere(t *testing.T) {
	a := smallArchive(t)
	b := make([]byte, len(a))
	for i := range len(a) {
		for _, bit := range []int{i % 8, (i + 5) % 8} {
			copy(b, a)
			b[i] ^= 1 << bit
			if _, err := Verify(bytes.NewReader(b)); err == nil {
				t.Fatalf("bit %d of byte %d of %d flipped, archive verified", bit, i, len(a))
			}
		}
	}
}

func TestTrailingData(t *testing.T) {
	a := append(smallArchive(t), 0)
	_, err := Verify(bytes.NewReader(a))
	if err == nil || !strings.Contains(err.Error(), "after the archive end") {
		t.Fatalf("got %v", err)
	}
}

func TestRandomInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	a := smallArchive(t)
	for i := range 2000 {
		b := make([]byte, rng.IntN(4000))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if i%2 == 1 { // past the header check
			b = append(a[:headerSize:headerSize], b...)
		}
		if _, err := Verify(bytes.NewReader(b)); err == nil {
			t.Fatalf("random input %d verified", i)
		}
	}
}

func TestNotAnArchive(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{nil, "empty input"},
		{sampleStream(t, 10, 0), "record stream, not an archive: pipe it through ckpt-pack"},
		{[]byte{0x92, 0xa6, 'h'}, "record stream"},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "plain zstd"},
		{[]byte("hello, world, this is text"), "not a ckpt archive: it starts with 68 65"},
		{[]byte("CKPT"), "ends inside the header"},
	} {
		_, err := Verify(bytes.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("input %q: got %v, want %q", c.in[:min(len(c.in), 10)], err, c.want)
		}
	}
}

func TestWrongVersion(t *testing.T) {
	a := smallArchive(t)
	binary.LittleEndian.PutUint16(a[8:], 7)
	_, err := Verify(bytes.NewReader(a))
	if err == nil || !strings.Contains(err.Error(), "version 7 is not supported") {
		t.Fatalf("got %v", err)
	}
}

// refit sets a frame header field and recomputes the frame's CRC.
func refit(a []byte, at, field int, v uint32) {
	h := a[at : at+frameHeaderSize]
	stored := int(binary.LittleEndian.Uint32(h[4:]))
	binary.LittleEndian.PutUint32(h[field:], v)
	payload := a[at+frameHeaderSize : at+frameHeaderSize+stored]
	crc := crc32.Update(crc32.Checksum(h[:20], castagnoli), castagnoli, payload)
	binary.LittleEndian.PutUint32(h[20:], crc)
}

func TestHostileFrames(t *testing.T) {
	big := pack(t, sampleStream(t, 4096, 0), 1<<20, 1<<20, 1<<20, 1)
	if big[headerSize+1] != MethodZstd {
		t.Fatal("first frame is not compressed")
	}
	for _, c := range []struct {
		field int
		v     uint32
		want  string
	}{
		{8, MaxFrame + 1, "limit"},
		{8, 0xffffffff, "limit"},
		{8, 100, "zstd frame stores"},
		{4, 0xfffffff0, "zstd frame stores"},
		{16, 99, "header says 99 records"},
	} {
		a := bytes.Clone(big)
		refit(a, headerSize, c.field, c.v)
		_, err := Verify(bytes.NewReader(a))
		if err == nil || !strings.Contains(err.Error(), c.want) ||
			!strings.Contains(err.Error(), "archive frame at byte 16") {
			t.Errorf("field %d = %d: got %v, want %q", c.field, c.v, err, c.want)
		}
	}
	// A zstd frame that holds more than its header says.
	a := bytes.Clone(big)
	raw := binary.LittleEndian.Uint32(a[headerSize+8:])
	refit(a, headerSize, 8, raw-1)
	_, err := Verify(bytes.NewReader(a))
	if err == nil || !strings.Contains(err.Error(), "decompress") {
		t.Errorf("short raw length: got %v", err)
	}
}

func TestWriterRefuses(t *testing.T) {
	s := sampleStream(t, 100, 0)
	var task bytes.Buffer
	tw := stream.NewWriter(&task)
	_ = tw.Write(image.KindTask, &image.Task{PID: 1})
	_ = tw.Flush()
	var h head
	hp, _ := parseFraming(s, &h)
	hlen := hp + h.body
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"not a stream", []byte("CKPTIMG\x00 and more"), "bad frame byte 0x43"},
		{"no header", task.Bytes(), "not a header"},
		{"no end", s[:len(s)-1], "stream truncated: it ends at byte"},
		{"empty", nil, "stream truncated: it ends at byte 0"},
		{"bad count", badCount(t), "counts 5 records, 1 came before it"},
		{"after end", append(bytes.Clone(s), 0x92), "data after the end record"},
		{"second header", append(bytes.Clone(s[:hlen]), s...), "second header"},
	} {
		w := NewWriter(io.Discard)
		_, err := w.Write(c.in)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

// badCount returns a stream whose end record miscounts.
func badCount(t *testing.T) []byte {
	var buf bytes.Buffer
	sw := stream.NewWriter(&buf)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(sw.WriteHeader(stream.NewHeader("test")))
	must(sw.Flush())
	body, err := msgpack.Marshal(&image.End{Records: 5})
	must(err)
	b := append(buf.Bytes(), 0x92, 0xa3, 'e', 'n', 'd', 0xc6)
	return append(binary.BigEndian.AppendUint32(b, uint32(len(body))), body...)
}

func TestReadFrom(t *testing.T) {
	s := sampleStream(t, 1000, 0)
	var out bytes.Buffer
	w := NewWriter(&out)
	// Bytes after the end record are never read: upstream would block there.
	n, err := w.ReadFrom(io.MultiReader(bytes.NewReader(s), blockingReader{t}))
	if err != nil || n != int64(len(s)) {
		t.Fatalf("ReadFrom: %d of %d bytes, %v", n, len(s), err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if raw, _, err := unpack(out.Bytes(), true); err != nil || !bytes.Equal(raw, s) {
		t.Fatalf("round trip: %v", err)
	}
	w = NewWriter(io.Discard)
	_, err = w.ReadFrom(bytes.NewReader(s[:len(s)-1]))
	if err == nil || !strings.Contains(err.Error(), "stream truncated") {
		t.Fatalf("truncated: %v", err)
	}
	w.Close()
}

// blockingReader fails the test if read: it stands for a pipe whose writer
// waits for its reader to go away.
type blockingReader struct{ t *testing.T }

func (b blockingReader) Read([]byte) (int, error) {
	b.t.Error("read past the end record")
	return 0, io.EOF
}

// failWriter fails every write after the first n bytes.
type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n := f.n
		f.n = 0
		return n, errors.New("no space left on device")
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWriteError(t *testing.T) {
	s := sampleStream(t, 1<<20, 0)
	for _, n := range []int{0, 10, 100_000} {
		w := newWriter(&failWriter{n}, 1<<20, 2<<20, 1)
		_, err := w.Write(s)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err == nil || !strings.Contains(err.Error(), "no space left") {
			t.Errorf("fail after %d bytes: got %v", n, err)
		}
	}
}

func TestReaderClose(t *testing.T) {
	a := pack(t, sampleStream(t, 1<<20, 0), 1<<20, 1<<20, 1<<20, 1)
	ar, err := NewReader(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	ar.Close()
	if _, err := ar.Read(make([]byte, 10)); err == nil {
		t.Fatal("read after Close succeeded")
	}
}

func FuzzReader(f *testing.F) {
	f.Add(smallArchive(f))
	f.Add(pack(f, sampleStream(f, 100, 0), 1000, 1000, 1000, 1))
	f.Add([]byte{})
	f.Add(sampleStream(f, 10, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Verify(bytes.NewReader(b))
	})
}
