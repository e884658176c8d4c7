// Package cli holds what the ckpt commands share about how they end:
// the exit codes of docs/exit-codes.md and the one line that says why.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Exit codes.
const (
	OK      = 0 // done, or --help
	Failed  = 1 // the work failed; the dumped or restored tree is as it was
	BadArgs = 2 // the command line cannot be run; nothing was done
)

// usageError is a command line that cannot be run.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Usage marks err, from parsing the command line, as a usage error (exit
// code BadArgs). It returns nil and flag.ErrHelp as they are.
func Usage(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err}
}

// Usagef returns a usage error with a message.
func Usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// Code returns the exit code for what run returned.
func Code(err error) int {
	var u usageError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return OK
	case errors.As(err, &u):
		return BadArgs
	}
	return Failed
}

// Exit prints err, if any, as one line "name: err" on stderr, and exits
// with its code.
func Exit(name string, err error) {
	os.Exit(report(os.Stderr, name, err))
}

func report(stderr io.Writer, name string, err error) int {
	code := Code(err)
	if code != OK {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
	}
	return code
}
