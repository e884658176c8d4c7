package restore

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/ckpt/ckpt/lib/procfs"
	"golang.org/x/sys/unix"
)

// A task being restored starts with the restorer's capabilities, which
// are usually all of them. Its saved ones are given back around the
// uid and gid changes of restoreCreds, every time, even when they equal
// the restorer's: capsBeforeIDs, then the ids, then capsAfterIDs, then
// checkCaps reads the result back. Capabilities are per thread, like ids.

// capLastCapPath holds the highest capability number this kernel knows.
const capLastCapPath = "/proc/sys/kernel/cap_last_cap"

// capsBeforeIDs does what needs the restorer's privileges, before the
// ids change: the inheritable set, the bounding set, and keep-caps so
// that setresuid leaves the permitted set alone.
func (t *task) capsBeforeIDs(c image.Creds) error {
	last, err := capLastCap()
	if err != nil {
		return fmt.Errorf("%s: %w", t.who, err)
	}
	// The inheritable set first, while the bounding set is still whole:
	// later, capset only grants inheritable capabilities that are in
	// the bounding set, and a saved one need not be.
	cur, err := procfs.ReadStatus(t.pid)
	if err != nil {
		return fmt.Errorf("%s: %w", t.who, err)
	}
	if err := t.capset("capset inheritable", cur.CapEff, cur.CapPrm, c.CapInh); err != nil {
		return err
	}
	// Drop from the bounding set what was not in it (needs CAP_SETPCAP).
	for capNr := 0; capNr <= last; capNr++ {
		if c.CapBnd&(1<<capNr) != 0 {
			continue
		}
		_, err := t.call(fmt.Sprintf("prctl PR_CAPBSET_DROP %d", capNr), unix.SYS_PRCTL,
			unix.PR_CAPBSET_DROP, uint64(capNr))
		if err != nil {
			return err
		}
	}
	// Without keep-caps, a setresuid that leaves no uid 0 empties the
	// permitted set.
	_, err = t.call("prctl PR_SET_KEEPCAPS 1", unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1)
	return err
}

// capsAfterIDs gives back, once the ids are set, the effective,
// permitted and inheritable sets, the ambient set and no_new_privs, and
// checks the result.
func (t *task) capsAfterIDs(c image.Creds) error {
	if err := t.capset("capset", c.CapEff, c.CapPrm, c.CapInh); err != nil {
		return err
	}
	if _, err := t.call("prctl PR_SET_KEEPCAPS 0", unix.SYS_PRCTL,
		unix.PR_SET_KEEPCAPS, 0); err != nil {
		return err
	}
	// The ambient set: what the restorer had goes, the saved ones come
	// (each must be permitted and inheritable, as it was at the dump).
	if _, err := t.call("prctl PR_CAP_AMBIENT_CLEAR_ALL", unix.SYS_PRCTL,
		unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL); err != nil {
		return err
	}
	for capNr := range 64 {
		if c.CapAmb&(1<<capNr) == 0 {
			continue
		}
		_, err := t.call(fmt.Sprintf("prctl PR_CAP_AMBIENT_RAISE %d", capNr), unix.SYS_PRCTL,
			unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uint64(capNr))
		if err != nil {
			return err
		}
	}
	if c.NoNewPrivs {
		if _, err := t.call("prctl PR_SET_NO_NEW_PRIVS", unix.SYS_PRCTL,
			unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return err
		}
	}
	return t.checkCaps(c)
}

// capset sets the calling thread's capability sets (version 3: a header
// then two structs of 32-bit effective, permitted, inheritable words,
// the low 32 capabilities first).
func (t *task) capset(name string, eff, prm, inh uint64) error {
	b := binary.LittleEndian.AppendUint32(nil, unix.LINUX_CAPABILITY_VERSION_3)
	b = binary.LittleEndian.AppendUint32(b, 0) // pid 0: the thread itself
	for _, shift := range []uint{0, 32} {
		b = binary.LittleEndian.AppendUint32(b, uint32(eff>>shift))
		b = binary.LittleEndian.AppendUint32(b, uint32(prm>>shift))
		b = binary.LittleEndian.AppendUint32(b, uint32(inh>>shift))
	}
	p, err := t.put(b)
	if err != nil {
		return err
	}
	_, err = t.call(name, unix.SYS_CAPSET, p, p+8)
	return err
}

// checkCaps reads the thread's status (/proc/TID/status is the thread's
// own) and fails unless its capability sets and no_new_privs are exactly
// the saved ones.
func (t *task) checkCaps(c image.Creds) error {
	s, err := procfs.ReadStatus(t.pid)
	if err != nil {
		return fmt.Errorf("%s: %w", t.who, err)
	}
	var diff []string
	for _, f := range []struct {
		name      string
		got, want uint64
	}{
		{"CapInh", s.CapInh, c.CapInh},
		{"CapPrm", s.CapPrm, c.CapPrm},
		{"CapEff", s.CapEff, c.CapEff},
		{"CapBnd", s.CapBnd, c.CapBnd},
		{"CapAmb", s.CapAmb, c.CapAmb},
	} {
		if f.got != f.want {
			diff = append(diff, fmt.Sprintf("%s %016x, saved %016x", f.name, f.got, f.want))
		}
	}
	if s.NoNewPrivs != c.NoNewPrivs {
		diff = append(diff, fmt.Sprintf("NoNewPrivs %t, saved %t", s.NoNewPrivs, c.NoNewPrivs))
	}
	if len(diff) > 0 {
		return fmt.Errorf("%s: capabilities not restored: %s", t.who, strings.Join(diff, "; "))
	}
	return nil
}

// capLastCap reads the highest capability number this kernel knows.
func capLastCap() (int, error) {
	b, err := os.ReadFile(capLastCapPath)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 || n > 63 {
		return 0, fmt.Errorf("%s: %q is not a capability number", capLastCapPath, b)
	}
	return n, nil
}
