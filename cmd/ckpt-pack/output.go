package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// output is where the archive goes: stdout, or a file written under a
// temporary name and renamed when complete.
type output struct {
	w     io.Writer
	file  *os.File // the file written, when it is one
	tmp   string   // its temporary name, when it gets renamed
	final string
	owned bool // opened here: close it when done
	done  bool
}

// openOutput opens path, or stdout when path is empty. A path that names
// something other than a regular file (a device, a FIFO) is written in
// place; anything else is written beside it under a temporary name.
func openOutput(path string, stdout io.Writer) (*output, error) {
	if path == "" {
		f, _ := stdout.(*os.File)
		return &output{w: stdout, file: f}, nil
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		return &output{w: f, file: f, owned: true}, nil
	}
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+".partial-*") // mode 0600: it holds process memory
	if err != nil {
		return nil, fmt.Errorf("create archive: %w", err)
	}
	return &output{w: f, file: f, tmp: f.Name(), final: path, owned: true}, nil
}

// commit makes the archive durable: it syncs a regular file, and renames
// a temporary one to its final name and syncs the directory.
func (o *output) commit() error {
	if o.file != nil && isRegular(o.file) {
		if err := o.file.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", o.file.Name(), err)
		}
	}
	if o.owned {
		if err := o.file.Close(); err != nil {
			return fmt.Errorf("close %s: %w", o.file.Name(), err)
		}
	}
	if o.tmp == "" {
		o.done = true
		return nil
	}
	if err := os.Rename(o.tmp, o.final); err != nil {
		return fmt.Errorf("rename archive: %w", err)
	}
	o.done = true
	return syncDir(filepath.Dir(o.final))
}

// abort closes what openOutput opened and removes a temporary file that
// was not committed.
func (o *output) abort() {
	if o.done {
		return
	}
	if o.owned {
		o.file.Close()
	}
	if o.tmp != "" {
		os.Remove(o.tmp)
	}
}

func isRegular(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode().IsRegular()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
