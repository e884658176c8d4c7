package ghost

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// A memfd is made again by memfd_create with its old name, so that every
// fd opened from the restorer's file reads "/memfd:NAME (deleted)" in
// /proc as before. It is made sealable whatever it was: its seals, F_SEAL_SEAL
// among them for one made without MFD_ALLOW_SEALING, are added by Close,
// once the contents are in and every task has mapped it (a mapping made
// writable before F_SEAL_FUTURE_WRITE cannot be made after it).

// memfdPrefix is how the kernel's name of a memfd starts.
const memfdPrefix = "/memfd:"

// sealExec is F_SEAL_EXEC (Linux 6.3): the exec bits of the mode stay.
const sealExec = 0x20

// createMemfd makes the memfd f: its name, size, owner and mode; it
// returns its open file (read-write, close-on-exec).
func createMemfd(f *image.File) (*os.File, error) {
	name, ok := strings.CutPrefix(f.Path, memfdPrefix)
	if !ok {
		return nil, fmt.Errorf("a memfd named %q, not %s...", f.Path, memfdPrefix)
	}
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	if f.Seals&sealExec != 0 && f.Mode&0o111 == 0 {
		// Made with MFD_NOEXEC_SEAL, which vm.memfd_noexec = 2 demands.
		flags |= unix.MFD_NOEXEC_SEAL
	}
	fd, err := unix.MemfdCreate(name, flags)
	if errors.Is(err, unix.EINVAL) && flags&unix.MFD_NOEXEC_SEAL != 0 {
		fd, err = unix.MemfdCreate(name, flags&^unix.MFD_NOEXEC_SEAL) // before Linux 6.3
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create %q: %w", name, err)
	}
	file := os.NewFile(uintptr(fd), f.Path+" (deleted)")
	if err := setMemfd(file, f); err != nil {
		file.Close()
		return nil, err
	}
	return file, nil
}

// setMemfd gives a new memfd its size, owner and mode. The owner comes
// first: chown clears the set-id bits.
func setMemfd(file *os.File, f *image.File) error {
	fd := int(file.Fd())
	if err := unix.Ftruncate(fd, f.Size); err != nil {
		return fmt.Errorf("ftruncate %d: %w", f.Size, err)
	}
	if err := unix.Fchown(fd, int(f.UID), int(f.GID)); err != nil {
		return fmt.Errorf("chown %d:%d: %w", f.UID, f.GID, err)
	}
	if err := unix.Fchmod(fd, f.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod %o: %w", f.Mode&0o7777, err)
	}
	return nil
}

// addSeals adds seals to a memfd (F_ADD_SEALS).
func addSeals(file *os.File, seals int) error {
	if seals == 0 {
		return nil
	}
	if _, err := unix.FcntlInt(file.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		return fmt.Errorf("fcntl F_ADD_SEALS %#x: %w", seals, err)
	}
	return nil
}
