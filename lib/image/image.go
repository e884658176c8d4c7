// Package image defines the records that flow between the ckpt tools: the
// body of every record kind, as encoded with msgpack. It is the contract
// between stages; docs/FORMAT.md describes the same types for people.
//
// The package has no dependencies beyond the standard library, so a tool
// that only inspects a stream needs nothing else.
package image

// Record kinds. A stage passes any kind it does not handle through
// untouched.
const (
	KindHeader = "header" // first record: Header
	KindEnd    = "end"    // last record: End
	KindTask   = "task"   // ckpt-scan: one process, Task
	KindFd     = "fd"     // ckpt-scan: one open descriptor, Fd (FileID set by ckpt-files)
	KindFile   = "file"   // ckpt-files: one resolved file object, File
	KindPages  = "pages"  // ckpt-mem: page contents of one task, Pages
	// KindGhostData is a piece of the contents of a ghost, shmem, memfd,
	// sysv-shm, pipe or fifo File, GhostData (ckpt-files). Every one comes
	// after its File record and before any task or fd record.
	KindGhostData = "ghost-data"
)

// Magic identifies a ckpt record stream; Version is the format version the
// tools of this tree write. ReadVersions lists every version they read.
const (
	Magic   = "ckpt-stream"
	Version = 1
)

// ReadVersions lists the stream versions this tree can read.
var ReadVersions = []int{1}

// MaxChunk is the largest payload (pages, file contents) a record carries.
const MaxChunk = 1 << 20

// Header is the body of the first record.
type Header struct {
	Magic    string   `msgpack:"magic"`
	Version  int      `msgpack:"version"`
	Arch     string   `msgpack:"arch"`      // runtime.GOARCH of the dumping machine, e.g. "amd64"
	PageSize int      `msgpack:"page_size"` // bytes
	Kernel   string   `msgpack:"kernel"`    // uname release of the dumping machine
	Stages   []string `msgpack:"stages"`    // every stage that touched the stream, in order
	RootPID  int      `msgpack:"root_pid"`  // the PID given to ckpt-scan
	// Control is the path of ckpt-scan's control socket (see docs/FORMAT.md,
	// "Holding the tree"); empty when no holder waits for a report.
	Control string `msgpack:"control,omitempty"`
	// Kill is true when ckpt-scan will end the tree once a final stage
	// reports a complete archive.
	Kill bool `msgpack:"kill,omitempty"`
	// HolderPID and HolderStart name the ckpt-scan process that holds the
	// tree frozen while the stages read it (PID and start time, as in
	// Task). Zero when nothing holds it (ckpt-scan wrote to a file). A
	// stage that reads the live tree refuses to go on when the holder is
	// gone or no longer traces the tree: what it would read may be torn.
	HolderPID   int    `msgpack:"holder_pid,omitempty"`
	HolderStart uint64 `msgpack:"holder_start,omitempty"`
	// Unfrozen is set by ckpt-mem when nothing held the tree while it
	// read the pages (HolderPID 0: ckpt-scan wrote to a file): the
	// processes ran on since they were scanned, so their pages may not
	// match their registers. Restore refuses such an image unless told
	// to accept it.
	Unfrozen bool `msgpack:"unfrozen,omitempty"`
}

// End is the body of the last record. Records counts every record before
// it, header included; Kinds counts them by kind. A reader checks Records
// against what it read, so a stream that lost records is refused.
type End struct {
	Records int            `msgpack:"records"`
	Kinds   map[string]int `msgpack:"kinds"`
}

