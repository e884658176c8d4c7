package restore

import (
	"fmt"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// checkFile refuses a linked file that is no longer the one dumped: gone,
// another inode, or (unless accept) another size or mtime.
func checkFile(f *image.File, accept bool) error {
	var st unix.Stat_t
	if err := unix.Stat(f.Path, &st); err != nil {
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	switch f.Kind {
	case image.FileDevice:
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != f.Rdev {
			return fmt.Errorf("file %s is no longer the device it was", f.Path)
		}
		return nil
	case image.FileLinked:
	default:
		return fmt.Errorf("file %s: kind %q is not supported by this restore", f.Path, f.Kind)
	}
	if st.Dev != f.Dev || st.Ino != f.Ino {
		return fmt.Errorf("file %s was replaced since the dump (inode %d, was %d)",
			f.Path, st.Ino, f.Ino)
	}
	if accept || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	mtime := st.Mtim.Sec*1e9 + st.Mtim.Nsec
	if st.Size != f.Size || mtime != f.MtimeNs {
		return fmt.Errorf("file %s changed since the dump (size %d, was %d; mtime %d, was %d): "+
			"restore with --accept-changed to use it as it is", f.Path, st.Size, f.Size,
			mtime, f.MtimeNs)
	}
	return nil
}
