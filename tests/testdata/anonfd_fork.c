/* anonfd_fork: an eventfd (counter 7), a timerfd every 100 ms and an
 * epoll watching both (data 1 and 2), shared by a process and the child
 * it forks. Prints "READY parent child".
 *
 * On SIGUSR2 each checks them and prints "OK who what" or "BAD who what"
 * lines, then "DONE who round". The parent reads the counter (7) and
 * writes 8; the child then reads 8 and writes 7: one eventfd between the
 * two. The test signals the parent first, waits for its DONE, then the
 * child.
 *
 * Usage: anonfd_fork */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static int efd, tfd, ep, round_no;
static const char *who = "parent";
static volatile sig_atomic_t go;

static void on_usr2(int s) { (void)s; go = 1; }

static void ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ok(int cond, const char *fmt, ...)
{
	va_list ap;
	printf("%s %s ", cond ? "OK" : "BAD", who);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static void check(uint64_t want, uint64_t next)
{
	struct epoll_event evs[4];
	int seen1 = 0, seen2 = 0;
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	/* The eventfd is always ready: wait by the clock for the timer. */
	for (now = start; !(seen1 && seen2) && now.tv_sec - start.tv_sec < 3;
	     clock_gettime(CLOCK_MONOTONIC, &now)) {
		int n = epoll_wait(ep, evs, 4, 100);
		for (int j = 0; j < n; j++) {
			seen1 |= evs[j].data.u64 == 1;
			seen2 |= evs[j].data.u64 == 2;
		}
	}
	ok(seen1 && seen2, "epoll_wait data 1 (eventfd) %d, 2 (timerfd) %d", seen1, seen2);

	uint64_t v = 0;
	ssize_t n = read(efd, &v, 8);
	ok(n == 8 && v == want, "eventfd counter %llu, want %llu", (unsigned long long)v,
	   (unsigned long long)want);
	write(efd, &next, 8);

	n = read(tfd, &v, 8);
	ok(n == 8 && v >= 1, "timerfd expirations %llu", (unsigned long long)v);
	struct itimerspec its;
	timerfd_gettime(tfd, &its);
	ok(its.it_interval.tv_sec == 0 && its.it_interval.tv_nsec == 100000000,
	   "timerfd interval %ld ns", its.it_interval.tv_nsec);
	printf("DONE %s %d\n", who, round_no++);
	fflush(stdout);
}

int main(void)
{
	struct sigaction sa;
	sigset_t block, wait;
	uint64_t seven = 7;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, 0);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, 0);
	sigfillset(&wait);
	sigdelset(&wait, SIGUSR2);

	efd = eventfd(0, EFD_NONBLOCK);
	write(efd, &seven, 8);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	struct itimerspec its = {{0, 100000000}, {0, 100000000}};
	timerfd_settime(tfd, 0, &its, 0);
	ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1};
	epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
	ev.data.u64 = 2;
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);

	fflush(stdout);
	pid_t child = fork();
	if (child == 0)
		who = "child";
	else {
		printf("READY %d %d\n", getpid(), child);
		fflush(stdout);
	}
	for (;;) {
		sigsuspend(&wait);
		if (go) {
			go = 0;
			if (child == 0)
				check(8, 7);
			else
				check(7, 8);
		}
	}
}
