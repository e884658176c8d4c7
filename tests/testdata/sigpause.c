/* sigpause: waits in pause() for SIGUSR1, for tests/restart_test.go.
 * Prints "READY" then, each time pause returns after the handler ran,
 * "WOKE N" with the number of handler runs so far. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static volatile sig_atomic_t runs;

static void on_usr1(int sig)
{
	(void)sig;
	runs++;
}

int main(void)
{
	struct sigaction sa = {.sa_handler = on_usr1};
	sigaction(SIGUSR1, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("READY\n");
	for (int seen = 0;;) {
		while (runs == seen)
			pause();
		seen = runs;
		printf("WOKE %d\n", seen);
	}
}
