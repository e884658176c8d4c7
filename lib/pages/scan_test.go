package pages

import (
	"testing"
	"unsafe"
)

func TestScanLayout(t *testing.T) {
	if s := unsafe.Sizeof(scanArg{}); s != 96 {
		t.Errorf("pm_scan_arg is %d bytes, want 96", s)
	}
	if s := unsafe.Sizeof(pageRegion{}); s != 24 {
		t.Errorf("page_region is %d bytes, want 24", s)
	}
}
