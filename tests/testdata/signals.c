/* signals: pending signals, interval timers and POSIX timers.
 *
 * It queues to itself, blocked: SIGUSR2 with value 42, SIGRTMIN+1 twice
 * (values 1 then 2), and for its thread alone SIGRTMIN+3 with value 7. It
 * arms ITIMER_REAL (3600 s) and ITIMER_VIRTUAL (1000 s, interval 5 s), and
 * three POSIX timers, one deleted so the IDs have a gap: a periodic one on
 * CLOCK_MONOTONIC every 50 ms signalling SIGRTMIN+2 with value 77, and a
 * SIGEV_NONE one on CLOCK_REALTIME 1000 s away.
 *
 * On SIGUSR1 it checks all of it, prints OK or BAD lines and "DONE n",
 * and queues the signals it took again. Usage: signals DIR (unused) */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t go, ticks, badvalue;
static timer_t periodic, quiet, gone;
static int round_no;

static void on_usr1(int s) { (void)s; go = 1; }

static void on_tick(int s, siginfo_t *si, void *u)
{
	(void)s; (void)u;
	if (si->si_value.sival_int != 77)
		badvalue = 1;
	ticks++;
}

static void ok(int cond, const char *what)
{
	printf("%s %s\n", cond ? "OK" : "BAD", what);
}

static void queue_all(void)
{
	union sigval v;
	siginfo_t si;

	v.sival_int = 42;
	sigqueue(getpid(), SIGUSR2, v);
	v.sival_int = 1;
	sigqueue(getpid(), SIGRTMIN + 1, v);
	v.sival_int = 2;
	sigqueue(getpid(), SIGRTMIN + 1, v);
	memset(&si, 0, sizeof si);
	si.si_signo = SIGRTMIN + 3;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = 7;
	syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGRTMIN + 3, &si);
}

/* take takes one pending sig and checks its value and sender. */
static void take(int sig, int value, const char *what)
{
	sigset_t one;
	siginfo_t si;
	struct timespec zero = {0, 0};

	sigemptyset(&one);
	sigaddset(&one, sig);
	int got = sigtimedwait(&one, &si, &zero);
	ok(got == sig && si.si_value.sival_int == value && si.si_code == SI_QUEUE &&
	   si.si_pid == getpid(), what);
}

static long left_ms(timer_t t, long *interval_ms)
{
	struct itimerspec its;
	if (timer_gettime(t, &its) != 0)
		return -1;
	*interval_ms = its.it_interval.tv_sec * 1000 + its.it_interval.tv_nsec / 1000000;
	return its.it_value.tv_sec * 1000 + its.it_value.tv_nsec / 1000000;
}

static void check(const sigset_t *waitmask)
{
	sigset_t pend;
	struct itimerval it;
	long iv, left;
	char line[128];

	sigpending(&pend);
	ok(sigismember(&pend, SIGUSR2) && sigismember(&pend, SIGRTMIN + 1) &&
	   sigismember(&pend, SIGRTMIN + 3), "pending set");
	take(SIGUSR2, 42, "SIGUSR2 value 42");
	take(SIGRTMIN + 1, 1, "SIGRTMIN+1 first, value 1");
	take(SIGRTMIN + 1, 2, "SIGRTMIN+1 second, value 2");
	take(SIGRTMIN + 3, 7, "thread's SIGRTMIN+3 value 7");
	sigpending(&pend);
	ok(!sigismember(&pend, SIGUSR2) && !sigismember(&pend, SIGRTMIN + 1),
	   "nothing more pending");
	queue_all();

	getitimer(ITIMER_REAL, &it);
	snprintf(line, sizeof line, "ITIMER_REAL left %lds", (long)it.it_value.tv_sec);
	ok(it.it_value.tv_sec > 3600 - 120 && it.it_value.tv_sec <= 3600, line);
	getitimer(ITIMER_VIRTUAL, &it);
	ok(it.it_value.tv_sec > 990 && it.it_interval.tv_sec == 5, "ITIMER_VIRTUAL");

	left = left_ms(quiet, &iv);
	snprintf(line, sizeof line, "quiet timer left %ldms", left);
	ok(left > 1000000 - 120000 && left <= 1000000 && iv == 0, line);
	left = left_ms(periodic, &iv);
	ok(left >= 0 && left <= 50 && iv == 50, "periodic timer armed, 50ms interval");
	ok(timer_gettime(gone, &(struct itimerspec){0}) != 0, "deleted timer stays deleted");

	int before = ticks;
	struct timespec wait = {0, 400000000};
	while (nanosleep(&wait, &wait) != 0)
		;
	snprintf(line, sizeof line, "periodic timer ticks %d in 400ms", ticks - before);
	ok(ticks - before >= 3 && !badvalue, line);
	(void)waitmask;
	printf("DONE %d signals\n", round_no++);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t block;
	struct sigevent ev;
	struct itimerval it;
	struct itimerspec its;

	(void)argc; (void)argv;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, 0);
	sa.sa_sigaction = on_tick;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGRTMIN + 2, &sa, 0);

	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGRTMIN + 1);
	sigaddset(&block, SIGRTMIN + 3);
	sigprocmask(SIG_BLOCK, &block, 0);
	queue_all();

	memset(&it, 0, sizeof it);
	it.it_value.tv_sec = 3600;
	setitimer(ITIMER_REAL, &it, 0);
	it.it_value.tv_sec = 1000;
	it.it_interval.tv_sec = 5;
	setitimer(ITIMER_VIRTUAL, &it, 0);

	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_NONE;
	timer_t first;
	timer_create(CLOCK_REALTIME, &ev, &first); /* deleted below: a gap */
	timer_create(CLOCK_REALTIME, &ev, &quiet);
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGRTMIN + 2;
	ev.sigev_value.sival_int = 77;
	timer_create(CLOCK_MONOTONIC, &ev, &periodic);
	gone = first;
	timer_delete(first);
	memset(&its, 0, sizeof its);
	its.it_value.tv_sec = 1000;
	timer_settime(quiet, 0, &its, 0);
	its.it_value.tv_sec = 0;
	its.it_value.tv_nsec = its.it_interval.tv_nsec = 50000000;
	timer_settime(periodic, 0, &its, 0);

	printf("READY %d timers %ld %ld\n", getpid(), (long)(intptr_t)quiet,
	       (long)(intptr_t)periodic);
	fflush(stdout);
	for (;;) {
		sigsuspend(&block); /* the mask it runs with: the same set */
		if (go) {
			go = 0;
			check(&block);
		}
	}
}
