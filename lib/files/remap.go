package files

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// remapPrefix starts the name of every hidden link ckpt-files makes.
const remapPrefix = ".ckpt-remap-"

// linkRemaps gives every remap a hidden hard link, made through the /proc
// link of one of its uses, so restore can reach the file without a copy.
func (res *Result) linkRemaps() error {
	for i := range res.Files {
		f := &res.Files[i]
		if f.Kind != image.FileRemap {
			continue
		}
		src := res.sources[f.ID]
		link, err := hiddenLink(procPath(src.Use), f)
		if err != nil {
			return &Error{Use: src.Use, Path: src.names[0], Err: err}
		}
		f.RemapPath = link
	}
	return nil
}

// hiddenLink links the file behind the /proc link from under a new hidden
// name in the directory of its old name, or in the nearest parent of it
// that still exists: a hard link must be on the file's own filesystem.
func hiddenLink(from string, f *image.File) (string, error) {
	dir, err := existingDir(filepath.Dir(f.Path))
	if err != nil {
		return "", fmt.Errorf("find a directory for its hidden link: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%s%d-%s", remapPrefix, f.Ino, randomHex()))

	if err := linkFollow(from, path); err != nil {
		switch {
		case errors.Is(err, unix.EXDEV):
			return "", fmt.Errorf("make its hidden link in %s: that directory is on another "+
				"filesystem than the file: %w", dir, err)
		case errors.Is(err, unix.ENOENT):
			return "", fmt.Errorf("make its hidden link in %s: its last name was removed "+
				"since it was looked at: %w", dir, ErrChanged)
		}
		return "", fmt.Errorf("make its hidden link in %s: %w", dir, err)
	}

	st, err := lstat(path)
	if err == nil && (st.Dev != f.Dev || st.Ino != f.Ino) {
		err = fmt.Errorf("hidden link %s leads to inode %d, not %d", path, st.Ino, f.Ino)
	}
	if err != nil {
		_ = os.Remove(path)
		return "", err
	}
	return path, nil
}

// randomHex returns 8 random hex digits, for hidden names.
func randomHex() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// existingDir returns dir, or its nearest parent that exists.
func existingDir(dir string) (string, error) {
	for {
		st, err := statFollow(dir)
		if err == nil {
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return "", fmt.Errorf("%s is not a directory", dir)
			}
			return dir, nil
		}
		if !notExist(err) || dir == "/" || dir == "." {
			return "", err
		}
		dir = filepath.Dir(dir)
	}
}

// Undo removes the hidden links and clones Resolve made, for a dump that
// failed.
func (res *Result) Undo() error {
	var errs []error
	for _, f := range res.Files {
		for _, path := range []string{f.RemapPath, f.ClonePath} {
			if path == "" {
				continue
			}
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove hidden file: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}
