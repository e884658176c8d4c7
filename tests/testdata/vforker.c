/* vforker: vfork()s a child that stops itself before it execs, so the
 * parent waits for it in the kernel (uninterruptible: state D) until the
 * child is continued or killed. Prints "READY parent child". */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("READY %d\n", (int)getpid());
	fflush(stdout);
	pid_t pid = vfork();
	if (pid == 0) {
		raise(SIGSTOP);
		execl("/bin/sleep", "sleep", "1000", (char *)0);
		_exit(1);
	}
	for (;;)
		pause();
}
