// Command ckpt-scan freezes a process and writes what it is made of as the
// start of a ckpt record stream: a header, a task record and one fd record
// per open descriptor, then an end record. It then holds the process
// frozen until the stages downstream are done with it.
//
// Synopsis:
//
//	ckpt-scan [--kill] [-v] PID > stream
//	ckpt-scan [--kill] [-v] PID | ckpt-files | ckpt-mem | ckpt-pack > img
//
// Options:
//
//	--kill  keep the process frozen until the final stage reports a
//	        complete archive on the control socket, then kill it; if the
//	        dump fails, it resumes instead (stdout must be a pipe)
//	-v      say on stderr what was scanned, how many system calls were
//	        injected, and how long the process was frozen
//
// What only the process itself can answer (signal handlers, tid address,
// sigaltstack, timers) is read by running system calls inside it, so that
// a ckpt-scan killed at any moment leaves it running unharmed
// (docs/ckpt-scan.md). CKPT_SCAN_TEST_PAUSE in the environment is a hook
// for tests (testhook.go), not for users.
//
// PID and every process under it are frozen and dumped, each with all its
// threads; zombies among them are dumped as zombies. See docs/ckpt-scan.md.
//
// Exit status: 0 done, 1 failed (the tree runs on untouched), 2 bad
// command line (docs/exit-codes.md).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ckpt-scan: %v\n", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
