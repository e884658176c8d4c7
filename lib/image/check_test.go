package image

import (
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestCheckBodyAccepts(t *testing.T) {
	task := &Task{PID: 7, Comm: "x", Threads: []Thread{{TID: 7, Regs: make([]uint64, 27),
		Xstate: make([]byte, 2432)}}, Vmas: []Vma{{Start: 4096, End: 8192, Name: "[heap]"}},
		Extra: map[string]any{"a": []any{1, "b", 2.5, nil, true, map[string]any{"c": -3}}}}
	body, err := msgpack.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	var back Task
	if err := Unmarshal(body, &back); err != nil {
		t.Fatal(err)
	}
	if back.PID != 7 || len(back.Threads) != 1 || len(back.Threads[0].Xstate) != 2432 {
		t.Fatalf("decoded %+v", back)
	}
}

func TestCheckBodyRefuses(t *testing.T) {
	deep := strings.Repeat("\x91", MaxDepth+1) + "\xc0"
	cases := []struct{ name, body, want string }{
		{"huge array", "\x81\xa7threads\xdd\x00\x01\x00\x00\x90", "elements claimed"},
		{"over the limit", "\xdd\x7f\xff\xff\xff", "over the limit"},
		{"huge map", "\xdf\x00\x10\x00\x00\xa1a", "elements claimed"},
		{"string past the end", "\xdb\x00\x00\x10\x00abc", "bytes claimed"},
		{"bin past the end", "\xc5\x01\x00", "bytes claimed"},
		{"cut in a length", "\xdd\x00", "bytes claimed"},
		{"empty", "", "bytes claimed"},
		{"never used", "\xc1", "not a msgpack value"},
		{"too deep", deep, "nested over"},
	}
	for _, c := range cases {
		err := CheckBody([]byte(c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

func FuzzCheckBody(f *testing.F) {
	body, _ := msgpack.Marshal(&Task{PID: 1, Threads: []Thread{{TID: 1}}})
	f.Add(body)
	f.Fuzz(func(t *testing.T, b []byte) {
		if CheckBody(b) == nil {
			var task Task
			_ = msgpack.Unmarshal(b, &task)
		}
	})
}
