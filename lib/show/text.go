package show

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/ckpt/ckpt/lib/image"
)

// Write writes the summary for people: the header, the process tree, the
// files, each task (threads, mappings, fds, pages), the totals and any
// warnings.
func (s *Summary) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := &printer{w: bw, s: s}
	p.header()
	p.tree()
	p.files()
	for _, t := range s.sortedTasks() {
		p.task(t)
	}
	p.totals()
	p.warnings()
	return bw.Flush()
}

// printer writes the sections of a summary.
type printer struct {
	w io.Writer
	s *Summary
}

func (p *printer) printf(format string, args ...any) { fmt.Fprintf(p.w, format, args...) }

// table returns a tabwriter for aligned columns; flush it at the end of
// the table.
func (p *printer) table() *tabwriter.Writer {
	return tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
}

// row writes one row of a table, leaving out empty cells at its end so
// that no line ends in blanks.
func row(tw *tabwriter.Writer, cells ...string) {
	for len(cells) > 1 && cells[len(cells)-1] == "" {
		cells = cells[:len(cells)-1]
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

func (p *printer) header() {
	h := p.s.Header
	p.printf("stream    version %d, %s, page size %d, kernel %s\n",
		h.Version, h.Arch, h.PageSize, h.Kernel)
	p.printf("stages    %s\n", strings.Join(h.Stages, " "))
	p.printf("root pid  %d\n", h.RootPID)
	if h.Control != "" {
		kill := ""
		if h.Kill {
			kill = " (kill: the tree is killed once the archive is complete)"
		}
		p.printf("control   %s%s\n", h.Control, kill)
	}
	if a := p.s.Archive; a != nil {
		p.printf("archive   %s of stream in %s, %s (%d zstd)\n",
			Size(a.RawBytes), Size(a.Size), plural(a.Frames, "frame"), a.Compressed)
	}
}

// tree writes the processes indented under their parents.
func (p *printer) tree() {
	byParent := map[int][]*Task{}
	var roots []*Task
	for _, t := range p.s.sortedTasks() {
		if t.Task == nil {
			continue
		}
		if parent := p.s.tasks[t.Task.PPID]; parent != nil && parent.Task != nil &&
			t.Task.PPID != t.PID {
			byParent[t.Task.PPID] = append(byParent[t.Task.PPID], t)
		} else {
			roots = append(roots, t)
		}
	}
	p.printf("\ntree\n")
	seen := map[int]bool{}
	var walk func(t *Task, depth int)
	walk = func(t *Task, depth int) {
		seen[t.PID] = true
		p.printf("%s%d %s%s\n", strings.Repeat("  ", depth+1), t.PID, t.Task.Comm,
			zombieNote(t.Task))
		for _, c := range byParent[t.PID] {
			if !seen[c.PID] {
				walk(c, depth+1)
			}
		}
	}
	for _, t := range roots {
		walk(t, 0)
	}
	for _, t := range p.s.sortedTasks() { // parents in a loop: corrupt, but shown
		if t.Task != nil && !seen[t.PID] {
			walk(t, 0)
		}
	}
}

func (p *printer) files() {
	p.printf("\nfiles %d\n", len(p.s.Files))
	tw := p.table()
	for _, f := range p.s.Files {
		row(tw, "  "+fmt.Sprint(f.ID), f.Kind, f.Path, fileDetails(f))
	}
	tw.Flush()
}

// fileDetails says what else matters about a file: its size, device
// number, ghost data, hidden link, owner.
func fileDetails(f *File) string {
	var d []string
	if f.Size > 0 || f.Kind == image.FileGhost {
		d = append(d, "size "+Size(f.Size))
	}
	if f.Rdev != 0 {
		d = append(d, fmt.Sprintf("device %d:%d", major(f.Rdev), minor(f.Rdev)))
	}
	if f.GhostRecords > 0 || f.Kind == image.FileGhost {
		d = append(d, fmt.Sprintf("ghost data %s in %s", Size(f.GhostBytes),
			plural(f.GhostRecords, "record")))
	}
	if f.RemapPath != "" {
		d = append(d, "hidden link "+f.RemapPath)
	}
	if f.UID != 0 || f.GID != 0 {
		d = append(d, fmt.Sprintf("owner %d:%d", f.UID, f.GID))
	}
	d = append(d, anonDetails(&f.File)...)
	if f.Seals != 0 {
		d = append(d, fmt.Sprintf("seals %#x", f.Seals))
	}
	if seg := f.SysV; seg != nil {
		d = append(d, fmt.Sprintf("shmid %d key %#x mode %o owner %d:%d attached %d",
			seg.ID, uint32(seg.Key), seg.Mode, seg.UID, seg.GID, seg.Attached))
		if seg.Removed {
			d = append(d, "marked for removal")
		}
	}
	return strings.Join(d, ", ")
}

func (p *printer) task(t *Task) {
	if t.Task == nil {
		p.printf("\npid %d: no task record\n", t.PID)
	} else {
		p.taskRecord(t.Task)
	}
	p.fds(t)
	p.printf("  pages     %s, %s in %s\n", plural(int(t.PageBytes/p.pageSize()), "page"),
		Size(t.PageBytes), plural(t.PageRecords, "record"))
}

func (p *printer) pageSize() int64 { return int64(max(p.s.Header.PageSize, 1)) }

// zombieNote says " (zombie, exit code N)" or " (zombie, killed by
// signal N)" for a zombie, nothing for a live process.
func zombieNote(task *image.Task) string {
	switch {
	case !task.Zombie:
		return ""
	case task.ExitStatus&0x7f != 0:
		return fmt.Sprintf(" (zombie, killed by signal %d)", task.ExitStatus&0x7f)
	}
	return fmt.Sprintf(" (zombie, exit code %d)", task.ExitStatus>>8&0xff)
}

func (p *printer) taskRecord(task *image.Task) {
	p.printf("\ntask %d %s%s\n", task.PID, task.Comm, zombieNote(task))
	p.printf("  ids       ppid %d, pgid %d, sid %d, start time %d\n",
		task.PPID, task.PGID, task.SID, task.StartTime)
	if task.Zombie {
		return
	}
	p.printf("  exe       %s%s\n", task.Exe, p.fileRef(task.ExeFileID))
	p.printf("  cwd       %s, root %s\n", task.Cwd, task.Root)
	p.printf("  threads   %d\n", len(task.Threads))
	for _, th := range task.Threads {
		p.printf("    tid %d  %s\n", th.TID, ThreadState(p.s.Header.Arch, th.Regs))
	}
	var total uint64
	for _, v := range task.Vmas {
		total += v.End - v.Start
	}
	p.printf("  mappings  %d, %s\n", len(task.Vmas), Size(int64(total)))
	tw := p.table()
	for _, v := range task.Vmas {
		row(tw, fmt.Sprintf("    %012x-%012x", v.Start, v.End), Size(int64(v.End-v.Start)),
			prot(v), v.Kind, fileCol(v.FileID), vmaName(v))
	}
	tw.Flush()
}

// fileRef says which file a reference names, and how it was resolved.
func (p *printer) fileRef(id int) string {
	if id == 0 {
		return ""
	}
	f := p.s.files[id]
	if f == nil {
		return fmt.Sprintf(" (file %d: no file record)", id)
	}
	return fmt.Sprintf(" (file %d: %s %s)", id, f.Kind, f.Path)
}

func prot(v image.Vma) string {
	b := []byte("---p")
	for i, c := range "rwx" {
		if v.Prot&(1<<i) != 0 {
			b[i] = byte(c)
		}
	}
	if v.Shared {
		b[3] = 's'
	}
	return string(b)
}

func fileCol(id int) string {
	if id == 0 {
		return "-"
	}
	return fmt.Sprintf("file %d", id)
}

func vmaName(v image.Vma) string {
	if v.Kind == image.VmaFile && v.Pgoff != 0 {
		return fmt.Sprintf("%s +%#x", v.Name, v.Pgoff)
	}
	return v.Name
}

func (p *printer) fds(t *Task) {
	p.printf("  fds       %d\n", len(t.Fds))
	tw := p.table()
	for _, fd := range t.Fds {
		res := "not resolved"
		if fd.FileID != 0 {
			res = strings.TrimSuffix(strings.TrimPrefix(p.fileRef(fd.FileID), " ("), ")")
		}
		if fd.Shared || fd.Shares != 0 {
			res += fmt.Sprintf(", shares fd %d", fd.Shares)
		}
		row(tw, "    "+fmt.Sprint(fd.Fd), openFlags(fd.Flags), fmt.Sprintf("pos %d", fd.Pos),
			fd.Link, "-> "+res)
	}
	tw.Flush()
}

// openFlags writes the access mode and the flags that matter of an fd's
// open flags (Linux generic values).
func openFlags(f int) string {
	s := [...]string{"r", "w", "rw", "?"}[f&3]
	for _, fl := range []struct {
		bit  int
		name string
	}{{0o2000, "append"}, {0o4000, "nonblock"}, {0o2000000, "cloexec"}} {
		if f&fl.bit != 0 {
			s += "," + fl.name
		}
	}
	return s
}

func (p *printer) totals() {
	s := p.s
	var tasks, threads, vmas, fds int
	var mapped int64
	for _, t := range s.Tasks {
		fds += len(t.Fds)
		if t.Task == nil {
			continue
		}
		tasks++
		threads += len(t.Task.Threads)
		vmas += len(t.Task.Vmas)
		for _, v := range t.Task.Vmas {
			mapped += int64(v.End - v.Start)
		}
	}
	p.printf("\ntotals\n")
	p.printf("  tasks       %d, %s, %s (%s), %s\n", tasks, plural(threads, "thread"),
		plural(vmas, "mapping"), Size(mapped), plural(fds, "fd"))
	p.printf("  files       %d%s\n", len(s.Files), fileKinds(s.Files))
	p.printf("  ghost data  %s in %s\n", Size(s.GhostBytes), plural(s.GhostRecords, "record"))
	p.printf("  pages       %d, %s in %s\n", s.PageBytes/p.pageSize(), Size(s.PageBytes),
		plural(s.PageRecords, "record"))
	if len(s.Other) > 0 {
		p.printf("  other       %s\n", countList(s.Other))
	}
	if s.End == nil {
		p.printf("  stream      %s, no end record\n", Size(s.StreamBytes))
		return
	}
	p.printf("  stream      %s, %d records: %s\n", Size(s.StreamBytes), s.End.Records+1,
		countList(withEnd(s.End.Kinds)))
}

// fileKinds counts files by kind: ": linked 2, ghost 1".
func fileKinds(files []*File) string {
	if len(files) == 0 {
		return ""
	}
	m := map[string]int{}
	for _, f := range files {
		m[f.Kind]++
	}
	return ": " + countList(m)
}

func withEnd(kinds map[string]int) map[string]int {
	m := maps.Clone(kinds)
	if m == nil {
		m = map[string]int{}
	}
	m[image.KindEnd]++
	return m
}

// countList writes counts by name, the known record kinds first in stream
// order, then the others by name.
func countList(m map[string]int) string {
	known := []string{image.KindHeader, image.KindFile, image.KindGhostData, image.KindTask,
		image.KindPages, image.KindFd, image.FileLinked, image.FileDevice, image.FileGhost,
		image.FileRemap}
	rank := func(k string) int {
		if i := slices.Index(known, k); i >= 0 {
			return i
		}
		if k == image.KindEnd {
			return len(known) + 1
		}
		return len(known)
	}
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func (p *printer) warnings() {
	s := p.s
	if len(s.Warnings) == 0 {
		return
	}
	p.printf("\nwarnings\n")
	for _, w := range s.Warnings {
		p.printf("  %s\n", w)
	}
	if s.MoreWarnings > 0 {
		p.printf("  ... and %d more\n", s.MoreWarnings)
	}
}

// sortedTasks returns the tasks by PID.
func (s *Summary) sortedTasks() []*Task {
	return slices.SortedFunc(slices.Values(s.Tasks), func(a, b *Task) int { return a.PID - b.PID })
}

// Size writes a byte count for people: "512 B", "4.0 KiB", "1.5 MiB".
func Size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= unit
		if f < unit || u == "TiB" {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return ""
}

// plural writes "1 record", "2 records".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// major and minor split a Linux device number.
func major(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^0xfff }
func minor(dev uint64) uint64 { return dev&0xff | (dev>>12)&^0xff }
