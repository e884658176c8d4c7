package freeze

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Outcome is how a hold ended.
type Outcome int

// The outcomes of Hold.
const (
	Released Outcome = iota // the tree runs on
	Killed                  // the tree was killed while frozen
)

// ErrDownstreamFailed means the stages downstream went away without
// reporting a complete archive; the tree was released, not killed.
var ErrDownstreamFailed = errors.New("dump failed downstream: tree resumed, not killed")

// Hold keeps the tree frozen until the stages downstream are done with
// it, then releases or kills it:
//
//   - readerGone delivers once when the reader of the stream has gone
//     (nil) or waiting for that failed. Without a control socket (ctl nil)
//     the tree is released right then.
//   - With ctl (ckpt-scan --kill), a Complete event kills the tree while
//     frozen and is answered "ok killed". Once the reader is gone and no
//     control connection has been open for Settle, the dump has failed:
//     the tree is released and Hold returns ErrDownstreamFailed.
//   - When ctx ends (a signal), the tree is released and Hold returns
//     context.Cause(ctx).
//
// Every way out leaves the tree released or killed, never held.
//
// Preconditions: called from the OS thread that froze the tree.
func (t *Tree) Hold(ctx context.Context, readerGone <-chan error, ctl *Control) (Outcome, error) {
	h := holder{tree: t, kill: ctl != nil}
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return Released, h.release(context.Cause(ctx))
		case err := <-readerGone:
			readerGone = nil
			if err != nil {
				return Released, h.release(err)
			}
			h.gone = true
			if !h.kill {
				return Released, h.release(nil)
			}
		case ev := <-ctl.Events():
			if done, out, err := h.event(ev); done {
				return out, err
			}
		case <-settle:
			return Released, h.release(ErrDownstreamFailed)
		}
		switch {
		case !h.kill || !h.gone || h.open > 0:
			settle = nil
		case settle == nil:
			// A final stage connects long before the pipes close, but
			// its connection may still be on its way from the accept
			// loop: give it a moment before calling the dump failed.
			settle = time.After(Settle)
		}
	}
}

// Settle is how long Hold waits, once the reader of the stream is gone
// and no control connection is open, for one still being accepted.
const Settle = 100 * time.Millisecond

// holder is the state of one Hold.
type holder struct {
	tree *Tree
	kill bool // waiting for a complete report
	gone bool // the reader of the stream is gone
	open int  // control connections open
}

// event handles one control socket event; done is true when the hold is
// over.
func (h *holder) event(ev Event) (done bool, out Outcome, err error) {
	switch ev.Kind {
	case Connected:
		h.open++
	case Closed:
		h.open--
	case Complete:
		if err := h.tree.Kill(); err != nil {
			ev.Reply("error " + err.Error())
			return true, Released, h.release(fmt.Errorf("archive complete but %w", err))
		}
		ev.Reply("ok killed")
		return true, Killed, nil
	}
	return false, Released, nil
}

// release lets the tree go and returns why the hold ended (nil: because
// the stages are done), or the release's own error.
func (h *holder) release(why error) error {
	if err := h.tree.Release(); err != nil {
		return errors.Join(why, fmt.Errorf("release: %w", err))
	}
	return why
}