// Task is one process (thread group) of the dumped tree.
type Task struct {
	PID       int    `msgpack:"pid"`
	PPID      int    `msgpack:"ppid"`
	PGID      int    `msgpack:"pgid"`
	SID       int    `msgpack:"sid"`
	StartTime uint64 `msgpack:"start_time"` // /proc/PID/stat field 22, clock ticks after boot
	Comm      string `msgpack:"comm"`
	Exe       string `msgpack:"exe"`  // readlink /proc/PID/exe
	Cwd       string `msgpack:"cwd"`  // readlink /proc/PID/cwd
	Root      string `msgpack:"root"` // readlink /proc/PID/root
	Umask     uint32 `msgpack:"umask"`
	// ExeFileID is the File that is the executable, set by ckpt-files.
	ExeFileID   int            `msgpack:"exe_file_id,omitempty"`
	Personality uint32         `msgpack:"personality"`
	Creds       Creds          `msgpack:"creds"`
	Rlimits     []Rlimit       `msgpack:"rlimits"`
	SigActions  []SigAction    `msgpack:"sigactions"` // signals 1..64, index = signal-1
	Threads     []Thread       `msgpack:"threads"`    // Threads[0] is the thread group leader
	MM          MM             `msgpack:"mm"`
	Vmas        []Vma          `msgpack:"vmas"`
	Children    []int          `msgpack:"children,omitempty"`
	Extra       map[string]any `msgpack:"extra,omitempty"` // room for later fields
	// SharedPending are the signals pending for the whole process, each
	// its siginfo_t (SigInfoSize bytes) as PTRACE_PEEKSIGINFO gives it.
	SharedPending [][]byte `msgpack:"shared_pending,omitempty"`
	// ITimers are the armed interval timers (setitimer); unarmed ones are
	// left out.
	ITimers []ITimer `msgpack:"itimers,omitempty"`
	// PosixTimers are the timers of timer_create, in ID order.
	PosixTimers []PosixTimer `msgpack:"posix_timers,omitempty"`
	// Prctl is process-wide state only prctl reads; nil in streams from
	// before it was recorded, where restore leaves what the new process
	// got from the one it was cloned from.
	Prctl *Prctl `msgpack:"prctl,omitempty"`
	// Zombie is true for a process that has exited and that its parent
	// has not reaped yet. Only PID, PPID, PGID, SID, Comm and ExitStatus
	// are set; restore recreates it as a zombie for its parent to reap.
	Zombie bool `msgpack:"zombie,omitempty"`
	// ExitStatus is a zombie's wait status (/proc/PID/stat field 52):
	// exit code << 8, or the signal that killed it.
	ExitStatus int `msgpack:"exit_status,omitempty"`
}

// How a POSIX timer notifies (sigev_notify of struct sigevent).
const (
	SigevSignal   = 0 // SIGEV_SIGNAL: a signal to the process
	SigevNone     = 1 // SIGEV_NONE: nothing
	SigevThread   = 2 // SIGEV_THREAD: glibc's, a signal its helper thread waits for
	SigevThreadID = 4 // SIGEV_THREAD_ID, or'ed with SigevSignal: a signal to thread TID
)

// SigInfoSize is the size of the kernel's siginfo_t.
const SigInfoSize = 128

// ITimer is one interval timer (ITIMER_REAL, ITIMER_VIRTUAL or
// ITIMER_PROF), with the time left and the interval, in microseconds.
type ITimer struct {
	Which    int   `msgpack:"which"`
	Value    int64 `msgpack:"value_us"`
	Interval int64 `msgpack:"interval_us"`
}

// PosixTimer is one timer of timer_create: its ID, clock and how it
// notifies (struct sigevent), from /proc/PID/timers, and its time left and
// interval in nanoseconds, from timer_gettime. A disarmed timer has Value 0.
type PosixTimer struct {
	ID       int    `msgpack:"id"`
	Clock    int    `msgpack:"clock"`
	Notify   int    `msgpack:"notify"`    // SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID
	Signo    int    `msgpack:"signo"`     // sigev_signo
	SigValue uint64 `msgpack:"sig_value"` // sigev_value
	TID      int    `msgpack:"tid"`       // the thread signalled, for SIGEV_THREAD_ID
	Value    int64  `msgpack:"value_ns"`
	Interval int64  `msgpack:"interval_ns"`
}

// Prctl is process-wide state read with prctl in the process.
type Prctl struct {
	// ChildSubreaper: orphans under the process are reparented to it
	// (PR_SET_CHILD_SUBREAPER).
	ChildSubreaper bool `msgpack:"child_subreaper,omitempty"`
	// Dumpable is PR_GET_DUMPABLE: 0 (no core dumps, /proc files owned by
	// root, no ptrace by its own user), 1, or 2 (SUID_DUMP_ROOT, which
	// only a credential change under fs.suid_dumpable=2 gives).
	Dumpable int `msgpack:"dumpable"`
	// THPDisable is PR_GET_THP_DISABLE: 0, 1 (no transparent huge pages),
	// or 3 (none but in madvise(MADV_HUGEPAGE) areas: 1 |
	// PR_THP_DISABLE_EXCEPT_ADVISED, Linux 6.18).
	THPDisable int `msgpack:"thp_disable,omitempty"`
}

