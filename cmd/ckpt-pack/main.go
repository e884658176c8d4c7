// ckpt-pack writes a ckpt record stream as one compressed archive, with an
// index of where each task's records lie and checksums of every frame and
// of the whole, or checks such an archive.
//
// Synopsis:
//
//	ckpt-pack [-v] [-o FILE] < STREAM > IMG
//	ckpt-pack --verify IMG
//
// It reads the record stream on stdin up to its end record, adds itself to
// the header's stages, and writes the archive to stdout or FILE (written
// beside FILE under a temporary name, synced, then renamed, so FILE is
// never a partial archive; mode 0600). As soon as it has read the end
// record it closes stdin, so the stages before it can let the tree go. If
// the header names a control socket (ckpt-scan --kill), it connects when
// it reads the header and reports "complete" only once the archive is
// written and synced; on any failure it closes the connection without a
// report, and ckpt-scan lets the tree run on. See docs/FORMAT.md and
// docs/ckpt-pack.md.
//
// Options:
//
//	-o FILE      write the archive to FILE instead of stdout
//	-v           say what was done on stderr
//	--verify IMG  check IMG (frames, record stream, index, whole checksum),
//	             print a summary on stderr, and exit 0 if it is sound
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ckpt/ckpt/cmd/internal/cli"
)

func main() {
	signal.Ignore(syscall.SIGPIPE) // a reader gone is an EPIPE error, not a silent death
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	cli.Exit("ckpt-pack", err)
}
