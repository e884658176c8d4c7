package freeze

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Control is the holder's end of the control socket: a unix socket in the
// abstract namespace (its name starts with "@"), so a holder killed with
// SIGKILL leaves no file behind, whose name travels in the stream header.
// It serves only peers with its own effective uid.
// The protocol is one text line each way (lib/stage, Control):
//
//	stage -> holder: "hello NAME"     when the stage has read the header
//	stage -> holder: "complete NAME"  when the archive is complete and synced
//	holder -> stage: "ok WHAT" or "error MESSAGE", in answer to complete
//
// Every connection, request and close becomes an Event; the holder
// decides, and answers a complete with Event.Reply.
type Control struct {
	Path   string // the socket's name, "@ckpt-scan-PID-RANDOM"
	ln     net.Listener
	events chan Event
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	conns  map[net.Conn]bool
}

// EventKind says what happened on the control socket.
type EventKind int

// The kinds of Event.
const (
	Connected EventKind = iota // a stage connected
	Hello                      // a stage said hello
	Complete                   // a stage reports a complete archive: answer with Reply
	Closed                     // a connection closed (after Complete or not)
)

// Event is one thing that happened on the control socket.
type Event struct {
	Kind  EventKind
	Name  string // the stage's name, from hello or complete
	reply *replier
}

// replier answers one request on its connection, once.
type replier struct {
	conn net.Conn
	once sync.Once
}

// ReplyTimeout bounds the write of an answer to a stage.
const ReplyTimeout = 5 * time.Second

// Reply answers a Complete event with a line such as "ok killed" or
// "error MESSAGE"; the answer is written when Reply returns. It does
// nothing for other kinds, and only the first reply counts. A stage that
// has gone away gets no answer, and that is no error: the holder acted.
func (e Event) Reply(line string) {
	if e.reply == nil {
		return
	}
	e.reply.answer(line)
}

func (r *replier) answer(line string) {
	r.once.Do(func() {
		_ = r.conn.SetWriteDeadline(time.Now().Add(ReplyTimeout))
		_, _ = fmt.Fprintf(r.conn, "%s\n", line)
	})
}

// Listen creates the control socket and starts accepting connections.
func Listen() (*Control, error) {
	random := make([]byte, 8)
	if _, err := rand.Read(random); err != nil {
		return nil, fmt.Errorf("control socket name: %w", err)
	}
	path := fmt.Sprintf("@ckpt-scan-%d-%x", os.Getpid(), random)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	c := &Control{
		Path: path, ln: ln,
		events: make(chan Event), done: make(chan struct{}),
		conns: map[net.Conn]bool{},
	}
	go c.accept()
	return c, nil
}

// Events returns the channel of events. A nil *Control has a nil channel,
// which never delivers.
func (c *Control) Events() <-chan Event {
	if c == nil {
		return nil
	}
	return c.events
}

// Close stops accepting and closes every connection (a stage waiting for
// an answer sees the close: failure).
func (c *Control) Close() error {
	if c == nil {
		return nil
	}
	c.once.Do(func() {
		close(c.done)
		c.ln.Close()
		c.mu.Lock()
		for conn := range c.conns {
			conn.Close()
		}
		c.mu.Unlock()
	})
	return nil
}

func (c *Control) accept() {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return // closed
		}
		if !samePeer(conn) {
			// Anyone may connect to an abstract socket; only a stage
			// run as the same user may report.
			conn.Close()
			continue
		}
		c.mu.Lock()
		c.conns[conn] = true
		c.mu.Unlock()
		if !c.send(Event{Kind: Connected}) {
			conn.Close()
			return
		}
		go c.serve(conn)
	}
}

// send delivers an event unless the Control is closed.
func (c *Control) send(ev Event) bool {
	select {
	case c.events <- ev:
		return true
	case <-c.done:
		return false
	}
}

// serve reads the requests of one connection until it closes.
func (c *Control) serve(conn net.Conn) {
	defer func() {
		conn.Close()
		c.mu.Lock()
		delete(c.conns, conn)
		c.mu.Unlock()
		c.send(Event{Kind: Closed})
	}()
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		verb, name, _ := strings.Cut(strings.TrimSpace(line), " ")
		ev := Event{Name: name}
		switch verb {
		case "hello":
			ev.Kind = Hello
		case "complete":
			ev.Kind, ev.reply = Complete, &replier{conn: conn}
		default:
			(&replier{conn: conn}).answer(fmt.Sprintf("error unknown request %q", verb))
			continue
		}
		if !c.send(ev) {
			return
		}
	}
}

// samePeer reports whether the process at the other end of conn runs
// with this process's effective uid (SO_PEERCRED).
func samePeer(conn net.Conn) bool {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	err = raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	return err == nil && cred != nil && cred.Uid == uint32(os.Geteuid())
}
