// Package pages dumps the memory of a live task. For each private mapping
// it asks the page map which pages matter, reads them in large batches,
// and hands them on as runs of contiguous pages, each the contents of one
// image.Pages record.
//
// Which pages matter, by mapping kind:
//
//	anon, private (heap, stack too)    present or swapped; all-zero pages dropped
//	file, private                      private copies only (anonymous COW pages)
//	file, shared                       none: the file holds the data
//	anon, shared, with a FileID        none: the shmem File's ghost data holds them
//	anon, shared, without              none: an error (ErrSharedAnon)
//	vdso, vvar, vvar_vclock, vsyscall  none: restore moves or keeps them
//
// An all-zero page of an anonymous mapping is not stored, since restore
// maps fresh zero pages there. In a private file mapping it is stored:
// without it, restore would show the file's contents at that address.
//
// The page map is read with the PAGEMAP_SCAN ioctl (Linux 6.7+), which
// answers in ranges; without it, Dump reads /proc/PID/pagemap, 8 bytes a
// page. Pages are read with process_vm_readv, up to IOV_MAX ranges and
// DefaultBatch bytes a call, in a goroutine that reads the next batch
// while the caller emits the last; mappings without PROT_READ, which
// process_vm_readv refuses, are read through /proc/PID/mem. A page that
// cannot be read is an error, never zeros.
//
// A run never spans two mappings nor a multiple of image.MaxChunk (1 MiB)
// in the address space, so a run is at most one chunk and the records are
// the same whatever the batch size. Memory use is two batches, whatever
// the size of the task.
package pages

import (
	"errors"
	"fmt"
	"os"

	"github.com/ckpt/ckpt/lib/image"
)

// ErrSharedAnon is the error for a MAP_SHARED|MAP_ANONYMOUS mapping that
// no File stands for. Such memory is dumped once per object, by
// ckpt-files (an image.FileShmem File, whose ID the Vma carries); a stream
// that did not go through ckpt-files has no place for it.
var ErrSharedAnon = errors.New("shared anonymous memory has no shmem file: " +
	"the stream did not go through ckpt-files")

// Method is how Dump learns which pages matter.
type Method int

const (
	// Auto uses PAGEMAP_SCAN and, when the kernel lacks it (ENOTTY or
	// EINVAL before Linux 6.7), reads /proc/PID/pagemap instead.
	Auto Method = iota
	// Scan uses the PAGEMAP_SCAN ioctl only.
	Scan
	// Read reads /proc/PID/pagemap, 8 bytes a page.
	Read
)

func (m Method) String() string {
	switch m {
	case Auto:
		return "auto"
	case Scan:
		return "pagemap-scan"
	case Read:
		return "pagemap-read"
	}
	return fmt.Sprintf("method(%d)", int(m))
}

// Stats says what one Dump did.
type Stats struct {
	Mappings int    // mappings whose page map was looked at
	Found    int    // pages the page map reported as mattering
	Zero     int    // of those, pages dropped because they read as all zero
	Pages    int    // pages emitted
	Bytes    int64  // bytes emitted
	Records  int    // Pages records emitted
	Method   Method // Scan or Read: how the pages were found
}

// MappingError is an error about one mapping of a task.
type MappingError struct {
	PID int
	Vma image.Vma
	Err error
}

func (e *MappingError) Error() string {
	name := e.Vma.Name
	if name == "" {
		name = "anonymous"
	}
	return fmt.Sprintf("pid %d: mapping %x-%x (%s): %v", e.PID, e.Vma.Start, e.Vma.End, name, e.Err)
}

func (e *MappingError) Unwrap() error { return e.Err }

// plan is what Dump does with one mapping.
type plan int

const (
	planSkip plan = iota // nothing to dump
	planAnon             // private anonymous: present or swapped, zero pages dropped
	planFile             // private file: anonymous copies only, zero pages kept
)

// planFor decides what to dump of v.
func planFor(v *image.Vma) (plan, error) {
	switch v.Kind {
	case image.VmaVdso, image.VmaVvar, image.VmaVvarVclock, image.VmaVsyscall:
		return planSkip, nil
	case image.VmaAnon:
		if v.Shared && v.FileID != 0 {
			return planSkip, nil // the pages are the shmem File's contents
		}
		if v.Shared {
			return planSkip, ErrSharedAnon
		}
		return planAnon, nil
	case image.VmaFile:
		if v.Shared {
			return planSkip, nil
		}
		return planFile, nil
	}
	return planSkip, fmt.Errorf("unknown mapping kind %q", v.Kind)
}

// pageSize is the page size of this machine; the stream header records it.
var pageSize = os.Getpagesize()
