package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// testPauseEnv names a hook for tests, not for users. Set to a number N,
// it makes ckpt-scan stop after step N (counted from 0, over every thread)
// of its system call injection (each step a change of a thread's state:
// lib/ptrace, Parasite.Step), say so on stderr and wait to be killed, a
// minute at most; set to "N/run", say so and run on. With it set,
// ckpt-scan also says on stderr how many steps the injection took.
// tests/inject_test.go kills ckpt-scan this way at every kind of point of
// the injection, and at random moments inside it.
const testPauseEnv = "CKPT_SCAN_TEST_PAUSE"

// testPauseLimit bounds the pause, in case nobody comes to kill.
const testPauseLimit = time.Minute

// testSteps counts the steps of the injection while the hook is set.
var testSteps int

// testPause returns the hook that the parasites call after each step, or
// nil when the environment does not ask for it.
func testPause(stderr io.Writer) func(string) {
	v, ok := os.LookupEnv(testPauseEnv)
	if !ok {
		return nil
	}
	v, run := strings.CutSuffix(v, "/run")
	at, err := strconv.Atoi(v)
	if err != nil {
		at = -1
	}
	return func(what string) {
		switch {
		case testSteps != at:
		case run:
			fmt.Fprintf(stderr, "ckpt-scan: test hook: at injection step %d: %s\n", at, what)
		default:
			fmt.Fprintf(stderr, "ckpt-scan: test hook: paused after injection step %d: %s\n",
				at, what)
			time.Sleep(testPauseLimit)
		}
		testSteps++
	}
}

// testPauseDone says how many steps the injection took, when the hook is
// set.
func testPauseDone(stderr io.Writer) {
	if _, ok := os.LookupEnv(testPauseEnv); ok {
		fmt.Fprintf(stderr, "ckpt-scan: test hook: %d injection steps\n", testSteps)
	}
}
