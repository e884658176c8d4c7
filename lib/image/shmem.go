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
