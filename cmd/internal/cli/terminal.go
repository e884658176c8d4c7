package cli

import (
	"os"

	"golang.org/x/sys/unix"
)

// IsTerminal says whether f is an *os.File on a terminal.
func IsTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(file.Fd()), unix.TCGETS)
	return err == nil
}

// StreamIn refuses a terminal as the input of a tool that reads a
// record stream or an archive: it would wait there, silently, for bytes
// nobody types. what says what to give instead.
func StreamIn(f any, what string) error {
	if IsTerminal(f) {
		return Usagef("stdin is a terminal: %s", what)
	}
	return nil
}
