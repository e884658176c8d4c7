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
//	-v                     say what was resolved
//	--max-ghost-size SIZE  refuse an unlinked file (ghost) that holds more
//	                       than SIZE bytes of data (suffixes K, M, G, T:
//	                       powers of 1024); default: no limit
//	--ghost-clone          keep each ghost in a hidden file beside its old
//	                       name (FICLONE on btrfs and XFS, copy_file_range
//	                       elsewhere) instead of in the stream
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ckpt/ckpt/cmd/internal/cli"
	"github.com/ckpt/ckpt/lib/files"
)

const usage = `usage: ckpt-files [options] < STREAM > STREAM

Resolve every file the tasks of a ckpt stream use (fds, file mappings,
executables) in the live tree, and add one file record per file.

Example:
  ckpt-scan $PID | ckpt-files -v | ckpt-mem | ckpt-pack > /tmp/p.img
  ckpt-scan $PID | ckpt-files --max-ghost-size 100M | ckpt-mem | ckpt-pack > /tmp/p.img
  ckpt-files < scan.stream > files.stream   # reads the live tree as it is now

Options:
`

func main() {
	cli.Exit("ckpt-files", run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ckpt-files", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "say what was resolved")
	var maxGhost size
	clone := fs.Bool("ghost-clone", false, "keep each unlinked file (ghost) in a hidden file "+
		"beside its old name (FICLONE, else copy_file_range) instead of in the stream")
	fs.Var(&maxGhost, "max-ghost-size", "refuse an unlinked file (ghost) holding more than "+
		"`SIZE` bytes of data (K, M, G, T: powers of 1024; default no limit)")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cli.Usage(err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return cli.Usagef("no arguments expected, got %q", fs.Args())
	}

	var report func(*files.Summary)
	if *verbose {
		// Said before the stage waits for the stages downstream.
		report = func(s *files.Summary) {
			fmt.Fprintf(stderr, "ckpt-files: %s in %v\n", describe(s), s.Took.Round(time.Microsecond))
		}
	}
	if err := cli.StreamIn(stdin, "pipe a record stream in (ckpt-scan PID | ckpt-files)"); err != nil {
		return err
	}
	_, err := files.Run(ctx, stdin, stdout,
		files.Options{MaxGhostSize: int64(maxGhost), GhostClone: *clone}, report)
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
	if s.Files["ghost"] > 0 || s.GhostBytes > 0 {
		line += fmt.Sprintf(", %s of ghost data", bytesString(s.GhostBytes))
	}
	if s.Files["pipe"]+s.Files["fifo"] > 0 {
		line += fmt.Sprintf(", %s in flight in pipes", bytesString(s.PipeBytes))
		if s.Unseen > 0 {
			line += fmt.Sprintf(" (other holders looked for in every process but %d, "+
				"not readable)", s.Unseen)
		}
	}
	return line
}

// size is a byte count given with an optional K, M, G or T suffix
// (powers of 1024; a trailing "B" or "iB" is allowed).
type size int64

func (s *size) String() string { return strconv.FormatInt(int64(*s), 10) }

func (s *size) Set(v string) error {
	num := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(v), "B"), "I")
	shift := 0
	for i, unit := range []string{"K", "M", "G", "T"} {
		if n, ok := strings.CutSuffix(num, unit); ok {
			num, shift = n, 10*(i+1)
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64>>shift {
		return fmt.Errorf("bad size %q: want a number of bytes, with K, M, G or T", v)
	}
	*s = size(n << shift)
	return nil
}

// bytesString spells a byte count for people.
func bytesString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
