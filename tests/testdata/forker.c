/* forker: a tree that changes all the time. Every millisecond the root
 * forks a child that lives up to 4 ms: one child in three first forks a
 * grandchild that exits at once, one in five execs /bin/true. The root
 * reaps what has exited (so there are zombies now and then), and every
 * 10 ms prints the next number on a line of its own.
 *
 * Usage: forker */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	setvbuf(stdout, 0, _IOLBF, 0);
	printf("READY\n");
	for (unsigned long long c = 0;; c++) {
		pid_t pid = fork();
		if (pid == 0) {
			if (c % 3 == 0 && fork() == 0)
				_exit(0);
			if (c % 5 == 0)
				execl("/bin/true", "true", (char *)0);
			usleep((c % 5) * 1000);
			_exit(0);
		}
		while (waitpid(-1, 0, WNOHANG) > 0)
			;
		if (c % 10 == 0)
			printf("%llu\n", c / 10);
		usleep(1000);
	}
}
