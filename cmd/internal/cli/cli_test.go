package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"testing"
)

func TestCodes(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	badFlag := Usage(fs.Parse([]string{"--nope"}))
	cases := []struct {
		err  error
		code int
		line string
	}{
		{nil, OK, ""},
		{flag.ErrHelp, OK, ""},
		{Usage(flag.ErrHelp), OK, ""},
		{badFlag, BadArgs, "x: flag provided but not defined: -nope\n"},
		{fmt.Errorf("wrapped: %w", Usagef("one archive at a time, got %d", 2)), BadArgs,
			"x: wrapped: one archive at a time, got 2\n"},
		{errors.New("pid 7: gone"), Failed, "x: pid 7: gone\n"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		if got := report(&out, "x", c.err); got != c.code || out.String() != c.line {
			t.Errorf("%v: code %d, said %q; want %d, %q", c.err, got, out.String(), c.code, c.line)
		}
	}
}
