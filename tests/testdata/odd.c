/* odd: a process in a state ckpt-scan must refuse, for
 * tests/unsupported_test.go. Prints READY, then waits forever.
 *
 * Usage: odd MODE
 *   seccomp    a seccomp filter that allows every call
 *   clonefiles a child made with clone(CLONE_FILES): one fd table, two processes
 *   threaduid  a thread that set its own uid (setresuid in one thread only)
 *   lock       an flock held on a file of the current directory */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static char stack[65536];

static int idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return 0;
}

static void *own_uid(void *arg)
{
	(void)arg;
	syscall(SYS_setresuid, 1000, 1000, 1000); /* this thread only */
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	if (!strcmp(mode, "seccomp")) {
		struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
		struct sock_fprog prog = {1, &allow};
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
			return 1;
	} else if (!strcmp(mode, "clonefiles")) {
		if (clone(idle, stack + sizeof stack, CLONE_FILES | SIGCHLD, NULL) < 0)
			return 1;
	} else if (!strcmp(mode, "threaduid")) {
		pthread_t t;
		if (pthread_create(&t, NULL, own_uid, NULL))
			return 1;
		usleep(100000);
	} else if (!strcmp(mode, "lock")) {
		int fd = open("locked", O_RDWR | O_CREAT, 0644);
		if (fd < 0 || flock(fd, LOCK_EX))
			return 1;
	} else {
		fprintf(stderr, "usage: odd seccomp|clonefiles|threaduid|lock\n");
		return 2;
	}
	printf("READY\n");
	fflush(stdout);
	idle(NULL);
}
