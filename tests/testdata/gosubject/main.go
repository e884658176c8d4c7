// Command gosubject is the Go program of tests/go_test.go: goroutines
// that count, a time.Ticker, signal.Notify, and a file it writes to.
//
// Every 50 ms it appends "tick N COUNT" to the file (N counts ticks,
// COUNT what four busy goroutines counted so far), and "usr1 N" when a
// SIGUSR1 comes.
//
// Usage: gosubject FILE
package main

import (
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	f, err := os.OpenFile(os.Args[1], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var count atomic.Int64
	for range 4 {
		go func() {
			for {
				count.Add(1)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM)
	tick := time.NewTicker(50 * time.Millisecond)
	usr1 := 0
	for n := 0; ; {
		select {
		case <-tick.C:
			fmt.Fprintf(f, "tick %d %d\n", n, count.Load())
			n++
		case sig := <-sigs:
			if sig == syscall.SIGTERM {
				fmt.Fprintf(f, "bye\n")
				f.Close()
				os.Exit(0)
			}
			fmt.Fprintf(f, "usr1 %d\n", usr1)
			usr1++
		}
	}
}
