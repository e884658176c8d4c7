/* pidtaker: starts a process with the given PID (clone3 with set_tid,
 * which needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN) that sleeps until
 * killed, with no fd open, prints that PID and exits. The sleeper is adopted by init.
 *
 * Usage: pidtaker PID */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	pid_t want = argc > 1 ? atoi(argv[1]) : 0;
	struct clone_args args;

	memset(&args, 0, sizeof(args));
	args.exit_signal = SIGCHLD;
	args.set_tid = (uint64_t)(uintptr_t)&want;
	args.set_tid_size = 1;
	long pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0) {
		fprintf(stderr, "pidtaker: clone3 pid %d: %s\n", want, strerror(errno));
		return 1;
	}
	if (pid == 0) {
		/* Hold no pipe of whoever waits for the output. */
		close(0);
		close(1);
		close(2);
		for (;;)
			pause();
	}
	printf("%ld\n", pid);
	return 0;
}
