package stage

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"
)

// Control is a final stage's connection to ckpt-scan's control socket,
// whose path travels in the stream header. The protocol is one text line
// each way (docs/FORMAT.md, "Holding the tree"):
//
//	stage -> scan: "hello NAME\n"      when the stage has read the header
//	stage -> scan: "complete NAME\n"   when the archive is complete and synced
//	scan -> stage: "ok WHAT\n" or "error MESSAGE\n", in answer to complete
//
// A connection that closes without "complete" means the dump failed, and
// ckpt-scan resumes the tree instead of killing it.
type Control struct {
	conn net.Conn
	name string
}

// Dial connects to the control socket at path and says hello. An empty
// path gives a nil *Control, whose methods do nothing.
func Dial(path, name string) (*Control, error) {
	if path == "" {
		return nil, nil
	}
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connect to ckpt-scan control socket %s: %w", path, err)
	}
	if _, err := fmt.Fprintf(conn, "hello %s\n", name); err != nil {
		conn.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &Control{conn: conn, name: name}, nil
}

// Complete reports a complete, synced archive and returns what ckpt-scan
// answered (for example "killed"), or an error if it refused or went away.
func (c *Control) Complete() (string, error) {
	if c == nil {
		return "", nil
	}
	if _, err := fmt.Fprintf(c.conn, "complete %s\n", c.name); err != nil {
		return "", fmt.Errorf("report to ckpt-scan: %w", err)
	}
	line, err := bufio.NewReader(c.conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("ckpt-scan did not answer the report: %w", err)
	}
	line = strings.TrimSpace(line)
	if rest, ok := strings.CutPrefix(line, "ok"); ok {
		return strings.TrimSpace(rest), nil
	}
	return "", fmt.Errorf("ckpt-scan: %s", strings.TrimPrefix(line, "error "))
}

// Close closes the connection; before Complete, that tells ckpt-scan the
// dump failed.
func (c *Control) Close() error {
	if c == nil {
		return nil
	}
	return c.conn.Close()
}
