package image

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestDecodePages(t *testing.T) {
	want := Pages{PID: 4242, Addr: 0x7f0000001000, Data: bytes.Repeat([]byte{7, 8}, 4096)}
	body, err := msgpack.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	var got Pages
	if err := DecodePages(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.PID != want.PID || got.Addr != want.Addr || !bytes.Equal(got.Data, want.Data) {
		t.Fatalf("got pid %d addr %#x %d bytes, want %d %#x %d", got.PID, got.Addr,
			len(got.Data), want.PID, want.Addr, len(want.Data))
	}
	if &got.Data[0] != &body[len(body)-len(want.Data)] {
		t.Error("Data was copied, not a view of the body")
	}
	// An unknown key is skipped.
	extra, _ := msgpack.Marshal(map[string]any{"pid": 1, "later": []int{1, 2}, "addr": 2})
	if err := DecodePages(extra, &got); err != nil || got.PID != 1 || got.Addr != 2 {
		t.Errorf("with an unknown key: %+v, %v", got, err)
	}
	for i := range len(body) - len(want.Data) + 4 {
		if err := DecodePages(body[:i], &got); err == nil {
			t.Errorf("truncated to %d bytes: no error", i)
		}
	}
}

// FuzzDecodePages checks that DecodePages never panics and agrees with
// msgpack.Unmarshal on what both accept.
func FuzzDecodePages(f *testing.F) {
	b, _ := msgpack.Marshal(&Pages{PID: 1, Addr: 4096, Data: make([]byte, 64)})
	f.Add(b)
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, body []byte) {
		var a, b Pages
		errA := DecodePages(body, &a)
		errB := msgpack.Unmarshal(body, &b)
		if errA == nil && errB == nil &&
			(a.PID != b.PID || a.Addr != b.Addr || !bytes.Equal(a.Data, b.Data)) {
			t.Fatalf("DecodePages %+v, Unmarshal %+v", a, b)
		}
	})
}
