/* shm_tree: three processes sharing memory every way Linux offers, for
 * the checkpoint tests.
 *
 * The parent makes, before it forks two children:
 *
 *	anon    MAP_SHARED|MAP_ANONYMOUS memory, which also holds the lock
 *	memfd   a memfd "ckpt-counter", mapped read-write
 *	sealed  a memfd "ckpt-sealed", only held as an fd, sealed with
 *	        F_SEAL_GROW|F_SEAL_SHRINK, read and written with pread/pwrite
 *	ro      a memfd "ckpt-ro" holding a pattern, sealed with F_SEAL_WRITE,
 *	        then mapped read-only (a mapping that may never write)
 *	sysv    a SysV segment with key KEY (hex), mode 0640, attached
 *	dest    a SysV segment of IPC_PRIVATE, attached, then marked for
 *	        removal (IPC_RMID)
 *
 * The children inherit all of them; child 2 also attaches sysv a second
 * time, read-only, at an address of its own, and child 1 attaches dest a
 * second time, unmaps the first page of that attach and makes the last
 * one read-only (two mappings at offsets 1 and 2 pages). Each process
 * then loops: under a futex lock in anon it adds one to the total and to
 * its own slot of every object (anon, memfd, sealed, sysv, dest), so
 * every total is always the same and always the sum of the three slots;
 * child 2 checks that its read-only mapping of sysv reads what the other
 * one holds, child 1 that its second attach of dest reads the mark the
 * parent left in its last page.
 *
 * The parent prints
 *
 *	READY CHILD1 CHILD2 SYSVID DESTID MEMFD SEALED RO
 *
 * (pids, shmids, fd numbers) and then, on every SIGUSR1, under the lock:
 *
 *	OK total=T anon=A0,A1,A2 memfd=... sealed=... sysv=... dest=... ro=R robad=0
 *
 * or BAD with what is wrong; R is how many checks the children made of
 * their second attaches, robad how many failed.
 *
 * Usage: shm_tree KEY */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096

/* block is the counters each object holds. */
struct block {
	long total;
	long slot[3];
};

/* shared is the anonymous shared memory: the lock, its counters, and
 * child 2's report of its read-only mapping. */
struct shared {
	int lock;
	struct block b;
	long ro_checks, ro_bad;
};

static struct shared *anon;
static struct block *memfd_b, *sysv_b, *dest_b;
static const struct block *sysv_ro;
static const char *dest_again;
static const char *ro_map;
static int sealed_fd;
static volatile sig_atomic_t report;

static const char pattern[] = "ckpt read-only memfd pattern";
static const char mark[] = "the last page of dest";

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

static void bump(struct block *b, int me)
{
	b->total++;
	b->slot[me]++;
}

static struct block read_sealed(void)
{
	struct block b;
	if (pread(sealed_fd, &b, sizeof b, 0) != sizeof b)
		die("pread sealed");
	return b;
}

/* step adds one to every object's counters, under the lock. */
static void step(int me)
{
	lock(&anon->lock);
	bump(&anon->b, me);
	bump(memfd_b, me);
	bump(sysv_b, me);
	bump(dest_b, me);
	struct block s = read_sealed();
	bump(&s, me);
	if (pwrite(sealed_fd, &s, sizeof s, 0) != sizeof s)
		die("pwrite sealed");
	if (sysv_ro) {
		anon->ro_checks++;
		if (sysv_ro->total != sysv_b->total || memcmp(ro_map, pattern, sizeof pattern))
			anon->ro_bad++;
	}
	if (dest_again) {
		anon->ro_checks++;
		if (memcmp(dest_again + 2 * PAGE, mark, sizeof mark))
			anon->ro_bad++;
	}
	unlock(&anon->lock);
}

/* good says whether b holds total t, the sum of its slots. */
static int good(const struct block *b, long t)
{
	return b->total == t && b->slot[0] + b->slot[1] + b->slot[2] == t;
}

static void print_block(const char *name, const struct block *b)
{
	printf(" %s=%ld,%ld,%ld", name, b->slot[0], b->slot[1], b->slot[2]);
}

static void print_report(void)
{
	lock(&anon->lock);
	struct block s = read_sealed();
	long t = anon->b.total;
	int ok = good(&anon->b, t) && good(memfd_b, t) && good(sysv_b, t) && good(dest_b, t) &&
		 good(&s, t) && anon->ro_bad == 0 && !memcmp(ro_map, pattern, sizeof pattern);
	printf("%s total=%ld", ok ? "OK" : "BAD", t);
	print_block("anon", &anon->b);
	print_block("memfd", memfd_b);
	print_block("sealed", &s);
	print_block("sysv", sysv_b);
	print_block("dest", dest_b);
	printf(" ro=%ld robad=%ld\n", anon->ro_checks, anon->ro_bad);
	fflush(stdout);
	unlock(&anon->lock);
}

static int make_memfd(const char *name, unsigned flags, size_t size)
{
	int fd = memfd_create(name, flags);
	if (fd < 0 || ftruncate(fd, size) < 0)
		die(name);
	return fd;
}

static void *map(int fd, int prot)
{
	void *p = mmap(0, PAGE, prot, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	key_t key = (key_t)strtoul(argv[1], 0, 16);

	anon = mmap(0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (anon == MAP_FAILED)
		die("mmap anon");

	int mfd = make_memfd("ckpt-counter", MFD_CLOEXEC, 2 * PAGE);
	memfd_b = map(mfd, PROT_READ | PROT_WRITE);

	sealed_fd = make_memfd("ckpt-sealed", MFD_ALLOW_SEALING, PAGE);
	if (fcntl(sealed_fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) < 0)
		die("seal ckpt-sealed");

	int rofd = make_memfd("ckpt-ro", MFD_ALLOW_SEALING, PAGE);
	if (pwrite(rofd, pattern, sizeof pattern, 0) != sizeof pattern ||
	    fcntl(rofd, F_ADD_SEALS, F_SEAL_WRITE) < 0)
		die("seal ckpt-ro");
	ro_map = map(rofd, PROT_READ);

	int sysv = shmget(key, 10000, IPC_CREAT | IPC_EXCL | 0640);
	int dest = shmget(IPC_PRIVATE, 3 * PAGE, IPC_CREAT | 0600);
	if (sysv < 0 || dest < 0)
		die("shmget");
	sysv_b = shmat(sysv, 0, 0);
	dest_b = shmat(dest, 0, 0);
	if (sysv_b == (void *)-1 || dest_b == (void *)-1)
		die("shmat");
	if (shmctl(dest, IPC_RMID, 0) < 0)
		die("IPC_RMID");
	memcpy((char *)dest_b + 2 * PAGE, mark, sizeof mark);

	pid_t kids[2];
	for (int i = 1; i <= 2; i++) {
		kids[i - 1] = fork();
		if (kids[i - 1] < 0)
			die("fork");
		if (kids[i - 1] == 0) {
			if (i == 2) {
				sysv_ro = shmat(sysv, 0, SHM_RDONLY);
				if (sysv_ro == (void *)-1)
					die("shmat read-only");
			}
			if (i == 1) {
				char *p = shmat(dest, 0, 0);
				if (p == (void *)-1 || munmap(p, PAGE) < 0 ||
				    mprotect(p + 2 * PAGE, PAGE, PROT_READ) < 0)
					die("attach dest again");
				dest_again = p;
			}
			for (;;) {
				step(i);
				usleep(500);
			}
		}
	}

	signal(SIGUSR1, on_usr1);
	printf("READY %d %d %d %d %d %d %d\n", kids[0], kids[1], sysv, dest, mfd, sealed_fd, rofd);
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
