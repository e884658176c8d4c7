package files

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// clonePrefix starts the name of every ghost clone ckpt-files makes.
const clonePrefix = ".ckpt-ghost-"

// errNoClone says that a filesystem can neither clone nor copy a file in
// the kernel: the ghost goes through the stream instead.
var errNoClone = errors.New("no clone or in-kernel copy on this filesystem")

// cloneGhosts keeps every ghost in a hidden file beside its old name
// instead of in the stream, where the filesystem can clone its extents
// (FICLONE: btrfs, XFS) or copy it in the kernel (copy_file_range).
// A ghost it cannot keep so stays a ghost, for the stream.
func (res *Result) cloneGhosts() error {
	for i := range res.Files {
		f := &res.Files[i]
		if f.Kind != image.FileGhost {
			continue
		}
		src := res.sources[f.ID]
		path, err := cloneGhost(src.Use, f)
		if errors.Is(err, errNoClone) {
			continue
		}
		if err != nil {
			return &Error{Use: src.Use, Path: src.names[0], Err: err}
		}
		f.Kind, f.ClonePath = image.FileGhostClone, path
		res.Summary.Files[image.FileGhostClone]++
		if res.Summary.Files[image.FileGhost]--; res.Summary.Files[image.FileGhost] == 0 {
			delete(res.Summary.Files, image.FileGhost)
		}
	}
	return nil
}

// cloneGhost makes the hidden clone of one ghost and returns its path.
func cloneGhost(u Use, f *image.File) (string, error) {
	dir, err := existingDir(filepath.Dir(f.Path))
	if err != nil {
		return "", fmt.Errorf("find a directory for its clone: %w", err)
	}
	src, err := openSource(u)
	if err != nil {
		return "", err
	}
	defer src.Close()

	path := filepath.Join(dir, fmt.Sprintf("%s%d-%s", clonePrefix, f.Ino, randomHex()))
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, unix.EROFS) {
			return "", errNoClone
		}
		return "", fmt.Errorf("keep its clone: %w", err)
	}
	err = cloneFile(dst, src, f.Size)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return "", err
	}
	return path, nil
}

// cloneFile gives dst the contents of src up to size: FICLONE where the
// filesystem shares extents, else copy_file_range over the data extents,
// so holes stay holes either way.
func cloneFile(dst, src *os.File, size int64) error {
	err := unix.IoctlFileClone(int(dst.Fd()), int(src.Fd()))
	if err == nil {
		return dst.Truncate(size) // the file may have grown since it was resolved
	}
	if !unsupported(err) {
		return fmt.Errorf("clone with FICLONE: %w", err)
	}
	if err := dst.Truncate(size); err != nil {
		return fmt.Errorf("keep its clone: %w", err)
	}
	return dataExtents(src, size, func(off, end int64) error {
		return copyRange(dst, src, off, end)
	})
}

// copyRange copies [off, end) of src to the same place in dst, in the
// kernel.
func copyRange(dst, src *os.File, off, end int64) error {
	for off < end {
		in, out := off, off
		n, err := unix.CopyFileRange(int(src.Fd()), &in, int(dst.Fd()), &out, int(end-off), 0)
		if unsupported(err) {
			return errNoClone
		}
		if err != nil {
			return fmt.Errorf("copy_file_range at %d: %w", off, err)
		}
		if n == 0 {
			return fmt.Errorf("copy at %d: the file shrank while being copied", off)
		}
		off += int64(n)
	}
	return nil
}

// unsupported reports whether err says a filesystem lacks an operation.
func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) ||
		errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) ||
		errors.Is(err, unix.ENOTTY)
}
