package show

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/ckpt/ckpt/lib/archive"
	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stream"
)

// maxWarnings is how many warnings a Summary keeps; it counts the rest.
const maxWarnings = 50

// Summary is what a record stream holds, gathered for Write. It keeps the
// task, fd and file records, and only counts pages and ghost data.
type Summary struct {
	Header      *image.Header
	End         *image.End
	Archive     *archive.Summary // nil when the input was a plain record stream
	StreamBytes int64            // length of the record stream

	Tasks []*Task // by PID of the first record naming it, in stream order
	Files []*File // in stream order

	// GhostRecords and GhostBytes count every ghost-data record and its
	// data; PageRecords and PageBytes every pages record.
	GhostRecords int
	GhostBytes   int64
	PageRecords  int
	PageBytes    int64

	// Other counts records of kinds this tool does not know, by kind.
	Other map[string]int

	// Warnings say what looks wrong in a stream that is still well formed
	// (a record for a PID with no task record, pages outside any mapping,
	// a reference to a file no record defines). The first maxWarnings are
	// kept; MoreWarnings counts the others.
	Warnings     []string
	MoreWarnings int

	tasks map[int]*Task
	files map[int]*File
}

// Task is what the stream says about one process.
type Task struct {
	PID int
	// Task is its task record, with the extended register state dropped;
	// nil when no task record came, only fd or pages records naming PID.
	Task *image.Task
	Fds  []image.Fd

	PageRecords int
	PageBytes   int64
}

// File is a file record and the ghost data that came for it.
type File struct {
	image.File
	GhostRecords int
	GhostBytes   int64
}

// Collect reads in to its end and gathers what it holds. On a truncated or
// corrupt input it returns what it gathered so far and the error.
func Collect(ctx context.Context, in *Input) (*Summary, error) {
	h, err := in.Header()
	if err != nil {
		return nil, err
	}
	s := &Summary{
		Header: h,
		Other:  map[string]int{},
		tasks:  map[int]*Task{},
		files:  map[int]*File{},
	}
	for {
		if err := ctx.Err(); err != nil {
			in.Close()
			return s, err
		}
		rec, err := in.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.StreamBytes = in.StreamBytes()
			return s, err
		}
		if err := s.add(rec); err != nil {
			in.Close()
			return s, in.Errorf(err)
		}
	}
	s.End, s.Archive, s.StreamBytes = in.End(), in.Archive(), in.StreamBytes()
	s.check()
	return s, nil
}

// add takes one record.
func (s *Summary) add(rec stream.Record) error {
	switch rec.Kind {
	case image.KindTask:
		return s.addTask(rec)
	case image.KindFd:
		var fd image.Fd
		if err := rec.Decode(&fd); err != nil {
			return err
		}
		s.checkFile(fd.FileID, "pid %d: fd %d", fd.PID, fd.Fd)
		t := s.task(fd.PID)
		t.Fds = append(t.Fds, fd)
	case image.KindFile:
		return s.addFile(rec)
	case image.KindGhostData:
		return s.addGhostData(rec)
	case image.KindPages:
		return s.addPages(rec)
	default:
		s.Other[rec.Kind]++
	}
	return nil
}

func (s *Summary) addTask(rec stream.Record) error {
	var task image.Task
	if err := rec.Decode(&task); err != nil {
		return err
	}
	for i := range task.Threads {
		task.Threads[i].Xstate = nil
	}
	t := s.task(task.PID)
	if t.Task != nil {
		s.warn("pid %d: a second task record", task.PID)
	}
	if t.PageRecords > 0 {
		s.warn("pid %d: pages records come before its task record", task.PID)
	}
	s.checkFile(task.ExeFileID, "pid %d: exe", task.PID)
	for _, v := range task.Vmas {
		s.checkFile(v.FileID, "pid %d: mapping %#x-%#x", task.PID, v.Start, v.End)
	}
	t.Task = &task
	return nil
}

