// Command ckpt-restore rebuilds a checkpointed process from an archive
// written by ckpt-pack and lets it run on, with its PID, memory,
// registers, open files and signal state.
//
// Synopsis:
//
//	ckpt-restore [options] [IMG]
//
// It reads the archive from IMG, or from stdin when IMG is absent or "-",
// and returns once the process runs again; the process is adopted by init
// and keeps running after ckpt-restore exits. It prints nothing unless
// asked (-v), it waits (for a zombie that holds a saved PID) or something
// fails; on failure nothing it created is left.
//
// Options:
//
//	-v                say what was restored and how long it took
//	--accept-changed  use linked files whose size or mtime changed since the dump
//	--pid-wait D      how long to wait for a zombie holding a saved PID (default 10s)
//	--pidns           restore into a new PID namespace, beside the original
//	--accept-unfrozen restore an image whose memory was read while nothing held the tree
package main

import (
	"context"
	"os"

	"github.com/ckpt/ckpt/cmd/internal/cli"
	"github.com/ckpt/ckpt/lib/restore"
)

func main() {
	if os.Args[0] == restore.NSInitName {
		restore.NSInit() // the init of a namespace made by --pidns
	}
	cli.Exit("ckpt-restore", run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
