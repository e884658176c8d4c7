package image

// Pipe kinds of File, resolved by ckpt-files from an fd whose inode is a
// FIFO (S_IFIFO). One File stands for one pipe, however many fds of
// however many tasks hold its ends; each fd's Flags say which end it is
// (O_RDONLY the read end, O_WRONLY the write end, O_RDWR both) and how it
// was opened (O_NONBLOCK, O_CLOEXEC).
//
// Size is the number of bytes in flight when the pipe was dumped (FIONREAD,
// read without consuming them), PipeSize the pipe's buffer size
// (F_GETPIPE_SZ), and UID and GID the owner of an anonymous pipe's inode.
// The bytes in flight follow the File record as ghost-data records with
// its ID, in order and without gaps: offsets 0, then each record's offset
// plus its length, up to Size; no record when the pipe was empty.
//
// Restore makes one pipe per File, gives it PipeSize, writes the bytes in
// flight into it and holds both its ends until every fd of every task is
// open; each fd is a new open of the pipe with its saved flags. An end
// that no task held is closed once restore lets go of it, as it was when
// dumped: a reader sees end of file after the data, a writer EPIPE.
const (
	// FilePipe is an anonymous pipe (pipe(2)); Path is the kernel's name
	// for it, "pipe:[INO]", and Dev and Ino those of its pipefs inode.
	FilePipe = "pipe"
	// FileFifo is a named pipe (mkfifo(3)) reached at Path; Dev and Ino are
	// those of the FIFO's inode on its filesystem.
	FileFifo = "fifo"
)
