package stream

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
)

func sample(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WriteHeader(NewHeader("test")); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(image.KindTask, &image.Task{PID: 42, Comm: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRecord(Record{Kind: "future-kind", Body: []byte{0xc0}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(image.KindPages, &image.Pages{PID: 42, Addr: 4096, Data: make([]byte, 4096)}); err != nil {
		t.Fatal(err)
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(b []byte) ([]Record, error) {
	r := NewReader(bytes.NewReader(b))
	var recs []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		recs = append(recs, rec)
	}
}

func TestRoundTrip(t *testing.T) {
	recs, err := readAll(sample(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[1].Kind != "future-kind" {
		t.Fatalf("records %+v", recs)
	}
	var task image.Task
	if err := recs[0].Decode(&task); err != nil || task.PID != 42 {
		t.Fatalf("task %+v, %v", task, err)
	}
}

func TestTruncatedEverywhere(t *testing.T) {
	b := sample(t)
	for i := 0; i < len(b); i++ {
		_, err := readAll(b[:i])
		if err == nil {
			t.Fatalf("stream cut at %d of %d read without error", i, len(b))
		}
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("cut at %d: %v is not a FormatError", i, err)
		}
	}
}

func TestWrongVersion(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	h := NewHeader("test")
	h.Version = 99
	_ = w.WriteHeader(h)
	_ = w.End()
	_, err := NewReader(&buf).Header()
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("version 99")) {
		t.Fatalf("got %v", err)
	}
}

func TestArchiveGiven(t *testing.T) {
	_, err := NewReader(bytes.NewReader([]byte("CKPTIMG\x00\x01\x00"))).Header()
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("stream record 0 at byte 0: "+
		"this is a ckpt archive, not a record stream")) {
		t.Fatalf("got %v", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add(sample(&testing.T{}))
	f.Add([]byte{})
	f.Add([]byte{0x92, 0xa1, 'x', 0xc6, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = readAll(b)
	})
}
