package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/ckpt/ckpt/lib/freeze"
	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/procfs"
	"github.com/ckpt/ckpt/lib/stage"
	"github.com/ckpt/ckpt/lib/stream"
	"golang.org/x/sys/unix"
)

// errUsage marks a command line that cannot be run (exit code 2).
var errUsage = errors.New("usage: ckpt-scan [--kill] [-v] PID > stream")

const usage = `usage: ckpt-scan [--kill] [-v] PID > STREAM

Freeze process PID and every process under it, write what they are made
of as a ckpt record stream, and hold them frozen until the stages after
it are done with them.

Example:
  ckpt-scan --kill 1234 | ckpt-files | ckpt-mem | ckpt-pack -o app.img
  ckpt-scan 1234 | ckpt-files | ckpt-mem | ckpt-pack -o app.img   # keeps running
  ckpt-scan 1234 | ckpt-show

Options:
`

type options struct {
	pid     int
	kill    bool
	verbose bool
}

// parseArgs reads the options and the PID, which may come in any order.
func parseArgs(args []string, stderr io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet("ckpt-scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.kill, "kill", false, "kill the process once the final stage reports a complete archive")
	fs.BoolVar(&o.verbose, "v", false, "say what was scanned and how long the process was frozen")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	var rest []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("%w (%v)", errUsage, err)
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(rest) != 1 {
		return nil, errUsage
	}
	pid, err := strconv.Atoi(rest[0])
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("%w (bad PID %q)", errUsage, rest[0])
	}
	o.pid = pid
	return &o, nil
}

// output says what kind of file stdout is.
type output struct {
	w    io.Writer
	pipe bool // a pipe: hold the tree until its reader is gone
}

func checkOutput(w io.Writer, kill bool) (*output, error) {
	f, ok := w.(*os.File)
	if !ok {
		return &output{w: w}, nil
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
		return nil, errors.New("stdout is a terminal: send the stream to a pipe or a file")
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat stdout: %w", err)
	}
	out := &output{w: w, pipe: st.Mode&unix.S_IFMT == unix.S_IFIFO}
	if kill && !out.pipe {
		return nil, errors.New("--kill needs stdout to be a pipe into the other stages: " +
			"written to a file, no final stage can report a complete archive")
	}
	return out, nil
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	out, err := checkOutput(stdout, o.kill)
	if err != nil {
		return err
	}
	signal.Ignore(unix.SIGPIPE)
	stage.EnlargePipe(stdout)
	ctx, stop := withSignals(ctx, stderr)
	defer stop()

	// Every ptrace call must come from the thread that seized.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	task, err := check(o.pid)
	if err != nil {
		return err
	}
	var ctl *freeze.Control
	if o.kill {
		if ctl, err = freeze.Listen(); err != nil {
			return err
		}
		defer ctl.Close()
	}
	tree, members, err := freezeTree(task)
	if err != nil {
		return err
	}
	s := &scan{opts: o, tree: tree, members: members, ctl: ctl, out: out, stderr: stderr}
	if err := s.dump(ctx); err != nil {
		return releaseOnError(tree, err)
	}
	return s.hold(ctx)
}

// tick is the precision of the times -v prints.
const tick = 10 * time.Microsecond

// scan is one run of ckpt-scan from the freeze on.
type scan struct {
	opts    *options
	tree    *freeze.Tree
	members []member
	ctl     *freeze.Control
	out     *output
	stderr  io.Writer
}

// dumped is one process as the stream gives it: its task record and its
// fds.
type dumped struct {
	task *image.Task
	fds  []image.Fd
}

// dump collects every frozen process and writes the stream.
func (s *scan) dump(ctx context.Context) error {
	var all []dumped
	threads, fds, vmas := 0, 0, 0
	inj := &injection{step: testPause(s.stderr)}
	// It reads /proc of the whole machine: alongside the injections.
	tracers := make(chan error, 1)
	go func() { tracers <- refuseTracers(s.members) }()
	for _, m := range s.members {
		d := dumped{task: m.zombie}
		if d.task == nil {
			var err error
			if d.task, d.fds, err = collect(m.pid, s.tree, inj); err != nil {
				return err
			}
		}
		if err := context.Cause(ctx); err != nil {
			return err
		}
		all = append(all, d)
		threads += len(d.task.Threads)
		fds += len(d.fds)
		vmas += len(d.task.Vmas)
	}
	testPauseDone(s.stderr)
	if err := <-tracers; err != nil {
		return err
	}
	tasks := make([]*image.Task, len(all))
	for i, d := range all {
		tasks[i] = d.task
	}
	helpers, err := image.CheckTree(tasks)
	if err != nil {
		return err
	}
	if err := s.checkHelpers(helpers); err != nil {
		return err
	}
	if err := s.write(all); err != nil {
		return err
	}
	root := all[0].task
	s.verbosef("%s injected in %s in %v", count(inj.calls, "system call"),
		count(inj.threads, "thread"), inj.took.Round(tick))
	s.verbosef("pid %d (%s): %s, %s, %s, %d vmas; stream written %v after the freeze",
		root.PID, root.Comm, count(len(all), "task"), count(threads, "thread"),
		count(fds, "fd"), vmas, s.tree.Frozen().Round(tick))
	return nil
}

