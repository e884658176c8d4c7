// Command ckpt-files resolves every file a dumped task uses: its open
// fds, its file mappings and its executable.
//
// Synopsis:
//
//	ckpt-scan PID | ckpt-files [options] | ckpt-mem | ckpt-pack > IMG
//
// It reads a record stream on stdin and writes it on stdout with one file
// record per distinct file (device and inode) put before the task and fd
// records, which then point at their files. Each file is looked at in the
// live tree, through /proc, while ckpt-scan holds the tree frozen. Run
// alone on a saved stream (ckpt-files < scan.stream) it reads the live
// tree as it is now, and refuses tasks and fds that are no longer the ones
// the stream describes. docs/files.md says what happens to each kind of
// file, and which kinds are refused for now.
//
// Options:
//
//	-v  say what was resolved
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ckpt/ckpt/lib/files"
)

const usage = `usage: ckpt-files [options] < STREAM > STREAM

Resolve every file the tasks of a ckpt stream use (fds, file mappings,
executables) in the live tree, and add one file record per file.

Example:
  ckpt-scan $PID | ckpt-files -v | ckpt-mem | ckpt-pack > /tmp/p.img
  ckpt-files < scan.stream > files.stream   # reads the live tree as it is now

Options:
`

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ckpt-files: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ckpt-files", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "say what was resolved")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("no arguments expected, got %q", fs.Args())
	}

	var report func(*files.Summary)
	if *verbose {
		// Said before the stage waits for the stages downstream.
		report = func(s *files.Summary) {
			fmt.Fprintf(stderr, "ckpt-files: %s in %v\n", describe(s), s.Took.Round(time.Microsecond))
		}
	}
	_, err := files.Run(ctx, stdin, stdout, report)
	return err
}

// describe says what a run resolved, in one line.
func describe(s *files.Summary) string {
	total := 0
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(s.Files)) {
		total += s.Files[k]
		kinds = append(kinds, fmt.Sprintf("%d %s", s.Files[k], k))
	}
	line := fmt.Sprintf("%d tasks, %d fds, %d file mappings: %d files", s.Tasks, s.Fds,
		s.Mappings, total)
	if len(kinds) > 0 {
		line += " (" + strings.Join(kinds, ", ") + ")"
	}
	if s.Shared > 0 {
		line += fmt.Sprintf(", %d fds share an earlier fd's open file", s.Shared)
	}
	return line
}
