// Command ckpt-mem dumps the memory of the tasks in a ckpt record stream.
//
// Synopsis:
//
//	ckpt-scan PID | ckpt-files | ckpt-mem [-v] | ckpt-pack > img
//
// ckpt-mem reads a record stream on stdin and writes it to stdout with
// every record passed on untouched; after each task record it adds that
// task's pages records: the pages that matter of its private mappings,
// read from the live process as it is now, in runs of at most 1 MiB, with
// all-zero anonymous pages left out. Upstream, ckpt-scan holds the tree
// frozen while ckpt-mem reads it; ckpt-mem closes its input only once its
// own reader is gone (see docs/FORMAT.md, "Holding the tree").
//
// Run alone on a saved stream (ckpt-mem < scan.stream) it reads the
// processes as they are now, and refuses one whose PID now belongs to
// another process. Shared anonymous memory is not supported yet: a task
// with such a mapping fails the dump. See docs/ckpt-mem.md.
//
// Options:
//
//	-v    say, for each task, how many pages and bytes were dumped and how long it took
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ckpt/ckpt/cmd/internal/cli"
	"github.com/ckpt/ckpt/cmd/internal/progress"
	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/pages"
	"github.com/ckpt/ckpt/lib/stage"
)

func main() {
	cli.Exit("ckpt-mem", run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ckpt-mem", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "report pages, bytes and time for each task on stderr")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: ckpt-mem [-v] < stream > stream\n\n"+
			"Adds the pages of every task in the stream, read from the live process.\n\n"+
			"Example:\n\tckpt-scan 1234 | ckpt-files | ckpt-mem -v | ckpt-pack > app.ckpt\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return cli.Usage(err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return cli.Usagef("unexpected arguments %q", fs.Args())
	}

	// Nothing holds the tree (ckpt-scan wrote to a file): say so in the
	// stream, for restore.
	unheld := func(h *image.Header) { h.Unfrozen = h.HolderPID == 0 }
	if err := cli.StreamIn(stdin, "pipe a record stream in (... | ckpt-mem)"); err != nil {
		return err
	}
	st, err := stage.Open("ckpt-mem", stdin, stdout, unheld)
	if err != nil {
		return err
	}
	if err := st.CheckLocal(); err != nil {
		return err
	}
	// On a terminal, a long dump shows how far it has come.
	meter := progress.Start(stderr, "ckpt-mem", "of memory dumped")
	defer meter.Stop()
	d := &dumper{hdr: st.Header, out: st.Out, pages: pages.NewDumper(0), meter: meter}
	if *verbose {
		d.log = meter
	}
	start := time.Now()
	for {
		rec, err := st.In.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := st.Out.WriteRecord(rec); err != nil {
			return fmt.Errorf("write %s record: %w", rec.Kind, err)
		}
		if rec.Kind == image.KindTask {
			if err := d.dumpTask(rec); err != nil {
				return err
			}
		}
	}
	meter.Stop()
	d.summary(time.Since(start))
	if st.Header.Unfrozen && d.tasks > 0 {
		fmt.Fprintln(stderr, "ckpt-mem: warning: nothing held the tree frozen (ckpt-scan "+
			"wrote to a file): its memory was read as it is now, not as it was scanned; "+
			"ckpt-restore refuses the image unless given --accept-unfrozen")
	}
	return st.Finish()
}
