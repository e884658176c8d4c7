// pidns.c: a parent and a child that count in their own memory, for
// tests/pidns_test.go.
//
// Each of the two keeps, in the globals below, its count and what
// getpid() says, updated every millisecond. The parent prints "READY PID
// CHILD ADDR" where ADDR is the address of `state` (the same in both).
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>
#include <unistd.h>

struct {
	volatile long count;
	volatile long pid;
} state;

static void count(void)
{
	struct timespec ts = {0, 1000 * 1000};
	for (;;) {
		state.pid = getpid();
		state.count++;
		nanosleep(&ts, NULL);
	}
}

int main(void)
{
	pid_t child = fork();
	if (child < 0) {
		perror("fork");
		return 1;
	}
	if (child == 0)
		count();
	printf("READY %d %d %p\n", (int)getpid(), (int)child, (void *)&state);
	fflush(stdout);
	count();
}
