package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ckpt/ckpt/cmd/internal/cli"
	"github.com/ckpt/ckpt/lib/archive"
	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/stage"
	"github.com/ckpt/ckpt/lib/stream"
)

const name = "ckpt-pack"

const usage = `Usage: ckpt-pack [-v] [-o FILE] < STREAM > IMG
       ckpt-pack --verify IMG

Writes the ckpt record stream read on stdin as one compressed archive, with
an index and checksums, to stdout or FILE; or checks an archive.

Example:
  ckpt-scan 1234 | ckpt-files | ckpt-mem | ckpt-pack -v -o app.img
  ckpt-pack --verify app.img

Options:
`

type options struct {
	out     string
	verify  string
	verbose bool
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.out, "o", "", "write the archive to `FILE` instead of stdout")
	fs.StringVar(&o.verify, "verify", "", "check the archive `IMG` and print a summary")
	fs.BoolVar(&o.verbose, "v", false, "say what was done on stderr")
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
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected argument %q (the stream comes on stdin)", fs.Arg(0))
	}
	if o.verify != "" {
		return verify(o.verify, stdin, stderr)
	}
	return pack(ctx, o, stdin, stdout, stderr)
}

// pack reads the stream on stdin and writes the archive.
func pack(ctx context.Context, o options, stdin io.Reader, stdout, stderr io.Writer) error {
	began := time.Now()
	if cli.IsTerminal(stdin) {
		return errors.New("stdin is a terminal: pipe a record stream into ckpt-pack")
	}
	if o.out == "" && cli.IsTerminal(stdout) {
		return errors.New("stdout is a terminal: redirect it to a file, or use -o FILE")
	}
	stage.EnlargePipe(stdin)
	in, h, err := readHeader(ctx, stdin)
	if err != nil {
		return err
	}
	h.Stages = append(h.Stages, name)
	ctl, err := stage.Dial(h.Control, name)
	if err != nil {
		return err
	}
	defer ctl.Close() // before Complete, this tells ckpt-scan the dump failed
	out, err := openOutput(o.out, stdout)
	if err != nil {
		return err
	}
	defer out.abort()

	aw := archive.NewWriter(out.w)
	if err := copyStream(aw, h, in); err != nil {
		aw.Close()
		return err
	}
	if c, ok := stdin.(io.Closer); ok {
		c.Close() // the end record is read: nothing upstream waits for us now
	}
	if err := aw.Close(); err != nil {
		return err
	}
	if err := out.commit(); err != nil {
		return err
	}
	if o.verbose {
		report(stderr, o.out, aw.Summary(), time.Since(began))
	}
	answer, err := ctl.Complete()
	if err != nil {
		return fmt.Errorf("archive written, but %w", err)
	}
	if o.verbose && ctl != nil {
		fmt.Fprintf(stderr, "%s: ckpt-scan answered: ok %s\n", name, answer)
	}
	return nil
}

// readHeader reads the stream's header from stdin, and returns a reader
// of the records after it. It refuses an archive where a stream is
// expected.
func readHeader(ctx context.Context, stdin io.Reader) (io.Reader, *image.Header, error) {
	first := make([]byte, len(archive.Magic))
	n, err := io.ReadFull(stdin, first)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, nil, fmt.Errorf("read stdin: %w", err)
	}
	if bytes.Equal(first[:n], []byte(archive.Magic)) {
		return nil, nil, errors.New("stdin at byte 0: already a ckpt archive, not a record stream " +
			"(ckpt-pack --verify checks one)")
	}
	in := &ctxReader{ctx, io.MultiReader(bytes.NewReader(first[:n]), stdin)}
	h, err := stream.NewReader(byteReader{in}).Header()
	if err != nil {
		return nil, nil, err
	}
	return in, h, nil
}

// byteReader hands out one byte per Read. A stream.Reader reads through a
// bufio.Reader, which asks its source for bytes only when it needs them;
// over a byteReader it takes exactly the header record and no more, and
// the records after it can be passed on without being decoded.
type byteReader struct{ r io.Reader }

func (b byteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return b.r.Read(p[:1])
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, fmt.Errorf("stopped: %w", context.Cause(c.ctx))
	}
	return c.r.Read(p)
}

// copyStream writes the header h, then the records in "in" untouched, up
// to and including the end record, to the archive. The archive writer
// follows their framing and checks the end record's count.
func copyStream(aw *archive.Writer, h *image.Header, in io.Reader) error {
	sw := stream.NewWriter(aw)
	if err := sw.WriteHeader(h); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	if err := sw.Flush(); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	_, err := aw.ReadFrom(in)
	return err
}

// report says what pack did.
func report(w io.Writer, path string, s archive.Summary, took time.Duration) {
	if path == "" {
		path = "stdout"
	}
	fmt.Fprintf(w, "%s: %d records (%s), %d tasks\n", name, s.Records, kinds(s.Kinds), s.Tasks)
	fmt.Fprintf(w, "%s: %s of stream -> %s in %s, %d frames (%d compressed), %.2f s\n",
		name, mib(s.RawBytes), mib(s.Size), path, s.Frames, s.Compressed, took.Seconds())
}

// verify checks the archive at path ("-" for stdin) and prints a summary.
func verify(path string, stdin io.Reader, stderr io.Writer) error {
	in := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	s, err := archive.Verify(in)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(stderr, "%s: ok: %d records (%s), %d tasks, %d frames (%d compressed)\n",
		path, s.Records, kinds(s.Kinds), s.Tasks, s.Frames, s.Compressed)
	fmt.Fprintf(stderr, "%s: %s of stream in %s (%.1f:1); root pid %d; stages %s\n",
		path, mib(s.RawBytes), mib(s.Size), float64(s.RawBytes)/float64(max(s.Size, 1)),
		s.Header.RootPID, strings.Join(s.Header.Stages, " "))
	return nil
}

// kinds lists record counts by kind, in stream order for the known ones.
func kinds(m map[string]int) string {
	order := []string{"header", "task", "fd", "file", "pages", "end"}
	var parts []string
	seen := map[string]bool{}
	for _, k := range order {
		if n, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
			seen[k] = true
		}
	}
	var rest []string
	for k, n := range m {
		if !seen[k] {
			rest = append(rest, fmt.Sprintf("%s %d", k, n))
		}
	}
	slices.Sort(rest)
	return strings.Join(append(parts, rest...), ", ")
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