// write writes the header, every task with its fds, and the end record.
func (s *scan) write(all []dumped) error {
	h := stream.NewHeader("ckpt-scan")
	h.RootPID = all[0].task.PID
	if s.ctl != nil {
		h.Control, h.Kill = s.ctl.Path, true
	}
	if s.out.pipe {
		// Only then is the tree held while the stages read it.
		me, err := procfs.ReadStat(os.Getpid())
		if err != nil {
			return err
		}
		h.HolderPID, h.HolderStart = me.PID, me.StartTime
	}
	w := stream.NewWriter(s.out.w)
	if err := w.WriteHeader(h); err != nil {
		return fmt.Errorf("write stream: %w", err)
	}
	for _, d := range all {
		if err := w.Write(image.KindTask, d.task); err != nil {
			return fmt.Errorf("write stream: %w", err)
		}
		for i := range d.fds {
			if err := w.Write(image.KindFd, &d.fds[i]); err != nil {
				return fmt.Errorf("write stream: %w", err)
			}
		}
	}
	if err := w.End(); err != nil {
		return fmt.Errorf("write stream: %w", err)
	}
	return nil
}

// hold keeps the tree frozen as long as the stages downstream need it,
// then releases or kills it (lib/freeze, Hold).
func (s *scan) hold(ctx context.Context) error {
	if !s.out.pipe {
		if err := s.tree.Release(); err != nil {
			return fmt.Errorf("release: %w", err)
		}
		s.verbosef("released after %v frozen", s.tree.Frozen().Round(tick))
		return nil
	}
	gone := make(chan error, 1)
	go func() { gone <- stage.WaitReaderGone(s.out.w) }()
	outcome, err := s.tree.Hold(ctx, gone, s.ctl)
	what := "released"
	if outcome == freeze.Killed {
		what = "killed"
	}
	s.verbosef("%s after %v frozen", what, s.tree.Frozen().Round(tick))
	if err != nil && !errors.Is(err, freeze.ErrDownstreamFailed) {
		return fmt.Errorf("%w (process released)", err)
	}
	return err
}

// count says "1 thread", "2 threads".
func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func (s *scan) verbosef(format string, args ...any) {
	if s.opts.verbose {
		fmt.Fprintf(s.stderr, "ckpt-scan: "+format+"\n", args...)
	}
}

// releaseOnError lets the tree go after a failed dump, untouched.
func releaseOnError(tree *freeze.Tree, err error) error {
	if rerr := tree.Release(); rerr != nil {
		return errors.Join(err, fmt.Errorf("release: %w", rerr))
	}
	return fmt.Errorf("%w (process released)", err)
}

// stuckTimeout is how long a signal waits for the dump to notice it.
const stuckTimeout = 2 * time.Second

// withSignals returns a context that SIGINT, SIGTERM and SIGHUP cancel,
// with the signal as the cause. The dump notices it between steps; if it
// does not within stuckTimeout (a wait for a task that does not stop, in
// uninterruptible sleep), ckpt-scan exits and the kernel detaches the
// tasks, which run on. It does not exit while a task runs injected calls:
// the task would find its way back alone, but finishing is cleaner.
func withSignals(ctx context.Context, stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	ch := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(ch, unix.SIGINT, unix.SIGTERM, unix.SIGHUP)
	go func() {
		var sig os.Signal
		select {
		case sig = <-ch:
		case <-done:
			return
		}
		cause := fmt.Errorf("interrupted by %s", unix.SignalName(sig.(syscall.Signal)))
		cancel(cause)
		for {
			select {
			case <-done:
				return
			case <-time.After(stuckTimeout):
			}
			if !injecting.Load() {
				fmt.Fprintf(stderr, "ckpt-scan: %v; the dump is stuck: exiting, "+
					"the kernel releases the process\n", cause)
				os.Exit(1)
			}
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}
