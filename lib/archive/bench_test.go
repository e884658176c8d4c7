package archive

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
)

// benchStream is 256 MiB of pages in 1 MiB records, every other one random
// and the rest a pattern like a heap's (pointers, small integers, zeros,
// text), as a record stream.
var benchStream = sync.OnceValue(func() []byte {
	const total, chunk = 256 << 20, image.MaxChunk
	var buf bytes.Buffer
	buf.Grow(total + 1<<20)
	sw := stream.NewWriter(&buf)
	_ = sw.WriteHeader(stream.NewHeader("bench"))
	_ = sw.Write(image.KindTask, &image.Task{PID: 1234})
	rng := rand.NewChaCha8([32]byte{1})
	data := make([]byte, chunk)
	for i := range total / chunk {
		if i%2 == 0 {
			_, _ = rng.Read(data)
		} else {
			heapPattern(data, i)
		}
		_ = sw.Write(image.KindPages, &image.Pages{PID: 1234, Addr: uint64(i * chunk), Data: data})
	}
	_ = sw.End()
	return buf.Bytes()
})

func heapPattern(b []byte, seed int) {
	for k := 0; k+8 <= len(b); k += 8 {
		var v uint64
		switch k / 8 % 4 {
		case 0:
			v = 0x7f3a_0000_0000 + uint64(seed*len(b)+k*2)
		case 1:
			v = uint64(k/8) % 1000
		case 3:
			v = binary.LittleEndian.Uint64([]byte("dict_key"))
		}
		binary.LittleEndian.PutUint64(b[k:], v)
	}
}

var benchArchive = sync.OnceValue(func() []byte {
	var out bytes.Buffer
	w := NewWriter(&out)
	if _, err := w.Write(benchStream()); err != nil {
		panic(err)
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	return out.Bytes()
})

// BenchmarkWriter packs the stream as ckpt-pack does, with ReadFrom.
// Sub-benchmarks vary the encoder goroutines and the frame size.
func BenchmarkWriter(b *testing.B) {
	s := benchStream()
	for _, c := range []struct{ nenc, target int }{
		{1, 1 << 20}, {1, 2 << 20}, {1, 4 << 20}, {2, 1 << 20}, {2, 2 << 20}, {2, 4 << 20},
	} {
		b.Run(fmt.Sprintf("encoders=%d/frame=%dMiB", c.nenc, c.target>>20), func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			var size int64
			for b.Loop() {
				size = packBench(b, s, newWriter(io.Discard, c.target, frameLimit, c.nenc))
			}
			b.ReportMetric(float64(len(s))/float64(size), "ratio")
		})
	}
}

func packBench(b *testing.B, s []byte, w *Writer) int64 {
	if _, err := w.ReadFrom(bytes.NewReader(s)); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return w.Summary().Size
}

// BenchmarkReader unpacks the archive as restore does: stream.Reader over
// the archive Reader, then Finish. prefetch=false decodes in the caller.
func BenchmarkReader(b *testing.B) {
	a := benchArchive()
	for _, prefetch := range []bool{true, false} {
		b.Run(fmt.Sprintf("prefetch=%v", prefetch), func(b *testing.B) {
			b.SetBytes(int64(len(benchStream())))
			for b.Loop() {
				ar, err := NewReader(bytes.NewReader(a))
				if err != nil {
					b.Fatal(err)
				}
				ar.prefetch = prefetch
				sr := stream.NewReader(ar)
				for {
					_, err := sr.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				if err := ar.Finish(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
