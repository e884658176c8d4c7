package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ckpt/ckpt/cmd/internal/cli"
	"github.com/ckpt/ckpt/cmd/internal/progress"
	"github.com/ckpt/ckpt/lib/archive"
	"github.com/ckpt/ckpt/lib/restore"
	"github.com/ckpt/ckpt/lib/stream"
)

const usage = `usage: ckpt-restore [options] [IMG]

Restore the process tree saved in IMG (an archive from ckpt-pack; stdin
when IMG is absent or "-") with its PIDs, and let it run on.

Example:
  ckpt-scan --kill $PID | ckpt-files | ckpt-mem | ckpt-pack > /tmp/p.img
  ckpt-restore /tmp/p.img

  # a copy beside the original, in a new PID namespace:
  ckpt-scan $PID | ckpt-files | ckpt-mem | ckpt-pack > /tmp/p.img
  ckpt-restore --pidns /tmp/p.img

Options:
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ckpt-restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "say what was restored and how long it took")
	accept := fs.Bool("accept-changed", false,
		"use linked files whose size or mtime changed since the dump")
	pidWait := fs.Duration("pid-wait", 10*time.Second,
		"how long to wait for a zombie that holds a saved PID")
	unfrozen := fs.Bool("accept-unfrozen", false, "restore an image whose memory was read "+
		"while nothing held the tree frozen")
	pidns := fs.Bool("pidns", false, "restore into a new PID namespace, where the saved PIDs "+
		"are free even while the original runs")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cli.Usage(err)
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return cli.Usagef("one archive at a time, got %d", fs.NArg())
	}
	in := stdin
	if name := fs.Arg(0); name != "" && name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	} else if err := cli.StreamIn(in, "give an archive: ckpt-restore IMG, or pipe one in"); err != nil {
		return err
	}
	start := time.Now()
	ar, err := archive.NewReader(in)
	if err != nil {
		return err
	}
	// On a terminal, a long restore shows how far it has come.
	meter := progress.Start(stderr, "ckpt-restore", "of the image read")
	defer meter.Stop()
	opt := restore.Options{PIDWait: *pidWait, AcceptChanged: *accept, PIDNS: *pidns,
		AcceptUnfrozen: *unfrozen,
		Note:           func(s string) { fmt.Fprintf(meter, "ckpt-restore: %s\n", s) }}
	sr := stream.NewReader(progress.Reader{R: ar, M: meter})
	sr.Reuse = true
	res, err := restore.Restore(sr, ar.Finish, opt)
	meter.Stop()
	if err != nil {
		return err
	}
	if *verbose {
		fmt.Fprintf(stderr, "ckpt-restore: restored pid %v: %d threads, %d pages (%d MiB), "+
			"%d fds in %v\n", res.PIDs, res.Threads, res.Pages, res.PageBytes>>20, res.Fds,
			time.Since(start).Round(time.Millisecond))
		if res.Helpers != 0 {
			fmt.Fprintf(stderr, "ckpt-restore: %d helper tasks made sessions or groups "+
				"whose leaders were gone, and exited\n", res.Helpers)
		}
		if res.NSInit != 0 {
			fmt.Fprintf(stderr, "ckpt-restore: in a new PID namespace: its init is pid %d "+
				"here, the root pid %d here\n", res.NSInit, res.RootHere)
		}
	}
	return nil
}
