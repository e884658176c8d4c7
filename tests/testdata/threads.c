/* threads: a main thread and several pthreads, each with its own state, for
 * the thread checkpoint tests.
 *
 * Workers (N) each hold a distinct TLS value, a name (worker-K), a
 * sigaltstack of their own and a counter they bump every MS milliseconds
 * in a nanosleep loop. Two more threads block in futex waits for good: one in
 * pthread_cond_wait, one in pthread_cond_timedwait with a deadline an hour
 * away. The main thread waits for SIGUSR1 in sigwait; each SIGUSR1 starts a
 * round, in which every thread checks its own state and prints one line:
 *
 *   worker R K tid=T tls=OK|BAD alt=OK|BAD robust=OK|BAD rseq=OK|BAD count=C
 *   waiter R tid=T
 *   timed R tid=T
 *
 * After start it prints "READY" and the TIDs of all its threads.
 *
 * Usage: threads [N [MS]]    (default 4 workers, 1 ms; N at most MAXWORK) */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAXWORK 256

static __thread long tls;
static atomic_int round_no;
static int nwork = 4;
static long sleep_ms = 1;
static atomic_long counts[MAXWORK];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t tcond = PTHREAD_COND_INITIALIZER;
static atomic_int tids[MAXWORK + 3];
static atomic_int started;

/* say writes one line with one write(2): stdout is a file opened with
 * O_APPEND, so lines of different threads never mix. */
static void say(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (write(1, buf, n) != n)
		_exit(3);
}

static int gettid_(void) { return (int)syscall(SYS_gettid); }

/* rseq_registered asks the kernel: registering the same area again gives
 * EBUSY exactly when it is registered. glibc registers 32 bytes (the
 * original struct rseq), whatever __rseq_size says. */
static int rseq_registered(void)
{
	void *area = (char *)__builtin_thread_pointer() + __rseq_offset;
	long r = syscall(SYS_rseq, area, 32, 0, RSEQ_SIG);
	return r == -1 && errno == EBUSY;
}

static void *worker(void *arg)
{
	int k = (int)(long)arg;
	int tid = gettid_();
	tls = 1000L * k + 7;
	tids[k + 1] = tid;

	stack_t ss = {.ss_sp = malloc(65536), .ss_size = 65536};
	if (sigaltstack(&ss, NULL) != 0)
		_exit(4);
	void *head;
	size_t len;
	syscall(SYS_get_robust_list, 0, &head, &len);
	started++;

	int seen = 0;
	struct timespec ms = {sleep_ms / 1000, sleep_ms % 1000 * 1000000};
	for (;;) {
		counts[k]++;
		nanosleep(&ms, NULL);
		int r = round_no;
		if (r == seen)
			continue;
		seen = r;
		stack_t now;
		sigaltstack(NULL, &now);
		void *h2;
		size_t l2;
		syscall(SYS_get_robust_list, 0, &h2, &l2);
		say("worker %d %d tid=%d tls=%s alt=%s robust=%s rseq=%s count=%ld\n", r, k,
		    gettid_(), tls == 1000L * k + 7 && tid == gettid_() ? "OK" : "BAD",
		    now.ss_sp == ss.ss_sp && now.ss_size == ss.ss_size ? "OK" : "BAD",
		    h2 == head && l2 == len ? "OK" : "BAD",
		    rseq_registered() ? "OK" : "BAD", (long)counts[k]);
	}
	return NULL;
}

static void *waiter(void *arg)
{
	int timed = arg != NULL;
	tids[nwork + 1 + timed] = gettid_();
	pthread_mutex_lock(&mu);
	started++;
	int seen = 0;
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 3600;
	for (;;) {
		while (round_no == seen) {
			if (timed)
				pthread_cond_timedwait(&tcond, &mu, &deadline);
			else
				pthread_cond_wait(&cond, &mu);
		}
		seen = round_no;
		say("%s %d tid=%d\n", timed ? "timed" : "waiter", seen, gettid_());
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		nwork = atoi(argv[1]);
	if (argc > 2)
		sleep_ms = atol(argv[2]);
	if (nwork < 1 || nwork > MAXWORK || sleep_ms < 1)
		return 2;
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	/* Every thread inherits the blocked SIGUSR1; only sigwait takes it. */
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	tids[0] = gettid_();

	pthread_t th;
	for (long k = 0; k < nwork; k++) {
		if (pthread_create(&th, NULL, worker, (void *)k) != 0)
			return 1;
		char name[16];
		snprintf(name, sizeof name, "worker-%d", (int)(k % 1000));
		pthread_setname_np(th, name);
	}
	if (pthread_create(&th, NULL, waiter, NULL) != 0 ||
	    pthread_create(&th, NULL, waiter, (void *)1) != 0)
		return 1;
	while (started < nwork + 2)
		usleep(1000);

	static char line[16 * (MAXWORK + 4)] = "READY";
	size_t n = strlen(line);
	for (int i = 0; i < nwork + 3; i++)
		n += snprintf(line + n, sizeof line - n, " %d", tids[i]);
	line[n++] = '\n';
	if (write(1, line, n) != (ssize_t)n)
		return 3;
	for (;;) {
		int sig;
		if (sigwait(&usr1, &sig) != 0)
			continue;
		pthread_mutex_lock(&mu);
		round_no++;
		pthread_cond_broadcast(&cond);
		pthread_cond_broadcast(&tcond);
		pthread_mutex_unlock(&mu);
	}
}
