package pages

import (
	"bytes"
	"fmt"

	"github.com/ckpt/ckpt/lib/image"
)

// batch is memory to read from the task in one go: pieces of its
// mappings, in address order, and a buffer that holds them one after
// another, after headroom free bytes (see Run.Body).
type batch struct {
	whole  []byte
	pieces []piece
	used   int // bytes of data
}

// piece is a range of pages of one mapping, held in a batch.
type piece struct {
	addr uint64
	n    int // bytes
	vma  int // index into the task's vmas
}

func (b *batch) data() []byte { return b.whole[headroom:] }

func (b *batch) reset() { b.pieces, b.used = b.pieces[:0], 0 }

// collect finds the pages that matter in every mapping, fills batches
// with them, reads each and hands it to the emitting goroutine.
func (t *task) collect() error {
	b, err := t.nextBatch()
	if err != nil {
		return err
	}
	for i := range t.vmas {
		if t.plans[i] == planSkip {
			continue
		}
		if b, err = t.collectVma(b, i); err != nil {
			return err
		}
	}
	if b.used == 0 {
		return nil
	}
	return t.ship(b)
}

// collectVma adds the pages that matter in mapping i to batch b, and
// returns the batch to go on with.
func (t *task) collectVma(b *batch, i int) (*batch, error) {
	v := &t.vmas[i]
	for addr := v.Start; addr < v.End; {
		spans, next, err := t.find.find(addr, v.End, t.plans[i] == planAnon, t.spans[:0])
		t.spans = spans
		if err != nil {
			return nil, &MappingError{t.pid, *v, err}
		}
		for _, s := range spans {
			t.found += int((s.end - s.start) / uint64(pageSize))
			if b, err = t.add(b, s, i); err != nil {
				return nil, err
			}
		}
		addr = next
	}
	return b, nil
}

// add puts the pages of s, of mapping vma, in batch b, shipping it each
// time it is full, and returns the batch to go on with.
func (t *task) add(b *batch, s span, vma int) (*batch, error) {
	for s.start < s.end {
		if b.used == len(b.data()) {
			held := b.holdBack(s.start, vma)
			if err := t.ship(b); err != nil {
				return nil, err
			}
			nb, err := t.nextBatch()
			if err != nil {
				return nil, err
			}
			b = nb
			for _, p := range held {
				b.pieces, b.used = append(b.pieces, p), b.used+p.n
			}
		}
		n := int(min(s.end-s.start, uint64(len(b.data())-b.used)))
		b.pieces = append(b.pieces, piece{addr: s.start, n: n, vma: vma})
		b.used += n
		s.start += uint64(n)
	}
	return b, nil
}

// holdBack takes out of a full batch the pages that could make one run
// with the page at next, of mapping vma, which goes in the next batch:
// those of the same mapping from the last multiple of image.MaxChunk on.
// So no run is cut where a batch ends. It returns them, less than a chunk.
func (b *batch) holdBack(next uint64, vma int) []piece {
	cut := next &^ (image.MaxChunk - 1)
	k := len(b.pieces)
	if k == 0 || next == cut || b.pieces[k-1].vma != vma ||
		b.pieces[k-1].addr+uint64(b.pieces[k-1].n) != next {
		return nil
	}
	for k > 0 && b.pieces[k-1].vma == vma && b.pieces[k-1].addr >= cut {
		k--
	}
	var held []piece
	if k > 0 && b.pieces[k-1].vma == vma && b.pieces[k-1].addr+uint64(b.pieces[k-1].n) > cut {
		// Split the piece that straddles the cut.
		p := &b.pieces[k-1]
		keep := int(cut - p.addr)
		held = append(held, piece{addr: cut, n: p.n - keep, vma: vma})
		b.used -= p.n - keep
		p.n = keep
	}
	for _, p := range b.pieces[k:] {
		b.used -= p.n
	}
	held = append(held, b.pieces[k:]...)
	b.pieces = b.pieces[:k]
	return held
}

// nextBatch waits for an emitted batch to fill again.
func (t *task) nextBatch() (*batch, error) {
	select {
	case b := <-t.free:
		b.reset()
		return b, nil
	case <-t.quit:
		return nil, errQuit
	}
}

// ship reads batch b from the task and hands it to the emitting goroutine.
func (t *task) ship(b *batch) error {
	if err := t.read(b); err != nil {
		return err
	}
	select {
	case t.full <- b:
		return nil
	case <-t.quit:
		return errQuit
	}
}

// emitAll emits the batches the reading goroutine hands over, and hands
// them back.
func (t *task) emitAll() error {
	for b := range t.full {
		if err := t.emitBatch(b); err != nil {
			return err
		}
		t.free <- b
	}
	return nil
}

// emitBatch cuts a batch into runs of contiguous pages, leaving out the
// zero pages of anonymous mappings, and emits them.
func (t *task) emitBatch(b *batch) error {
	data := b.data()
	var run piece // the run being built; n == 0 when none
	var runOff int
	send := func() error {
		if run.n == 0 {
			return nil
		}
		r := Run{
			Pages: image.Pages{PID: t.pid, Addr: run.addr, Data: data[runOff : runOff+run.n]},
			buf:   b.whole,
			off:   headroom + runOff,
			enc:   t.enc,
		}
		t.stats.Pages += run.n / pageSize
		t.stats.Records++
		run.n = 0
		if err := t.emit(&r); err != nil {
			return fmt.Errorf("pid %d: emit pages at %#x: %w", t.pid, r.Addr, err)
		}
		return nil
	}

	off := 0
	for _, pc := range b.pieces {
		dropZero := t.plans[pc.vma] == planAnon
		for i := 0; i < pc.n; i, off = i+pageSize, off+pageSize {
			addr := pc.addr + uint64(i)
			if dropZero && bytes.Equal(data[off:off+pageSize], t.zero) {
				t.stats.Zero++
				if err := send(); err != nil {
					return err
				}
				continue
			}
			if run.n > 0 && (run.addr+uint64(run.n) != addr || run.vma != pc.vma ||
				addr%image.MaxChunk == 0) {
				if err := send(); err != nil {
					return err
				}
			}
			if run.n == 0 {
				run, runOff = piece{addr: addr, vma: pc.vma}, off
			}
			run.n += pageSize
		}
	}
	return send()
}
