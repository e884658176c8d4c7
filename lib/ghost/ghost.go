// Package ghost is the restorer's side of files that are open but no
// longer reachable by name: ghosts (link count 0, contents in the image)
// and remaps (reachable through a hidden hard link ckpt-files made).
//
// A Holder brings each such inode back and keeps it open in the
// restorer, under the name it had, already unlinked, so that a task that
// opens Path(id) gets its own open file description of that inode, and
// its /proc/PID/fd/N reads "NAME (deleted)" exactly as before the dump:
//
//	holder := ghost.NewHolder()
//	holder.Add(file)      // every ghost or remap File record
//	holder.Write(data)    // every ghost-data record
//	holder.Seal()         // once, before any task opens a file
//	path, _ := holder.Path(file.ID)   // "/proc/<restorer>/fd/<n>"
//	... every restored task opens path with its own flags ...
//	holder.Close()        // on success; Abort() on failure
//
// Placing an inode under its old name NAME:
//
//   - NAME is free: link the inode at NAME, open NAME, unlink NAME.
//   - Another file stands at NAME: link the inode beside it under a
//     temporary name, swap the two names (renameat2 RENAME_EXCHANGE,
//     Linux 3.15; ext4, XFS, btrfs, tmpfs among others), open NAME, then
//     rename the other file back over NAME. The other file is never
//     missing; for an instant NAME leads to the restored inode, whose
//     name then dies as NAME.
//   - NAME is a directory, or the filesystem cannot swap names: the
//     inode is opened under a name beside NAME, NAME.ckpt-XXXXXXXX, and
//     reads "NAME.ckpt-XXXXXXXX (deleted)".
//
// A missing parent directory of NAME is created for the placement and
// removed after it.
//
// Ghost contents are written into an unnamed file (O_TMPFILE, Linux 3.11;
// on filesystems without it, a hidden named file) in the directory of
// NAME, data extents only, so holes stay holes; mode, owner and mtime are
// set before it is placed. A ghost-clone (ckpt-files --ghost-clone) has
// its contents in a hidden file beside its old name already, and is
// placed from there. A remap is reached through its hidden link. Hidden
// links and clones stay until Close, so an aborted restore can be run
// again.
//
// A Holder is not safe for concurrent use.
package ghost

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// Holds reports whether f is a kind a Holder handles: a ghost, a
// ghost-clone or a remap. Restore opens every other kind by its path.
func Holds(f *image.File) bool {
	switch f.Kind {
	case image.FileGhost, image.FileGhostClone, image.FileRemap:
		return true
	}
	return false
}

