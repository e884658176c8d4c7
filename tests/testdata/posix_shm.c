/* posix_shm: two processes sharing POSIX shared memory (shm_open), for
 * the checkpoint tests.
 *
 * The parent opens two objects in /dev/shm and maps both MAP_SHARED:
 * NAME, which stays (its fd closed, only the mapping is kept), and
 * NAME-gone, which it removes at once (shm_unlink) but keeps open and
 * mapped. Then it forks one child. Both loop: under a futex lock in NAME
 * they add one to the total and to their own slot in both objects.
 *
 * The parent prints "READY CHILD GONEFD" and then, on every SIGUSR1,
 * under the lock:
 *
 *	OK total=T linked=P,C gone=P,C
 *
 * or BAD when a total is not the sum of its slots or the totals differ.
 *
 * Usage: posix_shm NAME */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SIZE 8192

struct block {
	int lock;
	long total;
	long slot[2];
};

static struct block *linked, *gone;
static volatile sig_atomic_t report;

static void on_usr1(int sig) { (void)sig; report = 1; }

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void futex(int *addr, int op, int val)
{
	syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

/* lock takes the futex lock: 0 free, 1 taken, 2 taken with waiters. */
static void lock(int *l)
{
	int c = 0;
	if (__atomic_compare_exchange_n(l, &c, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return;
	if (c != 2)
		c = __atomic_exchange_n(l, 2, __ATOMIC_ACQUIRE);
	while (c != 0) {
		futex(l, FUTEX_WAIT, 2);
		c = __atomic_exchange_n(l, 2, __ATOMIC_ACQUIRE);
	}
}

static void unlock(int *l)
{
	if (__atomic_exchange_n(l, 0, __ATOMIC_RELEASE) == 2)
		futex(l, FUTEX_WAKE, 1);
}

static void step(int me)
{
	lock(&linked->lock);
	linked->total++;
	linked->slot[me]++;
	gone->total++;
	gone->slot[me]++;
	unlock(&linked->lock);
}

static void print_report(void)
{
	lock(&linked->lock);
	long t = linked->total;
	int ok = linked->slot[0] + linked->slot[1] == t && gone->total == t &&
		 gone->slot[0] + gone->slot[1] == t;
	printf("%s total=%ld linked=%ld,%ld gone=%ld,%ld\n", ok ? "OK" : "BAD", t,
	       linked->slot[0], linked->slot[1], gone->slot[0], gone->slot[1]);
	fflush(stdout);
	unlock(&linked->lock);
}

static struct block *open_map(const char *name, int *fdp)
{
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || ftruncate(fd, SIZE) < 0)
		die(name);
	void *p = mmap(0, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	*fdp = fd;
	return p;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	char gone_name[256];
	snprintf(gone_name, sizeof gone_name, "%s-gone", argv[1]);

	int fd, gone_fd;
	linked = open_map(argv[1], &fd);
	close(fd);
	gone = open_map(gone_name, &gone_fd);
	if (shm_unlink(gone_name) < 0)
		die("shm_unlink");

	pid_t kid = fork();
	if (kid < 0)
		die("fork");
	if (kid == 0)
		for (;;) {
			step(1);
			usleep(500);
		}

	signal(SIGUSR1, on_usr1);
	printf("READY %d %d\n", kid, gone_fd);
	fflush(stdout);
	for (;;) {
		step(0);
		if (report) {
			report = 0;
			print_report();
		}
		usleep(500);
	}
}
