/* pipes: pipes with bytes in flight, for the checkpoint tests.
 *
 * Byte i of stream S is pat(S, i), so every byte can be checked.
 *
 *	pipes all FIFO
 *		A: a pipe (pipe2 O_CLOEXEC) holding 40000 bytes of stream 1, its
 *		read end made O_NONBLOCK; B: a pipe enlarged to 1 MiB with
 *		F_SETPIPE_SZ and filled with 1 MiB of stream 2, its write end
 *		O_NONBLOCK; F: the named pipe FIFO opened O_RDWR, holding 5000
 *		bytes of stream 3; C: the write end of an empty pipe whose read
 *		end is closed. It keeps every end, prints
 *
 *			READY a0 a1 b0 b1 f c1
 *
 *		(the fd numbers) and on every SIGUSR1 checks the flags, buffer
 *		sizes and bytes in flight of each pipe, reads every byte and
 *		checks it, writes and reads back some more, and checks that a
 *		write to C fails with EPIPE; then prints "OK round=N ..." or
 *		"BAD round=N: what".
 *	pipes stdin N
 *		prints READY, and on SIGUSR1 reads its stdin to end of file and
 *		checks that it got the N bytes of stream 4: "OK stdin n=N eof".
 *	pipes gen N
 *		writes the N bytes of stream 4 to stdout and exits.
 *	pipes tree -
 *		a parent and its child. P: a pipe holding 40000 bytes of stream
 *		1 from the parent, which keeps its write end, to the child, whose
 *		read end is an open of its own (through /proc/self/fd): two open
 *		file descriptions of one pipe. S: a pipe holding 5000 bytes of
 *		stream 3, both ends in both, inherited: shared descriptions. The
 *		parent prints "PARENT pid child p1 s0 s1" and the child, once its
 *		read end of P is open, "CHILD pid q" (fd numbers). On SIGUSR1 the
 *		parent writes 3000 more bytes to P and reads the first 2500
 *		bytes of S, and prints "OK parent"; on SIGUSR1 the child reads
 *		the 43000 bytes of P and the last 2500 of S, finds S empty, and
 *		prints "OK child". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define A_BYTES 40000
#define B_BYTES (1 << 20)
#define F_BYTES 5000
#define MORE 3000

static volatile sig_atomic_t go;

static void on_usr1(int sig) { (void)sig; go = 1; }

static uint8_t pat(unsigned s, size_t i)
{
	uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)s << 56;
	x ^= x >> 29;
	return (uint8_t)(x * 0xBF58476D1CE4E5B9ull >> 56);
}

static char bad[256];

static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(bad, sizeof bad, fmt, ap);
	va_end(ap);
	return -1;
}

/* put writes n bytes of stream s from offset off to fd, waiting for room. */
static int put(int fd, unsigned s, size_t off, size_t n)
{
	uint8_t buf[65536];
	while (n > 0) {
		size_t k = n < sizeof buf ? n : sizeof buf;
		for (size_t i = 0; i < k; i++)
			buf[i] = pat(s, off + i);
		ssize_t w = write(fd, buf, k);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			usleep(1000);
			continue;
		}
		if (w <= 0)
			return -1;
		off += w;
		n -= w;
	}
	return 0;
}

/* get reads exactly n bytes of fd and checks they are stream s from off. */
static int get(int fd, const char *name, unsigned s, size_t off, size_t n)
{
	uint8_t buf[65536];
	size_t at = off;
	while (at < off + n) {
		size_t k = off + n - at < sizeof buf ? off + n - at : sizeof buf;
		ssize_t r = read(fd, buf, k);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return fail("%s: empty after %zu bytes, want %zu", name, at, off + n);
		if (r < 0)
			return fail("%s: read at %zu: %s", name, at, strerror(errno));
		if (r == 0)
			return fail("%s: end of file after %zu bytes, want %zu", name, at, off + n);
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != pat(s, at + i))
				return fail("%s: byte %zu is %u, want %u", name, at + i, buf[i],
					    pat(s, at + i));
		at += r;
	}
	return 0;
}

/* flags checks the access mode, O_NONBLOCK and FD_CLOEXEC of fd. */
static int flags(int fd, const char *name, int acc, int nonblock, int cloexec)
{
	int fl = fcntl(fd, F_GETFL), fdf = fcntl(fd, F_GETFD);
	if (fl < 0 || fdf < 0)
		return fail("%s: fcntl: %s", name, strerror(errno));
	if ((fl & O_ACCMODE) != acc || !!(fl & O_NONBLOCK) != nonblock ||
	    !!(fdf & FD_CLOEXEC) != cloexec)
		return fail("%s: flags %o fd flags %o, want mode %o nonblock %d cloexec %d",
			    name, fl, fdf, acc, nonblock, cloexec);
	return 0;
}

/* state checks the buffer size and bytes in flight of the pipe of fd. */
static int state(int fd, const char *name, int size, int bytes)
{
	int sz = fcntl(fd, F_GETPIPE_SZ), n = -1;
	if (ioctl(fd, FIONREAD, &n) < 0 || sz != size || n != bytes)
		return fail("%s: buffer %d bytes holding %d, want %d holding %d", name, sz, n,
			    size, bytes);
	return 0;
}

static int a0, a1, b0, b1, f, c1;

