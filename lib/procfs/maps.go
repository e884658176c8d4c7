package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// ReadMaps reads /proc/PID/maps.
func ReadMaps(pid int) ([]image.Vma, error) {
	b, path, err := read(pid, "maps")
	if err != nil {
		return nil, err
	}
	vmas, err := ParseMaps(bytes.NewReader(b))
	return vmas, withPath(err, path)
}

// ReadSmaps reads /proc/PID/smaps: the mappings of maps with their VmFlags.
func ReadSmaps(pid int) ([]image.Vma, error) {
	b, path, err := read(pid, "smaps")
	if err != nil {
		return nil, err
	}
	vmas, err := ParseSmaps(bytes.NewReader(b))
	return vmas, withPath(err, path)
}

// ParseMaps parses a maps file, one mapping a line:
//
//	start-end perms offset major:minor inode   name
//
// Dev is the device of the maps line; for a file on a filesystem whose
// stat reports another device (btrfs subvolumes, overlayfs) the caller
// should prefer a stat of /proc/PID/map_files/START-END.
func ParseMaps(r io.Reader) ([]image.Vma, error) {
	return parseMaps(r, "maps", false)
}

// ParseSmaps parses an smaps file: each maps line followed by "Key: value"
// lines, of which it keeps VmFlags (Linux 3.8+).
func ParseSmaps(r io.Reader) ([]image.Vma, error) {
	return parseMaps(r, "smaps", true)
}

func parseMaps(r io.Reader, file string, smaps bool) ([]image.Vma, error) {
	var vmas []image.Vma
	br := bufio.NewReader(r)
	for line := 1; ; line++ {
		text, err := br.ReadString('\n')
		if err == io.EOF && text == "" {
			return vmas, nil
		}
		if err != nil && err != io.EOF {
			return nil, &ParseError{File: file, Line: line, Err: err}
		}
		text = strings.TrimSuffix(text, "\n")
		if err := addMapsLine(&vmas, text, smaps); err != nil {
			return nil, &ParseError{File: file, Line: line, Err: err}
		}
	}
}

// addMapsLine adds the mapping a maps line describes, or, in smaps, adds
// the VmFlags of a field line to the last mapping.
func addMapsLine(vmas *[]image.Vma, text string, smaps bool) error {
	key, val, _ := strings.Cut(text, " ")
	if !smaps || !strings.HasSuffix(key, ":") {
		vma, err := ParseMapsLine(text)
		if err != nil {
			return err
		}
		*vmas = append(*vmas, vma)
		return nil
	}
	if key != "VmFlags:" {
		return nil
	}
	if len(*vmas) == 0 {
		return errors.New("VmFlags before any mapping")
	}
	(*vmas)[len(*vmas)-1].Flags = strings.Fields(val)
	return nil
}

// ParseMapsLine parses one line of maps (without its newline). The name
// starts after the padding that follows the inode; it is kept exactly,
// trailing spaces and a " (deleted)" suffix included (the kernel escapes
// only a newline, as \012). A path never starts with a space, so the
// padding cannot eat part of it.
func ParseMapsLine(text string) (image.Vma, error) {
	var v image.Vma
	f := strings.SplitN(text, " ", 6)
	if len(f) < 5 {
		return v, fmt.Errorf("%d fields, want at least 5", len(f))
	}
	start, end, ok := strings.Cut(f[0], "-")
	if !ok {
		return v, fmt.Errorf("address range %q has no dash", f[0])
	}
	var p hexParser
	v.Start = p.parse(start, "start")
	v.End = p.parse(end, "end")
	v.Pgoff = p.parse(f[2], "offset")
	major, minor, ok := strings.Cut(f[3], ":")
	if !ok {
		return v, fmt.Errorf("device %q has no colon", f[3])
	}
	v.Dev = unix.Mkdev(uint32(p.parse(major, "major")), uint32(p.parse(minor, "minor")))
	if p.err != nil {
		return v, p.err
	}
	ino, err := strconv.ParseUint(f[4], 10, 64)
	if err != nil {
		return v, fmt.Errorf("inode: %w", err)
	}
	v.Ino = ino
	if len(f) == 6 {
		v.Name = strings.TrimLeft(f[5], " ")
	}
	if err := parsePerms(f[1], &v); err != nil {
		return v, err
	}
	if v.End <= v.Start {
		return v, fmt.Errorf("mapping %#x-%#x is empty", v.Start, v.End)
	}
	v.Kind = vmaKind(v.Name, v.Ino, v.Shared)
	return v, nil
}

// parsePerms parses the four letters "rwxp" or "rwxs".
func parsePerms(perms string, v *image.Vma) error {
	if len(perms) != 4 {
		return fmt.Errorf("permissions %q are not 4 letters", perms)
	}
	bits := []struct {
		letter byte
		prot   int
	}{{'r', unix.PROT_READ}, {'w', unix.PROT_WRITE}, {'x', unix.PROT_EXEC}}
	for i, b := range bits {
		switch perms[i] {
		case b.letter:
			v.Prot |= b.prot
		case '-':
		default:
			return fmt.Errorf("permissions %q: bad letter %q", perms, perms[i])
		}
	}
	switch perms[3] {
	case 's':
		v.Shared = true
	case 'p':
	default:
		return fmt.Errorf("permissions %q: want p or s last", perms)
	}
	return nil
}

// ShmemZero is the name maps shows for MAP_SHARED anonymous memory (and a
// shared mapping of /dev/zero, which is the same thing): a file of the
// kernel's internal shmem mount.
const ShmemZero = "/dev/zero (deleted)"

// vmaKind classifies a mapping from its name, inode and sharing. Shared
// anonymous memory keeps the device and inode of its shmem file, which
// name the object that every task mapping it shares.
func vmaKind(name string, ino uint64, shared bool) string {
	if strings.HasPrefix(name, "[anon_shmem:") {
		return image.VmaAnon // MAP_SHARED anonymous memory named with prctl
	}
	switch name {
	case "[vdso]":
		return image.VmaVdso
	case "[vvar]":
		return image.VmaVvar
	case "[vvar_vclock]":
		return image.VmaVvarVclock
	case "[vsyscall]":
		return image.VmaVsyscall
	case ShmemZero:
		if shared {
			return image.VmaAnon
		}
	}
	if ino == 0 && !strings.HasPrefix(name, "/") {
		// No file: "", [heap], [stack], [anon:NAME], [anon_shmem:NAME].
		// A path with inode 0 is a file all the same: SysV shared memory
		// segment 0 is "/SYSV%08x (deleted)", inode 0.
		return image.VmaAnon
	}
	return image.VmaFile
}

// hexParser parses hexadecimal fields and keeps the first error.
type hexParser struct{ err error }

func (p *hexParser) parse(s, what string) uint64 {
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("%s: %w", what, err)
	}
	return v
}
