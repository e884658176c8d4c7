package pages

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// iovMax is the most iovecs one process_vm_readv call takes (IOV_MAX).
const iovMax = 1024

// read fills batch b with its pieces, from the task's memory. Mappings
// the task cannot read itself (no PROT_READ) are read through
// /proc/PID/mem, which may; the rest with process_vm_readv, many pieces
// per call.
func (t *task) read(b *batch) error {
	buf := b.data()
	off := 0
	for i := 0; i < len(b.pieces); {
		if !t.readable(b.pieces[i]) {
			pc := b.pieces[i]
			if err := t.readMem(pc.addr, buf[off:off+pc.n], pc.vma); err != nil {
				return err
			}
			off += pc.n
			i++
			continue
		}

		// Gather the readable pieces that follow, up to IOV_MAX of them.
		j, n := i, 0
		for j < len(b.pieces) && j-i < iovMax && t.readable(b.pieces[j]) {
			n += b.pieces[j].n
			j++
		}
		if err := t.readv(b.pieces[i:j], buf[off:off+n]); err != nil {
			return err
		}
		off += n
		i = j
	}
	return nil
}

func (t *task) readable(p piece) bool {
	return t.vmas[p.vma].Prot&unix.PROT_READ != 0
}

// readv reads pieces into dst, which is exactly as long as they are. A
// short read is carried on from where it stopped; a page that
// process_vm_readv cannot read at all is tried once through /proc/PID/mem,
// and is an error if that fails too: never left as zeros.
func (t *task) readv(pieces []piece, dst []byte) error {
	skip := 0 // bytes of pieces[0] already read
	for len(pieces) > 0 {
		remote := t.remote[:0]
		for _, pc := range pieces {
			remote = append(remote, unix.RemoteIovec{Base: uintptr(pc.addr), Len: pc.n})
		}
		remote[0].Base += uintptr(skip)
		remote[0].Len -= skip
		local := []unix.Iovec{{Base: &dst[0]}}
		local[0].SetLen(len(dst))

		n, err := unix.ProcessVMReadv(t.pid, local, remote, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if n <= 0 {
			// Nothing read: the first page cannot be read this way.
			addr := pieces[0].addr + uint64(skip)
			if t.readMem(addr, dst[:pageSize], pieces[0].vma) != nil {
				if err == nil {
					err = unix.EFAULT
				}
				return &MappingError{t.pid, t.vmas[pieces[0].vma],
					fmt.Errorf("read page at %#x: %w", addr, err)}
			}
			n = pageSize
		}

		// Move past what was read.
		dst = dst[n:]
		for n > 0 {
			left := pieces[0].n - skip
			if n < left {
				skip += n
				break
			}
			n -= left
			pieces, skip = pieces[1:], 0
		}
	}
	return nil
}

// readMem reads len(dst) bytes at addr of mapping vma through /proc/PID/mem.
func (t *task) readMem(addr uint64, dst []byte, vma int) error {
	if t.mem == nil {
		f, err := os.Open(fmt.Sprintf("/proc/%d/mem", t.pid))
		if err != nil {
			return &MappingError{t.pid, t.vmas[vma], fmt.Errorf("open memory: %w", err)}
		}
		t.mem = f
	}
	if _, err := t.mem.ReadAt(dst, int64(addr)); err != nil {
		return &MappingError{t.pid, t.vmas[vma], fmt.Errorf("read %d bytes at %#x: %w",
			len(dst), addr, err)}
	}
	return nil
}
