package stage

import (
	"fmt"
	"os"
	"runtime"
)

// CheckLocal refuses a stream made on a machine of another architecture
// or page size: a stage that reads the live tree (ckpt-files, ckpt-mem)
// would read this machine's processes of the same PIDs as if they were
// the ones dumped.
func (s *Stage) CheckLocal() error {
	h := s.Header
	if h.Arch != runtime.GOARCH {
		return fmt.Errorf("stream header: the stream is from an %s machine, this one is %s",
			h.Arch, runtime.GOARCH)
	}
	if h.PageSize != os.Getpagesize() {
		return fmt.Errorf("stream header: the stream has %d-byte pages, this machine %d",
			h.PageSize, os.Getpagesize())
	}
	return nil
}