// Creds are a task's credentials, from /proc/PID/status.
type Creds struct {
	UID        [4]uint32 `msgpack:"uid"` // real, effective, saved, filesystem
	GID        [4]uint32 `msgpack:"gid"`
	Groups     []uint32  `msgpack:"groups"`
	CapInh     uint64    `msgpack:"cap_inh"`
	CapPrm     uint64    `msgpack:"cap_prm"`
	CapEff     uint64    `msgpack:"cap_eff"`
	CapBnd     uint64    `msgpack:"cap_bnd"`
	CapAmb     uint64    `msgpack:"cap_amb"`
	NoNewPrivs bool      `msgpack:"no_new_privs"`
	Seccomp    int       `msgpack:"seccomp"` // mode from status; restore refuses non-zero
}

// Rlimit is one resource limit (RLIMIT_* number, soft, hard; ^0 = infinity).
type Rlimit struct {
	Resource int    `msgpack:"resource"`
	Cur      uint64 `msgpack:"cur"`
	Max      uint64 `msgpack:"max"`
}

// SigAction is the kernel's struct k_sigaction for one signal.
type SigAction struct {
	Handler  uint64 `msgpack:"handler"` // 0 = SIG_DFL, 1 = SIG_IGN, else an address
	Flags    uint64 `msgpack:"flags"`
	Restorer uint64 `msgpack:"restorer"`
	Mask     uint64 `msgpack:"mask"`
}

// Thread is one thread of a task, frozen.
type Thread struct {
	TID int `msgpack:"tid"`
	// Regs is struct user_regs_struct (x86_64: 27 words) as PTRACE_GETREGS
	// returns it, at the interrupt stop. A thread stopped inside a system
	// call has OrigRax = the call and Rax = a restart code; restore replays
	// it (docs/FORMAT.md).
	Regs   []uint64 `msgpack:"regs"`
	Xstate []byte   `msgpack:"xstate"` // PTRACE_GETREGSET NT_X86_XSTATE
	// SigMask is the blocked set; SigPending the thread's private pending set.
	SigMask       uint64   `msgpack:"sigmask"`
	ClearChildTid uint64   `msgpack:"clear_child_tid"`
	Rseq          Rseq     `msgpack:"rseq"`
	RobustList    uint64   `msgpack:"robust_list"`
	RobustLen     uint64   `msgpack:"robust_len"`
	AltStack      AltStack `msgpack:"altstack"`
	// Comm is the thread's own name (/proc/PID/task/TID/comm, set with
	// prctl PR_SET_NAME or pthread_setname_np); empty in streams from
	// before it was recorded, where restore gives the task's Comm.
	Comm string `msgpack:"comm,omitempty"`
	// Pending are the signals pending for this thread alone, each its
	// siginfo_t (SigInfoSize bytes), oldest first.
	Pending [][]byte `msgpack:"pending,omitempty"`
	// CPUs is the thread's CPU affinity (sched_getaffinity): bit n of
	// word n/64 set when it may run on CPU n, trailing zero words left
	// out. Empty in streams from before it was recorded, where restore
	// gives the restorer's own.
	CPUs []uint64 `msgpack:"cpus,omitempty"`
	// PDeathSig is the signal the thread gets when its parent dies
	// (PR_SET_PDEATHSIG); 0 for none.
	PDeathSig int `msgpack:"pdeathsig,omitempty"`
	// TimerSlack is the thread's timer slack in nanoseconds
	// (PR_GET_TIMERSLACK); 0 in streams from before it was recorded.
	TimerSlack uint64 `msgpack:"timer_slack_ns,omitempty"`
	// Sched is the thread's scheduling (sched_getattr) and I/O priority
	// (ioprio_get); nil in streams from before it was recorded, where
	// restore leaves the restorer's.
	Sched *Sched `msgpack:"sched,omitempty"`
}

// Sched is how a thread is scheduled: struct sched_attr's policy (with
// SCHED_RESET_ON_FORK in Flags), nice, real-time priority, deadline
// parameters and utilization clamps, and its I/O priority (class << 13 |
// data, 0 = none).
type Sched struct {
	Policy   uint32 `msgpack:"policy"`
	Flags    uint64 `msgpack:"flags,omitempty"`
	Nice     int32  `msgpack:"nice"`
	Priority uint32 `msgpack:"priority,omitempty"`
	Runtime  uint64 `msgpack:"runtime,omitempty"`
	Deadline uint64 `msgpack:"deadline,omitempty"`
	Period   uint64 `msgpack:"period,omitempty"`
	UtilMin  uint32 `msgpack:"util_min,omitempty"`
	UtilMax  uint32 `msgpack:"util_max,omitempty"`
	IOPrio   int    `msgpack:"ioprio,omitempty"`
}