func (s *Summary) addFile(rec stream.Record) error {
	var f image.File
	if err := rec.Decode(&f); err != nil {
		return err
	}
	if s.files[f.ID] != nil {
		s.warn("file %d: a second file record", f.ID)
	}
	file := &File{File: f}
	s.files[f.ID] = file
	s.Files = append(s.Files, file)
	return nil
}

func (s *Summary) addGhostData(rec stream.Record) error {
	var g image.GhostData
	if err := rec.Decode(&g); err != nil {
		return err
	}
	s.GhostRecords++
	s.GhostBytes += int64(len(g.Data))
	f := s.files[g.FileID]
	switch {
	case f == nil:
		s.warn("ghost data for file %d, which no earlier file record defines", g.FileID)
		return nil
	case !hasData(f.Kind):
		s.warn("ghost data for file %d, which is %q, not a ghost", g.FileID, f.Kind)
	}
	if end := g.Offset + int64(len(g.Data)); g.Offset < 0 || end > f.Size {
		s.warn("ghost data for file %d at %d-%d lies outside its %d bytes",
			g.FileID, g.Offset, end, f.Size)
	}
	f.GhostRecords++
	f.GhostBytes += int64(len(g.Data))
	return nil
}

func (s *Summary) addPages(rec stream.Record) error {
	var p image.Pages
	if err := rec.Decode(&p); err != nil {
		return err
	}
	n := int64(len(p.Data))
	s.PageRecords++
	s.PageBytes += n
	t := s.task(p.PID)
	t.PageRecords++
	t.PageBytes += n
	ps := uint64(max(s.Header.PageSize, 1))
	if p.Addr%ps != 0 || uint64(n)%ps != 0 {
		s.warn("pid %d: pages at %#x: %d bytes, not whole pages", p.PID, p.Addr, n)
	}
	if t.Task != nil && !inside(t.Task.Vmas, p.Addr, p.Addr+uint64(n)) {
		s.warn("pid %d: pages at %#x-%#x lie outside its mappings", p.PID, p.Addr, p.Addr+uint64(n))
	}
	return nil
}

// inside says whether [start, end) lies within mappings that follow each
// other without a gap.
func inside(vmas []image.Vma, start, end uint64) bool {
	for start < end {
		i := slices.IndexFunc(vmas, func(v image.Vma) bool { return v.Start <= start && start < v.End })
		if i < 0 {
			return false
		}
		start = vmas[i].End
	}
	return true
}

// task returns the Task of pid, creating it the first time.
func (s *Summary) task(pid int) *Task {
	t := s.tasks[pid]
	if t == nil {
		t = &Task{PID: pid}
		s.tasks[pid] = t
		s.Tasks = append(s.Tasks, t)
	}
	return t
}

// File returns the file record with the given ID, or nil.
func (s *Summary) File(id int) *File { return s.files[id] }

// check looks for processes named by fd or pages records that have no
// task record.
func (s *Summary) check() {
	for _, t := range s.Tasks {
		if t.Task == nil {
			s.warn("pid %d: fd or pages records, but no task record", t.PID)
		}
	}
}

// checkFile warns when a record refers to a file that no earlier file
// record defines: file records come before what refers to them.
func (s *Summary) checkFile(id int, format string, args ...any) {
	if id != 0 && s.files[id] == nil {
		s.warn("%s is file %d, which no earlier file record defines",
			fmt.Sprintf(format, args...), id)
	}
}

func (s *Summary) warn(format string, args ...any) {
	if len(s.Warnings) == maxWarnings {
		s.MoreWarnings++
		return
	}
	s.Warnings = append(s.Warnings, fmt.Sprintf(format, args...))
}

// hasData reports whether a File of kind is followed by ghost-data records:
// a ghost's or shared memory object's contents, a pipe's bytes in flight.
func hasData(kind string) bool {
	switch kind {
	case image.FileGhost, image.FileShmem, image.FileMemfd, image.FileSysVShm, image.FilePipe,
		image.FileFifo:
		return true
	}
	return false
}
