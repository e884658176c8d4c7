package stream

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
)

// decodeAll reads a stream and decodes every record into its lib/image
// type, as ckpt-restore and the stages do.
func decodeAll(b []byte) error {
	r := NewReader(bytes.NewReader(b))
	if _, err := r.Header(); err != nil {
		return err
	}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch rec.Kind {
		case image.KindTask:
			err = rec.Decode(new(image.Task))
		case image.KindFd:
			err = rec.Decode(new(image.Fd))
		case image.KindFile:
			err = rec.Decode(new(image.File))
		case image.KindGhostData:
			err = rec.Decode(new(image.GhostData))
		case image.KindPages:
			err = image.DecodePages(rec.Body, new(image.Pages))
		}
		if err != nil {
			return err
		}
	}
}

// FuzzDecodeRecords feeds the stream reader and the record decoders
// untrusted bytes: they may refuse them, never panic or hang. The seeds
// are a small stream and a real one from ckpt-show's test data (a task
// with threads, mappings, fds, files and pages).
func FuzzDecodeRecords(f *testing.F) {
	f.Add(sample(&testing.T{}))
	if b, err := os.ReadFile("../../cmd/ckpt-show/testdata/sample.stream"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = decodeAll(b)
	})
}

func TestDecodeSample(t *testing.T) {
	b, err := os.ReadFile("../../cmd/ckpt-show/testdata/sample.stream")
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeAll(b); err != nil {
		t.Fatalf("the sample stream does not decode: %v", err)
	}
}