// Rseq is a thread's restartable-sequences registration (zero Addr: none).
type Rseq struct {
	Addr uint64 `msgpack:"addr"`
	Len  uint32 `msgpack:"len"`
	Sig  uint32 `msgpack:"sig"`
}

// AltStack is a thread's sigaltstack (stack_t).
type AltStack struct {
	SP    uint64 `msgpack:"sp"`
	Flags int32  `msgpack:"flags"`
	Size  uint64 `msgpack:"size"`
}

// MM holds the fields of the task's memory descriptor that PR_SET_MM_MAP
// restores, and the auxiliary vector.
type MM struct {
	StartCode  uint64   `msgpack:"start_code"`
	EndCode    uint64   `msgpack:"end_code"`
	StartData  uint64   `msgpack:"start_data"`
	EndData    uint64   `msgpack:"end_data"`
	StartBrk   uint64   `msgpack:"start_brk"`
	Brk        uint64   `msgpack:"brk"`
	StartStack uint64   `msgpack:"start_stack"`
	ArgStart   uint64   `msgpack:"arg_start"`
	ArgEnd     uint64   `msgpack:"arg_end"`
	EnvStart   uint64   `msgpack:"env_start"`
	EnvEnd     uint64   `msgpack:"env_end"`
	Auxv       []uint64 `msgpack:"auxv"` // pairs, ending with AT_NULL 0
}

// Vma kinds, from the name column of /proc/PID/maps and the mapping flags.
const (
	VmaAnon       = "anon"        // private or shared anonymous memory (includes [heap], [stack])
	VmaFile       = "file"        // a mapping of a file
	VmaVdso       = "vdso"        // [vdso]: moved, never dumped
	VmaVvar       = "vvar"        // [vvar]: moved, never dumped
	VmaVvarVclock = "vvar_vclock" // [vvar_vclock]: moved, never dumped
	VmaVsyscall   = "vsyscall"    // [vsyscall]: fixed by the kernel, left alone
)

// Vma is one mapping of a task.
type Vma struct {
	Start  uint64 `msgpack:"start"`
	End    uint64 `msgpack:"end"`
	Prot   int    `msgpack:"prot"`   // PROT_READ|PROT_WRITE|PROT_EXEC
	Shared bool   `msgpack:"shared"` // MAP_SHARED (maps column "s")
	Kind   string `msgpack:"kind"`   // one of the Vma* kinds
	Name   string `msgpack:"name"`   // name column of maps: path, [heap], [stack], ...
	Pgoff  uint64 `msgpack:"pgoff"`  // file offset in bytes
	Dev    uint64 `msgpack:"dev"`    // of the mapped file (stat of map_files), 0 for anon
	Ino    uint64 `msgpack:"ino"`
	// Flags are the two-letter VmFlags of smaps (e.g. "gd" grows down,
	// "dc" do not copy, "dd" do not dump).
	Flags []string `msgpack:"flags,omitempty"`
	// FileID is the File behind a file mapping, or the shared memory
	// object (FileShmem) behind a shared anonymous one, set by ckpt-files.
	FileID int `msgpack:"file_id,omitempty"`
}

// Fd is one open descriptor of a task. ckpt-scan fills everything but
// FileID; ckpt-files sets FileID to the File it resolved.
type Fd struct {
	PID   int    `msgpack:"pid"`
	Fd    int    `msgpack:"fd"`
	Flags int    `msgpack:"flags"` // open flags from fdinfo, O_CLOEXEC included
	Pos   int64  `msgpack:"pos"`
	MntID int    `msgpack:"mnt_id"`
	Link  string `msgpack:"link"` // readlink /proc/PID/fd/N, as the kernel says it
	// Identity, from fstat of /proc/PID/fd/N.
	Dev   uint64 `msgpack:"dev"`
	Ino   uint64 `msgpack:"ino"`
	Mode  uint32 `msgpack:"mode"`
	Nlink uint64 `msgpack:"nlink"`
	Size  int64  `msgpack:"size"`
	Rdev  uint64 `msgpack:"rdev"`
	// FileID is the File this fd opens, set by ckpt-files.
	FileID int `msgpack:"file_id,omitempty"`
	// Shares, when non-zero, is the fd number of an earlier fd of the same
	// task that refers to the same open file description (kcmp).
	Shares int `msgpack:"shares,omitempty"`
	// Shared is true when Shares is set. It tells an fd that shares fd 0's
	// open file description (Shares 0, as after dup2 of one /dev/null onto
	// 0, 1 and 2) from one that shares nothing.
	Shared bool `msgpack:"shared,omitempty"`
	// SharesPID, when non-zero, is the task whose fd Shares refers to the
	// same open file description, when that is another task than PID
	// (inherited across fork). That task comes earlier in the stream.
	SharesPID int `msgpack:"shares_pid,omitempty"`
}

