package tests

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ckpt/ckpt/internal/ptytest"
)

// The command line of every tool (issue 5): --help with an example and
// exit status 0, -v on every tool, exit status 2 for a command line that
// cannot be run, and every option documented in the tool's page in docs/
// under its name, with the exit codes (docs/exit-codes.md).

// toolRun runs one tool with args and stdin from /dev/null, and returns
// its stdout and stderr together, and its exit code.
func toolRun(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool(name), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not finish in 20s", name, args)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), 0
}

// optionLine is an option as the flag package prints it in a usage.
var optionLine = regexp.MustCompile(`(?m)^  -([a-z][a-z-]*)`)

func TestToolsCommandLine(t *testing.T) {
	cases := []struct {
		tool string
		bad  [][]string // command lines that cannot be run
	}{
		{"ckpt-scan", [][]string{{}, {"x"}, {"1", "2"}, {"--bogus", "1"}}},
		{"ckpt-files", [][]string{{"extra"}, {"--bogus"}, {"--max-ghost-size", "lots"}}},
		{"ckpt-mem", [][]string{{"extra"}, {"--bogus"}}},
		{"ckpt-pack", [][]string{{"extra"}, {"--bogus"}, {"-o"}}},
		{"ckpt-restore", [][]string{{"a", "b"}, {"--bogus"}, {"--pid-wait", "soon"}}},
		{"ckpt-show", [][]string{{"a", "b"}, {"--bogus"}}},
	}
	codes, err := os.ReadFile("../docs/exit-codes.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.tool, func(t *testing.T) {
			help, code := toolRun(t, c.tool, "--help")
			if code != 0 || !strings.Contains(help, "Example") ||
				!strings.Contains(strings.ToLower(help), "usage: "+c.tool) {
				t.Fatalf("%s --help: exit %d, want 0, a usage and an example:\n%s", c.tool, code, help)
			}
			if h, code := toolRun(t, c.tool, "-h"); code != 0 || h != help {
				t.Errorf("%s -h: exit %d, or not the --help text", c.tool, code)
			}
			for _, args := range c.bad {
				out, code := toolRun(t, c.tool, args...)
				last := strings.TrimSpace(out)
				last = last[strings.LastIndexByte(last, '\n')+1:]
				if code != 2 || !strings.HasPrefix(last, c.tool+": ") {
					t.Errorf("%s %q: exit %d, last line %q; want exit 2 and a line %q",
						c.tool, args, code, last, c.tool+": ...")
				}
			}
			page, err := os.ReadFile("../docs/" + c.tool + ".md")
			if err != nil {
				t.Fatal(err)
			}
			opts := optionLine.FindAllStringSubmatch(help, -1)
			if len(opts) == 0 {
				t.Fatalf("%s --help lists no option:\n%s", c.tool, help)
			}
			verbose := false
			for _, o := range opts {
				name := "--" + o[1]
				if len(o[1]) == 1 {
					name = "-" + o[1]
				}
				verbose = verbose || name == "-v"
				// In a table (`--name`) or an indented list of options.
				doc := regexp.MustCompile("`" + name + "[` ]|(?m)^ +" + name + "\\b")
				if !doc.Match(page) {
					t.Errorf("docs/%s.md does not document %s", c.tool, name)
				}
			}
			if !verbose {
				t.Errorf("%s has no -v", c.tool)
			}
			if !bytes.Contains(page, []byte("exit-codes.md")) {
				t.Errorf("docs/%s.md does not point at exit-codes.md", c.tool)
			}
			if !bytes.Contains(codes, []byte("("+c.tool+".md)")) {
				t.Errorf("docs/exit-codes.md does not list %s", c.tool)
			}
		})
	}
}

// TestToolsRefuseTerminalInput: a tool that reads a stream or an archive
// on stdin refuses a terminal there (exit 2) instead of waiting silently
// for bytes nobody will type.
func TestToolsRefuseTerminalInput(t *testing.T) {
	_, slave := ptytest.Open(t)
	for _, name := range []string{"ckpt-files", "ckpt-mem", "ckpt-pack", "ckpt-show",
		"ckpt-restore"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := exec.CommandContext(ctx, tool(name))
		cmd.Stdin = slave
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &bytes.Buffer{}, &stderr
		err := cmd.Run()
		timedOut := ctx.Err() != nil
		cancel()
		var exit *exec.ExitError
		if timedOut || !errors.As(err, &exit) || exit.ExitCode() == 0 ||
			!strings.Contains(stderr.String(), "stdin is a terminal") {
			t.Errorf("%s with a terminal on stdin: %v (timed out: %v)\n%s", name, err,
				timedOut, stderr.String())
		}
	}
}
