package pages

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The PAGEMAP_SCAN ioctl on /proc/PID/pagemap (Linux 6.7+, include/uapi/
// linux/fs.h): _IOWR('f', 16, struct pm_scan_arg).
const pagemapScan = 0xC0606610

// Page categories of PAGEMAP_SCAN that Dump asks about.
const (
	pageIsFile    = 1 << 2 // file-backed (or shared anonymous) page
	pageIsPresent = 1 << 3
	pageIsSwapped = 1 << 4
	pageIsPFNZero = 1 << 5 // the shared zero page
)

// scanArg is struct pm_scan_arg: twelve 64-bit words, 96 bytes.
type scanArg struct {
	size       uint64
	flags      uint64
	start      uint64
	end        uint64
	walkEnd    uint64 // set by the kernel: where the walk stopped
	vec        uint64 // address of the []pageRegion output
	vecLen     uint64
	maxPages   uint64
	inverted   uint64 // categories that match when clear
	mask       uint64 // every one of these must match
	anyOf      uint64 // at least one of these must match
	returnMask uint64 // categories reported in each region
}

// pageRegion is struct page_region: one range [start, end) of pages.
type pageRegion struct {
	start      uint64
	end        uint64
	categories uint64
}

// span is a range [start, end) of pages that matter.
type span struct {
	start, end uint64
}

// Bits of a /proc/PID/pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
const (
	pmPresent = 1 << 63
	pmSwapped = 1 << 62
	pmFile    = 1 << 61 // file page or shared anonymous
)

// finder finds the pages that matter in [start, end): present or swapped
// and not file-backed. It appends their ranges to out and returns them with
// the address to go on from, which is end once the range is done.
// skipZeroPFN lets it leave out mappings of the zero page, when it can.
type finder interface {
	find(start, end uint64, skipZeroPFN bool, out []span) ([]span, uint64, error)
}

// scanFinder finds pages with PAGEMAP_SCAN.
type scanFinder struct {
	pagemap *os.File
	regs    []pageRegion
}

func (s *scanFinder) find(start, end uint64, skipZeroPFN bool, out []span) ([]span, uint64, error) {
	skip := uint64(pageIsFile)
	if skipZeroPFN {
		skip |= pageIsPFNZero
	}
	arg := scanArg{
		start:    start,
		end:      end,
		inverted: skip,
		mask:     skip,
		anyOf:    pageIsPresent | pageIsSwapped,
	}
	n, err := ioctlScan(int(s.pagemap.Fd()), &arg, s.regs)
	if err != nil {
		return out, start, fmt.Errorf("pagemap scan at %#x: %w", start, err)
	}

	// A call that did not fill the array walked the whole range, whatever
	// walk_end says: it can be left stale, where the kernel's own buffer
	// of 512 regions filled earlier in the call (seen on 6.18). After a
	// full one, go on from walk_end, but never from before the end of the
	// last region returned, or pages would come twice.
	next := end
	if n == len(s.regs) {
		next = arg.walkEnd
	}
	for _, r := range s.regs[:n] {
		out = append(out, span{r.start, r.end})
		next = max(next, r.end)
	}
	if next <= start {
		return out, start, fmt.Errorf("pagemap scan at %#x made no progress", start)
	}
	return out, min(next, end), nil
}

// readFinder finds pages by reading /proc/PID/pagemap, 8 bytes a page.
type readFinder struct {
	pagemap *os.File
	buf     []byte
}

func (r *readFinder) find(start, end uint64, _ bool, out []span) ([]span, uint64, error) {
	ps := uint64(pageSize)
	n := min((end-start)/ps, uint64(len(r.buf)/8))
	buf := r.buf[:n*8]
	if _, err := r.pagemap.ReadAt(buf, int64(start/ps*8)); err != nil {
		return out, start, fmt.Errorf("read page map at %#x: %w", start, err)
	}

	for i := range n {
		e := binary.NativeEndian.Uint64(buf[i*8:])
		if e&(pmPresent|pmSwapped) == 0 || e&pmFile != 0 {
			continue
		}
		addr := start + i*ps
		if k := len(out) - 1; k >= 0 && out[k].end == addr {
			out[k].end += ps
		} else {
			out = append(out, span{addr, addr + ps})
		}
	}
	return out, start + n*ps, nil
}

// scanMissing reports whether err says the kernel has no PAGEMAP_SCAN.
func scanMissing(err error) bool {
	return errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL)
}