static int check(void)
{
	if (flags(a0, "A read end", O_RDONLY, 1, 1) || flags(a1, "A write end", O_WRONLY, 0, 1) ||
	    flags(b0, "B read end", O_RDONLY, 0, 0) || flags(b1, "B write end", O_WRONLY, 1, 0) ||
	    flags(f, "F", O_RDWR, 0, 0) || flags(c1, "C write end", O_WRONLY, 0, 0))
		return -1;
	if (state(a0, "A", 65536, A_BYTES) || state(b0, "B", B_BYTES, B_BYTES) ||
	    state(f, "F", 65536, F_BYTES) || state(c1, "C", 65536, 0))
		return -1;
	if (get(a0, "A", 1, 0, A_BYTES) || get(b0, "B", 2, 0, B_BYTES) || get(f, "F", 3, 0, F_BYTES))
		return -1;
	/* Nothing more in flight, and the pipes still carry bytes. */
	char c;
	if (read(a0, &c, 1) != -1 || errno != EAGAIN)
		return fail("A: a byte more than the %d in flight", A_BYTES);
	if (put(a1, 1, A_BYTES, MORE) || get(a0, "A again", 1, A_BYTES, MORE) ||
	    put(b1, 2, B_BYTES, B_BYTES) || get(b0, "B again", 2, B_BYTES, B_BYTES) ||
	    put(f, 3, F_BYTES, MORE) || get(f, "F again", 3, F_BYTES, MORE))
		return bad[0] ? -1 : fail("write more: %s", strerror(errno));
	if (write(c1, "x", 1) != -1 || errno != EPIPE)
		return fail("C: a write to a pipe without a reader did not fail with EPIPE");
	return 0;
}

static int setup(const char *fifo)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	a0 = p[0], a1 = p[1];
	if (put(a1, 1, 0, A_BYTES) || fcntl(a0, F_SETFL, O_NONBLOCK) < 0)
		return -1;
	if (pipe(p) < 0)
		return -1;
	b0 = p[0], b1 = p[1];
	if (fcntl(b1, F_SETPIPE_SZ, B_BYTES) != B_BYTES || fcntl(b1, F_SETFL, O_NONBLOCK) < 0 ||
	    put(b1, 2, 0, B_BYTES))
		return -1;
	if ((f = open(fifo, O_RDWR)) < 0 || put(f, 3, 0, F_BYTES))
		return -1;
	if (pipe(p) < 0)
		return -1;
	close(p[0]);
	c1 = p[1];
	return 0;
}

static void wait_usr1(void)
{
	sigset_t none;
	sigemptyset(&none);
	while (!go)
		sigsuspend(&none);
	go = 0;
}

static int read_stdin(size_t n)
{
	if (get(0, "stdin", 4, 0, n))
		return -1;
	char c;
	ssize_t r = read(0, &c, 1);
	if (r != 0)
		return fail("stdin: no end of file after %zu bytes (read gave %zd)", n, r);
	return 0;
}

/* tree runs mode tree. */
static int tree(void)
{
	int p[2], s[2];
	if (pipe(p) < 0 || pipe(s) < 0 || put(p[1], 1, 0, A_BYTES) || put(s[1], 3, 0, F_BYTES))
		return 1;
	pid_t child = fork();
	if (child < 0)
		return 1;
	if (child == 0) {
		char path[64];
		snprintf(path, sizeof path, "/proc/self/fd/%d", p[0]);
		int q = open(path, O_RDONLY);
		close(p[0]);
		close(p[1]);
		printf("CHILD %d %d\n", getpid(), q);
		wait_usr1();
		int n = -1;
		if (q < 0 || get(q, "P", 1, 0, A_BYTES + MORE) || get(s[0], "S", 3, 2500, 2500))
			printf("BAD child: %s\n", q < 0 ? strerror(errno) : bad);
		else if (ioctl(s[0], FIONREAD, &n) < 0 || n != 0)
			printf("BAD child: S holds %d bytes more\n", n);
		else
			printf("OK child\n");
		for (;;)
			pause();
	}
	close(p[0]);
	printf("PARENT %d %d %d %d %d\n", getpid(), child, p[1], s[0], s[1]);
	wait_usr1();
	if (put(p[1], 1, A_BYTES, MORE) || get(s[0], "S", 3, 0, 2500))
		printf("BAD parent: %s\n", bad[0] ? bad : strerror(errno));
	else
		printf("OK parent\n");
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	if (strcmp(argv[1], "gen") == 0)
		return put(1, 4, 0, strtoul(argv[2], 0, 10)) ? 1 : 0;

	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, 0);
	signal(SIGUSR1, on_usr1);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, 0, _IOLBF, 0);

	if (strcmp(argv[1], "tree") == 0)
		return tree();
	if (strcmp(argv[1], "stdin") == 0) {
		size_t n = strtoul(argv[2], 0, 10);
		printf("READY\n");
		wait_usr1();
		if (read_stdin(n))
			printf("BAD stdin: %s\n", bad);
		else
			printf("OK stdin n=%zu eof\n", n);
		for (;;)
			pause();
	}
	if (setup(argv[2])) {
		printf("BAD setup: %s\n", strerror(errno));
		return 1;
	}
	printf("READY %d %d %d %d %d %d\n", a0, a1, b0, b1, f, c1);
	for (int round = 1;; round++) {
		wait_usr1();
		bad[0] = 0;
		if (check())
			printf("BAD round=%d: %s\n", round, bad);
		else
			printf("OK round=%d a=%d b=%d f=%d\n", round, A_BYTES, B_BYTES, F_BYTES);
	}
}
