package ghost

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/ckpt/ckpt/lib/image"
)

// HoldsShmem reports whether f is a kind a Shmem handles: an object of
// the kernel's shmem mount, whose contents the image holds: shared
// anonymous memory (image.FileShmem), a memfd (image.FileMemfd) or a
// SysV shared memory segment (image.FileSysVShm).
func HoldsShmem(f *image.File) bool {
	switch f.Kind {
	case image.FileShmem, image.FileMemfd, image.FileSysVShm:
		return true
	}
	return false
}

// Shmem is the restorer's side of shared memory: it makes each object
// again, fills it with the contents in the image, and holds it open for
// the restored tasks, which map it through Path(id), every mapping of
// every task the same object, so it is shared again. (A SysV segment is
// attached by its shmid instead, which Add makes the same as before;
// memfd.go and sysv.go tell how those two are made.)
//
//	shm := ghost.NewShmem()
//	shm.Add(file)      // every shmem File record: an empty object of its size
//	shm.Write(data)    // every ghost-data record of one: written at its offset
//	path, _ := shm.Path(file.ID)   // "/proc/<restorer>/fd/<n>"
//	... every task opens path O_RDWR and maps it MAP_SHARED ...
//	shm.Close()        // on success; Abort() on failure
//
// The object is made the way the kernel makes one for a task's
// mmap(MAP_SHARED|MAP_ANONYMOUS), by such an mmap in the restorer itself,
// so its file is named "/dev/zero (deleted)" as the dumped one was; the
// restorer opens it through /proc/self/map_files (which needs
// CAP_SYS_ADMIN, or CAP_CHECKPOINT_RESTORE on Linux 5.9+) and unmaps it
// again. Only data is written: the pages the image leaves out stay holes,
// which cost no memory until touched. Nothing is made on disk, so an
// aborted restore leaves nothing behind once the objects are closed.
//
// A Shmem is not safe for concurrent use.
type Shmem struct {
	objs  map[int]*shmemObj
	order []*shmemObj
	done  bool // Close or Abort ran
	// SysVWait is how long Add waits for a SysV segment still attached
	// by processes (the dumped ones, dying) to be let go; zero: not at all.
	SysVWait time.Duration
	// Note, when set, receives short messages for people (waits).
	Note func(string)
}

// shmemObj is one shared memory object being restored.
type shmemObj struct {
	f    image.File
	file *os.File // the restorer's open file of the object
	// made is true for a SysV segment that Add created, which Abort
	// removes again.
	made bool
}

func (o *shmemObj) errorf(format string, args ...any) error {
	return &Error{ID: o.f.ID, Kind: o.f.Kind, Path: o.f.Path, Err: fmt.Errorf(format, args...)}
}

// NewShmem returns an empty Shmem.
func NewShmem() *Shmem {
	return &Shmem{objs: map[int]*shmemObj{}}
}

// Add takes a shmem File record and makes an object of its size, all
// holes, for Write to fill.
func (s *Shmem) Add(f *image.File) error {
	o := &shmemObj{f: *f}
	if s.done {
		return o.errorf("added after the restore ended")
	}
	if !HoldsShmem(f) {
		return o.errorf("kind %q is not shared memory", f.Kind)
	}
	if _, ok := s.objs[f.ID]; ok {
		return o.errorf("a second file record with this ID")
	}
	if f.Size < 0 || f.Size == 0 && f.Kind != image.FileMemfd {
		return o.errorf("size %d", f.Size)
	}
	var err error
	switch f.Kind {
	case image.FileMemfd:
		o.file, err = createMemfd(f)
	case image.FileSysVShm:
		err = s.addSysV(o)
	default:
		o.file, err = createShmem(f.Size)
	}
	if err != nil {
		return o.errorf("make the object: %w", err)
	}
	s.objs[f.ID] = o
	s.order = append(s.order, o)
	return nil
}

// Has reports whether id is a shared memory object of s: the ghost-data
// records of such a File go to Write.
func (s *Shmem) Has(id int) bool {
	_, ok := s.objs[id]
	return ok
}

// Write puts one run of an object's contents in place.
func (s *Shmem) Write(d *image.GhostData) error {
	o, ok := s.objs[d.FileID]
	if !ok {
		return fmt.Errorf("ghost-data for file %d, which is no shared memory before it",
			d.FileID)
	}
	if s.done {
		return o.errorf("ghost-data after the restore ended")
	}
	end := d.Offset + int64(len(d.Data))
	if d.Offset < 0 || end > o.f.Size || len(d.Data) > image.MaxChunk {
		return o.errorf("ghost-data of %d bytes at %d lies outside its %d bytes",
			len(d.Data), d.Offset, o.f.Size)
	}
	if _, err := o.file.WriteAt(d.Data, d.Offset); err != nil {
		return o.errorf("write %d bytes at %d: %w", len(d.Data), d.Offset, err)
	}
	return nil
}

// Path returns the path through which a task opens the object id:
// /proc/PID/fd/N of the restorer. A task opens it O_RDWR, so that its
// MAP_SHARED mapping may be made writable later, as the dumped one could.
func (s *Shmem) Path(id int) (string, error) {
	o, ok := s.objs[id]
	if !ok {
		return "", fmt.Errorf("file %d is no shared memory held by the restorer", id)
	}
	if o.file == nil {
		return "", o.errorf("closed already")
	}
	return "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(int(o.file.Fd())), nil
}

// Close ends a successful restore, once every task has mapped and
// attached its objects and opened its fds: it seals each memfd with its
// seals, marks each SysV segment that was marked for removal so again,
// and closes the restorer's files; each object lives on in the tasks
// that use it.
func (s *Shmem) Close() error {
	if s.done {
		return nil
	}
	var errs []error
	for _, o := range s.order {
		var err error
		switch o.f.Kind {
		case image.FileMemfd:
			err = addSeals(o.file, o.f.Seals)
		case image.FileSysVShm:
			err = o.finishSysV()
		}
		if err != nil {
			errs = append(errs, o.errorf("%w", err))
		}
	}
	return errors.Join(append(errs, s.closeAll())...)
}

// closeAll closes the restorer's files.
func (s *Shmem) closeAll() error {
	s.done = true
	var errs []error
	for _, o := range s.order {
		if o.file == nil {
			continue
		}
		if err := o.file.Close(); err != nil {
			errs = append(errs, o.errorf("close: %w", err))
		}
		o.file = nil
	}
	return errors.Join(errs...)
}

// Abort ends a failed restore: it removes the SysV segments it made and
// closes every object, which the kernel then frees once the tasks that
// map it are gone.
func (s *Shmem) Abort() {
	if s.done {
		return
	}
	for _, o := range s.order {
		if o.made {
			_ = removeSysV(o.f.SysV.ID)
		}
	}
	_ = s.closeAll()
}
