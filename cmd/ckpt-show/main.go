// Command ckpt-show prints what a ckpt record stream or archive holds, so
// that people can look at what each stage produced and scripts can query
// it. It reads only its input, never the live processes it describes.
//
// Synopsis:
//
//	ckpt-show [--json] [-v] [FILE]
//	ckpt-scan PID | ckpt-files | ckpt-show
//
// It reads FILE, or stdin when FILE is absent or "-". The input is an
// archive if it starts with the archive magic ("CKPTIMG\0"), a record
// stream otherwise (docs/FORMAT.md). By default it prints a summary: the
// header, the process tree, the files and how each was resolved, each
// task's threads (and the system call each was stopped in), mappings, fds
// and pages, and the totals. With --json it prints every record, header and
// end included, as one line of JSON, {"record", "offset", "kind", "body"},
// the body decoded as a generic msgpack map; the data of pages and
// ghost-data records is replaced by its length and CRC-32C.
//
// ckpt-show reads the stream up to its end record and no further, then
// closes stdin, so the stages before it can let the tree go. A truncated
// or corrupt input makes it exit 1 with a message naming the record and
// byte offset, or the archive part, where the problem was found; with
// --json the records before the problem are printed first.
//
// Options:
//
//	--json  every record as a line of JSON, instead of the summary
//	-v      say on stderr what was read and how long it took
//
// See docs/ckpt-show.md.
package main

import (
	"context"
	"os"

	"github.com/ckpt/ckpt/cmd/internal/cli"
)

func main() {
	cli.Exit("ckpt-show", run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
