/* files_tasks: files shared by two processes, for tests/files_test.go.
 *
 * Usage: files_tasks DIR
 *
 * Opens DIR/g.dat (1 MiB of a pattern, offset 1000), then unlinks it: a
 * ghost. Opens DIR/l.dat (linked, offset 500). Forks: the child inherits
 * both descriptions (fds 3 and 4) and opens the ghost once more through
 * /proc/self/fd/3 (fd 5: the same file, a description of its own, offset
 * 77). Prints "READY PARENT CHILD" and waits. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define MIB (1 << 20)

static void die(const char *what)
{
	perror(what);
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: files_tasks DIR\n");
		return 2;
	}
	char g[4096], l[4096];
	snprintf(g, sizeof g, "%s/g.dat", argv[1]);
	snprintf(l, sizeof l, "%s/l.dat", argv[1]);
	int fd = open(g, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd != 3)
		die("g.dat is not fd 3");
	static unsigned char buf[MIB];
	for (int i = 0; i < MIB; i++)
		buf[i] = (unsigned char)(i * 131 + (i >> 11) + 5);
	if (write(fd, buf, MIB) != MIB || lseek(fd, 1000, SEEK_SET) != 1000)
		die("g.dat");
	if (unlink(g) < 0)
		die("unlink");
	int lfd = open(l, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (lfd != 4 || write(lfd, buf, 4096) != 4096 || lseek(lfd, 500, SEEK_SET) != 500)
		die("l.dat");
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		int again = open("/proc/self/fd/3", O_RDWR);
		if (again != 5 || lseek(again, 77, SEEK_SET) != 77)
			die("reopen");
		for (;;)
			pause();
	}
	printf("READY %d %d\n", (int)getpid(), (int)child);
	fflush(stdout);
	for (;;)
		pause();
}
