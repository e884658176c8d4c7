package image

// FileShmem is a shared anonymous memory object: the shmem file behind
// MAP_SHARED|MAP_ANONYMOUS mappings (maps shows "/dev/zero (deleted)" or
// "[anon_shmem:NAME]"), one File per shmem inode however many mappings
// and tasks share it. Size is the object's size; Path is the kernel's
// name for it, "/dev/zero". Its contents follow as ghost-data records,
// data extents only, all-zero pages left out, so pages never touched
// cost nothing. Restore makes one object, fills it, and maps it for
// every Vma whose FileID names it, so they share it again.
const FileShmem = "shmem"

// FileMemfd is a memfd (memfd_create): a file of the kernel's internal
// shmem mount, which the kernel names "/memfd:NAME (deleted)". Path is
// "/memfd:NAME", Size its size, Mode, UID and GID its mode and owner,
// Seals its seals. Its contents follow as ghost-data records, as for
// FileShmem. Restore makes one memfd named NAME, fills it, opens it for
// every fd and mapping that used it, and adds the seals last.
const FileMemfd = "memfd"

// FileSysVShm is a System V shared memory segment attached by a dumped
// task: a file of the kernel's shmem mount named "/SYSV%08x (deleted)"
// (the key the segment was made with), whose inode number is the shmid.
// Path is "/SYSV%08x", Size the segment's size, SysV its identity. Its
// contents follow as ghost-data records, as for FileShmem. Restore makes
// the segment again with the same key and shmid (or takes the same one,
// still there and attached by no one), fills it, attaches it in every
// task that had it, at its address, and marks it for removal again if it
// was.
const FileSysVShm = "sysv-shm"

// SysVShm is the identity of a System V shared memory segment, from
// shmctl IPC_STAT.
type SysVShm struct {
	ID  int   `msgpack:"id"`  // shmid
	Key int32 `msgpack:"key"` // IPC key; 0 (IPC_PRIVATE) once marked for removal
	// Mode holds the permission bits (0777) of shm_perm.mode.
	Mode uint32 `msgpack:"mode"`
	UID  uint32 `msgpack:"uid"` // owner
	GID  uint32 `msgpack:"gid"`
	CUID uint32 `msgpack:"cuid"` // creator; not restored
	CGID uint32 `msgpack:"cgid"`
	// Removed is true when the segment was marked for removal (IPC_RMID,
	// SHM_DEST): it dies when its last task detaches.
	Removed bool `msgpack:"removed,omitempty"`
	// Locked is true when the segment was locked in memory (SHM_LOCK).
	Locked bool `msgpack:"locked,omitempty"`
	// Attached is the attach count (shm_nattch) at dump, every process
	// inside and outside the dumped tree and every mapping counted.
	Attached int `msgpack:"attached"`
}
