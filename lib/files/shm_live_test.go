package files

import (
	"bytes"
	"testing"

	"github.com/ckpt/ckpt/lib/image"
	"golang.org/x/sys/unix"
)

// TestLiveShm dumps a memfd (sealed, mapped, a page of zeros between two
// of data) and a SysV segment (attached, marked for removal, data in its
// middle page): each is one File with its identity, and its ghost data
// holds the pages with data only.
func TestLiveShm(t *testing.T) {
	_, got := startFixture(t, "shm", nil)
	pid := got["pid"]
	recs, err := dumpFiles(t, pid)
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, recs)

	_, m := d.fileOf(t, pid, got["memfd"])
	if m.Kind != image.FileMemfd || m.Path != "/memfd:ckpt shm" || m.Size != 3*4096 ||
		m.Seals != unix.F_SEAL_GROW || m.Mode != unix.S_IFREG|0o777 {
		t.Errorf("memfd file %+v", m)
	}
	checkGhostData(t, d.ghost[m.ID], map[int64]string{0: "memfd page 0", 8192: "memfd page 2"})

	var sysv *image.File
	for _, v := range d.tasks[pid].Vmas {
		f := d.files[v.FileID]
		switch {
		case v.Start == uint64(got["addr"]):
			sysv = &f
		case v.Name == "/memfd:ckpt shm (deleted)" && v.FileID != m.ID:
			t.Errorf("the memfd's mapping is file %d, its fd file %d", v.FileID, m.ID)
		}
	}
	if sysv == nil {
		t.Fatalf("no file for the mapping at %#x", got["addr"])
	}
	want := image.SysVShm{ID: got["shmid"], Mode: 0o640, Removed: true, Attached: 1}
	if sysv.Kind != image.FileSysVShm || sysv.Path != "/SYSV00000000" ||
		sysv.Size != 2*4096+100 || sysv.SysV == nil || *sysv.SysV != want {
		t.Errorf("SysV file %+v %+v, want %+v", sysv, sysv.SysV, want)
	}
	checkGhostData(t, d.ghost[sysv.ID], map[int64]string{4096: "sysv page 1"})
}

// checkGhostData checks that the ghost data are whole pages, one at each
// offset of want, starting with its text, the rest zeros.
func checkGhostData(t *testing.T, data []image.GhostData, want map[int64]string) {
	t.Helper()
	if len(data) != len(want) {
		t.Errorf("%d ghost-data records, want %d", len(data), len(want))
	}
	for _, g := range data {
		text, ok := want[g.Offset]
		page := append([]byte(text), make([]byte, 4096-len(text))...)
		if !ok || !bytes.Equal(g.Data, page) {
			t.Errorf("ghost data at %d: %d bytes starting %q", g.Offset, len(g.Data),
				g.Data[:min(16, len(g.Data))])
		}
	}
}
