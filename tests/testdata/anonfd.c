/* anonfd: holds an eventfd with a counter of 5, an EFD_SEMAPHORE eventfd
 * with 3, a signalfd on SIGUSR1 (blocked), a timerfd every 100 ms, a
 * one-shot timerfd that has expired and not been read, an absolute
 * timerfd (TFD_TIMER_ABSTIME) 1000 s ahead on CLOCK_MONOTONIC, and an epoll
 * watching the first eventfd, the signalfd and the periodic timerfd with
 * distinct data values. Prints "READY pid".
 *
 * On every SIGUSR2 it checks all of them, after the test sent it a
 * SIGUSR1, and prints one "OK what" or "BAD what" line per check, then
 * "DONE round". Each round leaves the fds as it found them: counters
 * written back, the one-shot timer armed again.
 *
 * Usage: anonfd */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define DATA_EVENTFD 0xe7e7000000000001ull
#define DATA_SIGNALFD 0x5167000000000002ull
#define DATA_TIMERFD 0x71e7000000000003ull

static int counter, sem, sigfd, periodic, oneshot, absolute, ep, round_no;
static volatile sig_atomic_t go;

static void on_usr2(int s) { (void)s; go = 1; }

static void ok(int cond, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void ok(int cond, const char *fmt, ...)
{
	va_list ap;
	printf("%s ", cond ? "OK" : "BAD");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static long long ms(const struct timespec *t)
{
	return t->tv_sec * 1000LL + t->tv_nsec / 1000000;
}

static void arm_oneshot(void)
{
	struct itimerspec its = {{0, 0}, {0, 10000000}};
	timerfd_settime(oneshot, 0, &its, 0);
}

/* check_flags checks O_NONBLOCK and FD_CLOEXEC of fd. */
static void check_flags(int fd, const char *name, int nonblock, int cloexec)
{
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
	ok(!!(fl & O_NONBLOCK) == nonblock && !!(fdfl & FD_CLOEXEC) == cloexec,
	   "%s flags: O_NONBLOCK %d FD_CLOEXEC %d", name, !!(fl & O_NONBLOCK),
	   !!(fdfl & FD_CLOEXEC));
}

/* check_epoll waits up to 2 s for the three data values. */
static void check_epoll(void)
{
	int seen_e = 0, seen_s = 0, seen_t = 0, other = 0;
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		struct epoll_event evs[8];
		int n = epoll_wait(ep, evs, 8, 200);
		for (int i = 0; i < n; i++) {
			uint64_t d = evs[i].data.u64;
			seen_e |= d == DATA_EVENTFD;
			seen_s |= d == DATA_SIGNALFD;
			seen_t |= d == DATA_TIMERFD;
			other |= d != DATA_EVENTFD && d != DATA_SIGNALFD && d != DATA_TIMERFD;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (!(seen_e && seen_s && seen_t) && ms(&now) - ms(&start) < 2000);
	ok(seen_e && seen_s && seen_t && !other,
	   "epoll_wait data: eventfd %d signalfd %d timerfd %d other %d", seen_e, seen_s, seen_t,
	   other);
}

static void check_eventfds(void)
{
	uint64_t v = 0;
	ssize_t n = read(counter, &v, 8);
	ok(n == 8 && v == 5, "eventfd counter %llu, want 5", (unsigned long long)v);
	v = 5;
	write(counter, &v, 8);

	int reads = 0;
	while (read(sem, &v, 8) == 8 && v == 1 && reads < 10)
		reads++;
	ok(reads == 3 && errno == EAGAIN, "semaphore eventfd read 1 %d times, want 3", reads);
	v = 3;
	write(sem, &v, 8);
}

static void check_signalfd(void)
{
	struct signalfd_siginfo si;
	ssize_t n = read(sigfd, &si, sizeof si);
	ok(n == sizeof si && si.ssi_signo == SIGUSR1, "signalfd read signal %d, want SIGUSR1",
	   n == sizeof si ? (int)si.ssi_signo : -1);
	n = read(sigfd, &si, sizeof si);
	ok(n < 0 && errno == EAGAIN, "signalfd then empty");
}

static void check_timerfds(void)
{
	uint64_t v = 0;
	struct itimerspec its;
	struct timespec a, b;

	/* The one-shot timer expired long ago, once. */
	ssize_t n = read(oneshot, &v, 8);
	ok(n == 8 && v == 1, "one-shot timerfd unread expirations %llu, want 1",
	   (unsigned long long)v);
	n = read(oneshot, &v, 8);
	ok(n < 0 && errno == EAGAIN, "one-shot timerfd then empty");
	arm_oneshot();

	n = read(periodic, &v, 8);
	ok(n == 8 && v >= 1, "periodic timerfd expirations %llu, want 1 or more",
	   (unsigned long long)v);
	timerfd_gettime(periodic, &its);
	ok(its.it_interval.tv_sec == 0 && its.it_interval.tv_nsec == 100000000 &&
	   ms(&its.it_value) <= 100, "periodic timerfd interval %lld ms, next in %lld ms",
	   ms(&its.it_interval), ms(&its.it_value));

	/* Once the ticks are read, a blocking read returns at the next expiry,
	 * within 100 ms (and the scheduler's delays, on a busy machine). */
	read(periodic, &v, 8);
	clock_gettime(CLOCK_MONOTONIC, &a);
	read(periodic, &v, 8);
	clock_gettime(CLOCK_MONOTONIC, &b);
	long long gap = ms(&b) - ms(&a);
	ok(v == 1 && gap <= 300, "periodic timerfd fires again in %lld ms, want 100 or less",
	   gap);

	/* Unread expirations pile up: one per 100 ms since the last read. */
	usleep(350000);
	n = read(periodic, &v, 8);
	clock_gettime(CLOCK_MONOTONIC, &a);
	long long want = (ms(&a) - ms(&b)) / 100;
	ok(n == 8 && v >= 3 && (long long)v >= want - 1 && (long long)v <= want + 1,
	   "periodic timerfd %llu expirations in %lld ms", (unsigned long long)v, ms(&a) - ms(&b));
}

/* check_absolute checks that the absolute timer is still absolute, as
 * its fdinfo says, and has the time left it had. */
static void check_absolute(void)
{
	char path[64], buf[512];
	struct itimerspec its;
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", absolute);
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = 0;
	timerfd_gettime(absolute, &its);
	ok(strstr(buf, "settime flags: 01\n") && its.it_value.tv_sec > 900 &&
	   its.it_value.tv_sec < 1000 && its.it_interval.tv_sec == 7,
	   "absolute timerfd: %lld s left, interval %lld s, TFD_TIMER_ABSTIME %d",
	   (long long)its.it_value.tv_sec, (long long)its.it_interval.tv_sec,
	   strstr(buf, "settime flags: 01\n") != 0);
}

static void check(void)
{
	check_epoll();
	check_eventfds();
	check_signalfd();
	check_timerfds();
	check_absolute();
	check_flags(counter, "eventfd", 1, 0);
	check_flags(sem, "semaphore eventfd", 1, 1);
	check_flags(sigfd, "signalfd", 1, 1);
	check_flags(periodic, "periodic timerfd", 0, 0);
	check_flags(oneshot, "one-shot timerfd", 1, 1);
	check_flags(ep, "epoll", 0, 1);
	printf("DONE %d\n", round_no++);
	fflush(stdout);
}

static int add(int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = {.events = events, .data.u64 = data};
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

int main(void)
{
	struct sigaction sa;
	sigset_t usr1, wait;
	uint64_t five = 5;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, 0);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigaddset(&usr1, SIGUSR2);
	sigprocmask(SIG_BLOCK, &usr1, 0);
	sigdelset(&usr1, SIGUSR2);
	sigfillset(&wait);
	sigdelset(&wait, SIGUSR2);

	counter = eventfd(0, EFD_NONBLOCK);
	write(counter, &five, 8);
	sem = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
	sigfd = signalfd(-1, &usr1, SFD_NONBLOCK | SFD_CLOEXEC);
	periodic = timerfd_create(CLOCK_MONOTONIC, 0);
	struct itimerspec its = {{0, 100000000}, {0, 100000000}};
	timerfd_settime(periodic, 0, &its, 0);
	oneshot = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	arm_oneshot();
	absolute = timerfd_create(CLOCK_MONOTONIC, 0);
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	struct itimerspec at = {{7, 0}, {now.tv_sec + 1000, 0}};
	timerfd_settime(absolute, TFD_TIMER_ABSTIME, &at, 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (counter < 0 || absolute < 0 || sem < 0 || sigfd < 0 || periodic < 0 || oneshot < 0 || ep < 0 ||
	    add(counter, EPOLLIN, DATA_EVENTFD) || add(sigfd, EPOLLIN | EPOLLET, DATA_SIGNALFD) ||
	    add(periodic, EPOLLIN, DATA_TIMERFD)) {
		perror("anonfd: setup");
		return 1;
	}
	printf("READY %d\n", getpid());
	fflush(stdout);
	for (;;) {
		sigsuspend(&wait);
		if (go) {
			go = 0;
			check();
		}
	}
}