// Error is a failure about one held file.
type Error struct {
	ID   int    // the File's ID
	Kind string // ghost or remap
	Path string // the file's old name
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s file %d (%s): %v", e.Kind, e.ID, e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// entry is one held inode.
type entry struct {
	f    image.File
	data *os.File // ghost: the file being filled, until Seal
	temp string   // ghost without O_TMPFILE: the hidden name of data
	held *os.File // after Seal: the inode, opened under its old name
}

func (e *entry) errorf(format string, args ...any) error {
	return &Error{ID: e.f.ID, Kind: e.f.Kind, Path: e.f.Path, Err: fmt.Errorf(format, args...)}
}

// Holder recreates ghosts, reaches remaps and holds both open for the
// restored tasks. Make one with NewHolder.
type Holder struct {
	files  map[int]*entry
	order  []*entry
	dirs   []string // directories made for placements, parents first
	sealed bool
	done   bool // Close or Abort ran
}

// NewHolder returns an empty Holder.
func NewHolder() *Holder {
	return &Holder{files: map[int]*entry{}}
}

// Add takes a ghost or remap File record. A ghost gets an unnamed file in
// the directory of its old name, of its size and all holes, for Write to
// fill; a remap's hidden link is checked to lead to the dumped inode.
func (h *Holder) Add(f *image.File) error {
	if h.sealed || h.done {
		return fmt.Errorf("file %d: added after the holder was sealed", f.ID)
	}
	e := &entry{f: *f}
	if _, ok := h.files[f.ID]; ok {
		return e.errorf("a second file record with this ID")
	}
	if !filepath.IsAbs(f.Path) || f.Mode&unix.S_IFMT != unix.S_IFREG {
		return e.errorf("not a regular file with an absolute path (mode %o)", f.Mode)
	}
	var err error
	switch f.Kind {
	case image.FileGhost:
		err = h.addGhost(e)
	case image.FileRemap:
		err = checkRemap(e)
	case image.FileGhostClone:
		err = checkClone(e)
	default:
		return e.errorf("kind %q is not held by this restore", f.Kind)
	}
	if err != nil {
		return err
	}
	h.files[f.ID] = e
	h.order = append(h.order, e)
	return nil
}

func (h *Holder) addGhost(e *entry) error {
	if e.f.Size < 0 {
		return e.errorf("size %d", e.f.Size)
	}
	dir := filepath.Dir(e.f.Path)
	if err := h.makeDirs(dir); err != nil {
		return e.errorf("%w", err)
	}
	data, temp, err := createData(dir, e.f.ID)
	if err != nil {
		return e.errorf("create it in %s: %w", dir, err)
	}
	e.data, e.temp = data, temp
	if err := data.Truncate(e.f.Size); err != nil {
		h.dropData(e)
		return e.errorf("set its size: %w", err)
	}
	return nil
}

// checkRemap makes sure a remap's hidden link is there and is the file
// that was dumped.
func checkRemap(e *entry) error {
	if e.f.RemapPath == "" {
		return e.errorf("no hidden link in the record")
	}
	var st unix.Stat_t
	if err := unix.Lstat(e.f.RemapPath, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return e.errorf("its hidden link %s is gone (an image with remaps can be "+
				"restored once: was it restored already?)", e.f.RemapPath)
		}
		return e.errorf("hidden link %s: %w", e.f.RemapPath, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Dev != e.f.Dev || st.Ino != e.f.Ino {
		return e.errorf("its hidden link %s leads to inode %d, not the dumped %d",
			e.f.RemapPath, st.Ino, e.f.Ino)
	}
	return nil
}

// checkClone makes sure a ghost-clone's hidden file is there.
func checkClone(e *entry) error {
	var st unix.Stat_t
	err := unix.Lstat(e.f.ClonePath, &st)
	switch {
	case errors.Is(err, unix.ENOENT):
		return e.errorf("its hidden clone %s is gone (an image with ghost clones can be "+
			"restored once: was it restored already?)", e.f.ClonePath)
	case err != nil:
		return e.errorf("hidden clone %q: %w", e.f.ClonePath, err)
	case st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != e.f.Size:
		return e.errorf("its hidden clone %s is not a file of %d bytes", e.f.ClonePath,
			e.f.Size)
	}
	return nil
}

// Write puts one run of a ghost's contents in place.
func (h *Holder) Write(d *image.GhostData) error {
	e, ok := h.files[d.FileID]
	if !ok || e.f.Kind != image.FileGhost {
		return fmt.Errorf("ghost-data for file %d, which is no ghost before it", d.FileID)
	}
	if h.sealed || h.done {
		return e.errorf("ghost-data after the holder was sealed")
	}
	end := d.Offset + int64(len(d.Data))
	if d.Offset < 0 || end > e.f.Size || len(d.Data) > image.MaxChunk {
		return e.errorf("ghost-data of %d bytes at %d lies outside its %d bytes",
			len(d.Data), d.Offset, e.f.Size)
	}
	if _, err := e.data.WriteAt(d.Data, d.Offset); err != nil {
		return e.errorf("write %d bytes at %d: %w", len(d.Data), d.Offset, err)
	}
	return nil
}

// Seal finishes every ghost (mode, owner, mtime) and places every file
// under its old name, opened by the holder and already unlinked. Call it
// once, after the last ghost-data record and before the first Path.
// After an error, call Abort.
func (h *Holder) Seal() error {
	if h.sealed || h.done {
		return errors.New("ghost holder sealed twice")
	}
	h.sealed = true
	for _, e := range h.order {
		if err := h.seal(e); err != nil {
			return err
		}
	}
	return h.removeDirs()
}

func (h *Holder) seal(e *entry) error {
	switch e.f.Kind {
	case image.FileRemap:
		held, err := h.place(e, e.f.RemapPath, devIno{e.f.Dev, e.f.Ino})
		e.held = held
		return err
	case image.FileGhostClone:
		clone, err := os.OpenFile(e.f.ClonePath, os.O_RDWR|unix.O_NOFOLLOW, 0)
		if err != nil {
			return e.errorf("open its clone: %w", err)
		}
		e.data = clone // finished and placed as a ghost's data file
	}
	if err := finish(e.data, &e.f); err != nil {
		return e.errorf("%w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(e.data.Fd()), &st); err != nil {
		return e.errorf("fstat: %w", err)
	}
	from := e.temp
	if from == "" {
		from = procSelfFd(e.data)
	}
	held, err := h.place(e, from, devIno{st.Dev, st.Ino})
	e.held = held
	h.dropData(e)
	return err
}

// Path returns the path through which a task opens the held file id:
// /proc/PID/fd/N of the restorer. An open of it is a new open file
// description of the same inode, with the flags the opener asks for,
// whose /proc link reads "NAME (deleted)".
func (h *Holder) Path(id int) (string, error) {
	e, ok := h.files[id]
	if !ok {
		return "", fmt.Errorf("file %d is no ghost or remap held by the restorer", id)
	}
	if e.held == nil {
		return "", e.errorf("not placed yet: the holder was not sealed")
	}
	return "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(int(e.held.Fd())), nil
}

// Close ends a successful restore, once every task has opened its files:
// it closes the held files (a ghost lives on in the tasks that opened
// it) and removes the hidden links of remaps and the hidden files of
// ghost clones.
func (h *Holder) Close() error {
	if h.done {
		return nil
	}
	h.done = true
	var errs []error
	for _, e := range h.order {
		h.dropData(e)
		if e.held != nil {
			e.held.Close()
		}
		if !h.sealed {
			continue
		}
		for _, path := range []string{e.f.RemapPath, e.f.ClonePath} {
			if path == "" {
				continue
			}
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, e.errorf("remove its hidden file: %w", err))
			}
		}
	}
	errs = append(errs, h.removeDirs())
	return errors.Join(errs...)
}

// Abort ends a failed restore: it closes everything and removes every
// file and directory the holder made. The hidden links of remaps and the
// clones of ghosts stay, so the image can be restored again.
func (h *Holder) Abort() {
	if h.done {
		return
	}
	h.done = true
	for _, e := range h.order {
		h.dropData(e)
		if e.held != nil {
			e.held.Close()
		}
	}
	_ = h.removeDirs()
}

// dropData closes a ghost's data file and removes its hidden name.
func (h *Holder) dropData(e *entry) {
	if e.data != nil {
		e.data.Close()
		e.data = nil
	}
	if e.temp != "" {
		_ = os.Remove(e.temp)
		e.temp = ""
	}
}
