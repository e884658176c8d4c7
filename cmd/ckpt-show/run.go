package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ckpt/ckpt/cmd/internal/cli"
	"github.com/ckpt/ckpt/lib/show"
)

const name = "ckpt-show"

const usage = `Usage: ckpt-show [--json] [-v] [FILE]

Prints what a ckpt record stream or archive holds: a summary (tree, threads,
mappings, fds and files, ghost data and pages), or with --json every record
as one line of JSON. Reads FILE, or stdin when FILE is absent or "-".

Examples:
  ckpt-scan 1234 | ckpt-files | ckpt-show
  ckpt-show app.img
  ckpt-show --json app.img | jq -c 'select(.kind == "fd") | .body'

Options:
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print every record as a line of JSON instead of a summary")
	verbose := fs.Bool("v", false, "say on stderr how much was read and how long it took")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return cli.Usage(err)
	}
	if fs.NArg() > 1 {
		return cli.Usagef("unexpected argument %q: give one FILE, or none for stdin", fs.Arg(1))
	}
	src, err := openInput(fs.Arg(0), stdin)
	if err != nil {
		return err
	}
	defer src.close()
	began := time.Now()
	var got read
	if err := display(ctx, src, *asJSON, stdout, &got); err != nil {
		return fmt.Errorf("%s: %w", src.name, err)
	}
	if *verbose {
		what := "record stream"
		if got.archive {
			what = "archive"
		}
		fmt.Fprintf(stderr, "%s: %s: %s of %d records, %.1f MiB of stream, read in %v\n", name,
			src.name, what, got.records, float64(got.bytes)/(1<<20),
			time.Since(began).Round(time.Millisecond))
	}
	return nil
}

// read is what display read, for -v.
type read struct {
	records int
	bytes   int64
	archive bool
}

// display reads the input and prints it, a summary or JSON lines.
func display(ctx context.Context, src *input, asJSON bool, stdout io.Writer, got *read) error {
	in, err := show.Open(src.r)
	if err != nil {
		return err
	}
	defer in.Close()
	defer func() {
		if e := in.End(); e != nil {
			got.records = e.Records + 1 // the end record too
		}
		got.bytes, got.archive = in.StreamBytes(), in.IsArchive()
	}()
	if asJSON {
		bw := bufio.NewWriter(stdout)
		err := show.WriteJSON(ctx, bw, in)
		if err == nil {
			err = src.checkEnd(in)
		}
		src.close() // the end record was read: nothing upstream waits for us now
		return errors.Join(err, bw.Flush())
	}
	sum, err := show.Collect(ctx, in)
	if err == nil {
		err = src.checkEnd(in)
	}
	src.close()
	if err != nil {
		return err
	}
	return sum.Write(stdout)
}

// input is what ckpt-show reads: a file, or stdin.
type input struct {
	name   string
	r      io.Reader
	closer io.Closer // nil once closed, or when there is nothing to close
}

// openInput opens path, or takes stdin when path is "" or "-".
func openInput(path string, stdin io.Reader) (*input, error) {
	if path != "" && path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		return &input{name: path, r: f, closer: f}, nil
	}
	if cli.IsTerminal(stdin) {
		return nil, errors.New("stdin is a terminal: give a FILE, or pipe a stream or archive in")
	}
	in := &input{name: "stdin", r: stdin}
	in.closer, _ = stdin.(io.Closer)
	return in, nil
}

// close closes the input once. Closing stdin as soon as the end record was
// read tells the stage before us that we are done (docs/FORMAT.md,
// "Holding the tree").
func (in *input) close() {
	if in.closer != nil {
		in.closer.Close()
		in.closer = nil
	}
}

// checkEnd refuses bytes after the end record of a record stream read
// from a regular file. From a pipe it cannot look: the stage writing it
// waits for us to close it.
func (in *input) checkEnd(r *show.Input) error {
	f, ok := in.r.(*os.File)
	if !ok || r.IsArchive() { // the archive reader checks its own end
		return nil
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	if n := r.StreamBytes(); st.Size() > n {
		return fmt.Errorf("data after the end record, from byte %d to %d", n, st.Size())
	}
	return nil
}
