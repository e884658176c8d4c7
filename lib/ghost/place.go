package ghost

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// devIno identifies an inode.
type devIno struct{ dev, ino uint64 }

// place opens the inode that from leads to under the old name of e, and
// unlinks that name again, leaving nothing in the directory. from is a
// path (a hidden link, a hidden temporary name) or a /proc/self/fd link
// of an unnamed file; want is the inode it must be.
func (h *Holder) place(e *entry, from string, want devIno) (*os.File, error) {
	dir, base := filepath.Split(e.f.Path)
	if err := h.makeDirs(dir); err != nil {
		return nil, e.errorf("%w", err)
	}
	d, err := openDir(dir)
	if err != nil {
		return nil, e.errorf("%w", err)
	}
	defer d.Close()

	f, err := placeFree(d, from, base)
	if errors.Is(err, unix.EEXIST) {
		f, err = placeTaken(d, from, base)
	}
	if err != nil {
		return nil, e.errorf("place it under its old name: %w", err)
	}
	if err := checkInode(f, want); err != nil {
		f.Close()
		return nil, e.errorf("%w", err)
	}
	return f, nil
}

// placeFree links the inode at base, opens it there and unlinks base. It
// fails with EEXIST, changing nothing, when base is taken.
func placeFree(d *os.File, from, base string) (*os.File, error) {
	// 1. Link the inode in: atomic, so a taken name is EEXIST.
	if err := linkIn(d, from, base); err != nil {
		return nil, err
	}
	// 2. Open it under its old name: this open file is what tasks reopen.
	f, err := openIn(d, base)
	// 3. Remove the name again, opened or not.
	if uerr := unlinkIn(d, base); uerr != nil {
		if f != nil {
			f.Close()
		}
		return nil, errors.Join(err, uerr)
	}
	return f, err
}

// placeTaken places the inode at base when another file stands there,
// without that file ever being missing: it swaps names with a temporary
// link to the inode, opens base, and moves the other file back.
func placeTaken(d *os.File, from, base string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(int(d.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, fmt.Errorf("stat %s: %w", base, err)
	}
	tmp := besideName(base)
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		// A directory cannot be renamed back over a file.
		return placeFree(d, from, tmp)
	}
	// 1. Link the inode in under a temporary name.
	if err := linkIn(d, from, tmp); err != nil {
		return nil, err
	}
	// 2. Swap: the inode is at base, the other file at tmp.
	if err := exchangeIn(d, tmp, base); err != nil {
		if uerr := unlinkIn(d, tmp); uerr != nil {
			return nil, errors.Join(err, uerr)
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			// The filesystem cannot swap names: use a name beside.
			return placeFree(d, from, tmp)
		}
		return nil, err
	}
	// 3. Open the inode under base.
	f, err := openIn(d, base)
	// 4. Move the other file back over base, opened or not: the
	//    inode's name dies as base.
	if rerr := renameIn(d, tmp, base); rerr != nil {
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("put back the file that stands at %s, now at %s: %w",
			filepath.Join(d.Name(), base), filepath.Join(d.Name(), tmp), rerr)
	}
	return f, err
}

// besideName returns a fresh name beside base: "base.ckpt-XXXXXXXX", or
// ".ckpt-XXXXXXXX" when that would be too long for a name.
func besideName(base string) string {
	suffix := ".ckpt-" + randomHex()
	if len(base)+len(suffix) > unix.NAME_MAX {
		return suffix
	}
	return base + suffix
}

// randomHex returns 8 random hex digits, for temporary names.
func randomHex() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// checkInode makes sure f is the inode meant.
func checkInode(f *os.File, want devIno) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	if st.Dev != want.dev || st.Ino != want.ino {
		return fmt.Errorf("opened inode %d under its old name, not %d: the name changed "+
			"under the restorer", st.Ino, want.ino)
	}
	return nil
}

// makeDirs creates dir and every missing parent of it, and remembers
// each it made, to remove it after the placements.
func (h *Holder) makeDirs(dir string) error {
	dir = filepath.Clean(dir)
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		var st unix.Stat_t
		err := unix.Stat(d, &st)
		if err == nil {
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return fmt.Errorf("make directory %s: %s is not a directory", dir, d)
			}
			break
		}
		if !errors.Is(err, unix.ENOENT) || d == "/" {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o700); err != nil {
			return fmt.Errorf("make missing directory: %w", err)
		}
		h.dirs = append(h.dirs, missing[i])
	}
	return nil
}

// removeDirs removes the directories makeDirs made, deepest first. One
// that is not empty (something else was put there since) is left.
func (h *Holder) removeDirs() error {
	var errs []error
	for i := len(h.dirs) - 1; i >= 0; i-- {
		err := unix.Rmdir(h.dirs[i])
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTEMPTY) {
			errs = append(errs, fmt.Errorf("remove directory %s: %w", h.dirs[i], err))
		}
	}
	h.dirs = nil
	return errors.Join(errs...)
}