// File kinds, as ckpt-files resolves them (see docs/files.md).
const (
	FileLinked = "linked" // a regular file or directory still reachable at Path
	FileDevice = "device" // a character device open by path (/dev/null, /dev/zero)
	// FileGhost is a regular file with no name left (link count 0). Its
	// contents follow as ghost-data records; restore recreates it under
	// Path, opens it for its users and removes the name again.
	FileGhost = "ghost"
	// FileRemap is a regular file whose name Path was removed but which
	// still has another name. ckpt-files made a hidden hard link to it,
	// RemapPath; nothing is copied. Restore opens the file through that
	// link under Path, then removes the link.
	FileRemap = "remap"
	// FileGhostClone is a ghost whose contents ckpt-files kept in a
	// hidden file beside its old name, ClonePath (a FICLONE clone, or a
	// copy_file_range copy), instead of in the stream: no ghost-data
	// records follow. Restore uses ClonePath as it would the ghost's
	// contents, then removes it.
	FileGhostClone = "ghost-clone"
)

// File is one file object, resolved by ckpt-files. Many fds and mappings
// may point at one File by its ID (IDs start at 1).
type File struct {
	ID      int    `msgpack:"id"`
	Kind    string `msgpack:"kind"`
	Path    string `msgpack:"path"`
	Dev     uint64 `msgpack:"dev"`
	Ino     uint64 `msgpack:"ino"`
	Mode    uint32 `msgpack:"mode"`
	Size    int64  `msgpack:"size"`
	MtimeNs int64  `msgpack:"mtime_ns"`
	Rdev    uint64 `msgpack:"rdev"`
	// UID and GID own the file (set for ghosts, which restore recreates).
	UID uint32 `msgpack:"uid,omitempty"`
	GID uint32 `msgpack:"gid,omitempty"`
	// RemapPath is the hidden hard link of a remap File, made at dump in
	// the directory of Path (or its nearest existing parent).
	RemapPath string `msgpack:"remap_path,omitempty"`
	// ClonePath is the hidden file holding a ghost-clone's contents, made
	// at dump in the directory of Path (or its nearest existing parent).
	ClonePath string `msgpack:"clone_path,omitempty"`
	// The state of an anon inode File (anonfd.go), set for its kind only.
	Eventfd  *Eventfd  `msgpack:"eventfd,omitempty"`
	Signalfd *Signalfd `msgpack:"signalfd,omitempty"`
	Timerfd  *Timerfd  `msgpack:"timerfd,omitempty"`
	Epoll    *Epoll    `msgpack:"epoll,omitempty"`
	// PipeSize is the buffer size, in bytes, of a pipe or fifo File
	// (F_GETPIPE_SZ); its Size is the bytes in flight (see FilePipe).
	PipeSize int64 `msgpack:"pipe_size,omitempty"`
	// Seals are a memfd's seals (F_GET_SEALS: F_SEAL_SEAL 1, SHRINK 2,
	// GROW 4, WRITE 8, FUTURE_WRITE 16, EXEC 32); see FileMemfd.
	Seals int `msgpack:"seals,omitempty"`
	// SysV describes a System V shared memory segment (FileSysVShm).
	SysV *SysVShm `msgpack:"sysv,omitempty"`
}

// GhostData is a run of the contents of a ghost File: Data is what the
// file holds at Offset, at most MaxChunk bytes. Only data extents are
// sent (SEEK_DATA, SEEK_HOLE); whatever no record covers, up to the
// File's Size, is a hole and reads as zeros. For a pipe or fifo File the
// records hold the bytes in flight, in order and without gaps (FilePipe).
type GhostData struct {
	FileID int    `msgpack:"file_id"`
	Offset int64  `msgpack:"offset"`
	Data   []byte `msgpack:"data"`
}

// Pages is a run of page contents of one task: Data holds len(Data)/page
// size whole pages starting at Addr. At most MaxChunk bytes; ckpt-mem also
// cuts runs at every 1 MiB-aligned address and at mapping ends. Pages of
// anonymous mappings that read as all zero are not stored (restore leaves
// them as fresh zero pages); in private file mappings they are, since
// there a missing page would read as the file's contents.
type Pages struct {
	PID  int    `msgpack:"pid"`
	Addr uint64 `msgpack:"addr"`
	Data []byte `msgpack:"data"`
}
