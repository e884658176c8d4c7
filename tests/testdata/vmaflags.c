/* vmaflags: makes anonymous mappings of two pages each, one per
 * attribute madvise or mlock sets (VmFlags dc wf dd hg nh mg sr rr lo lf),
 * with unmapped gaps between them so none merges with another, and fills
 * them with a pattern. Opens the directory DIR, reads one getdents64
 * batch of it and, through a second descriptor, the batch after that one.
 * Then, if UID is given, drops to that uid and gid with RLIMIT_MEMLOCK
 * 0, so only a privileged restorer can lock its memory again. Prints
 * "MAP flag start end" per mapping, "DIRFD fd" and "READY pid".
 *
 * On SIGUSR1 it reads the next batch of DIR on the first descriptor and
 * prints "OK dir" when it is the batch the second descriptor read (no
 * entry of the first batch seen again), "BAD dir ..." otherwise, then
 * "OK pattern" or "BAD pattern" for the mappings' contents, then "DONE".
 *
 * Usage: vmaflags DIR [UID] */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NMAPS 10
#define BATCH 2048
#define MAXNAMES 256

static const struct {
	const char *flag;
	int advice; /* -1: mlock, -2: mlock2 on fault */
} maps[NMAPS] = {
	{"dc", MADV_DONTFORK},   {"wf", MADV_WIPEONFORK}, {"dd", MADV_DONTDUMP},
	{"hg", MADV_HUGEPAGE},   {"nh", MADV_NOHUGEPAGE}, {"mg", MADV_MERGEABLE},
	{"sr", MADV_SEQUENTIAL}, {"rr", MADV_RANDOM},     {"lo", -1},
	{"lf", -2},
};

static char *addr[NMAPS];
static volatile sig_atomic_t go;

static void on_usr1(int s) { (void)s; go = 1; }

/* names reads one getdents64 batch of fd into out and returns how many. */
static int names(int fd, char out[][256])
{
	char buf[BATCH];
	long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
	int k = 0;
	for (long off = 0; off < n && k < MAXNAMES;) {
		unsigned short reclen = *(unsigned short *)(buf + off + 16);
		snprintf(out[k++], 256, "%s", buf + off + 19);
		off += reclen;
	}
	return n < 0 ? -1 : k;
}

static char first[MAXNAMES][256], second[MAXNAMES][256], next[MAXNAMES][256];
static int nfirst, nsecond;

static void check_dir(int fd)
{
	int n = names(fd, next);
	if (n != nsecond || n <= 0) {
		printf("BAD dir: next batch has %d entries, want %d\n", n, nsecond);
		return;
	}
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < nfirst; j++)
			if (!strcmp(next[i], first[j])) {
				printf("BAD dir: %s seen twice\n", next[i]);
				return;
			}
		if (strcmp(next[i], second[i])) {
			printf("BAD dir: entry %d is %s, want %s\n", i, next[i], second[i]);
			return;
		}
	}
	printf("OK dir\n");
}

int main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE);
	if (argc < 2)
		return 2;
	setvbuf(stdout, 0, _IOLBF, 0);
	signal(SIGUSR1, on_usr1);

	char *base = mmap(0, 4 * NMAPS * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED || munmap(base, 4 * NMAPS * page))
		return perror("reserve"), 1;
	for (int i = 0; i < NMAPS; i++) {
		addr[i] = mmap(base + 4 * i * page + page, 2 * page, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (addr[i] == MAP_FAILED)
			return perror("mmap"), 1;
		memset(addr[i], 'a' + i, page); /* the second page stays untouched */
		int r;
		if (maps[i].advice == -1)
			r = mlock(addr[i], 2 * page);
		else if (maps[i].advice == -2)
			r = mlock2(addr[i], 2 * page, MLOCK_ONFAULT);
		else
			r = madvise(addr[i], 2 * page, maps[i].advice);
		if (r)
			return perror(maps[i].flag), 1;
		printf("MAP %s %lx %lx\n", maps[i].flag, (unsigned long)addr[i],
		       (unsigned long)(addr[i] + 2 * page));
	}

	int fd = open(argv[1], O_RDONLY | O_DIRECTORY);
	int peek = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (fd < 0 || peek < 0)
		return perror(argv[1]), 1;
	nfirst = names(fd, first);
	if (names(peek, next) != nfirst)
		return fprintf(stderr, "first batches differ\n"), 1;
	nsecond = names(peek, second);
	close(peek);
	if (nfirst <= 0 || nsecond <= 0)
		return fprintf(stderr, "directory batches %d %d\n", nfirst, nsecond), 1;

	if (argc > 2) {
		uid_t uid = atoi(argv[2]);
		struct rlimit rl = {0, 0};
		if (setrlimit(RLIMIT_MEMLOCK, &rl) || setresgid(uid, uid, uid) ||
		    setresuid(uid, uid, uid))
			return perror("drop"), 1;
	}
	printf("DIRFD %d\n", fd);
	printf("READY %d\n", getpid());
	while (!go)
		pause();

	check_dir(fd);
	int bad = 0;
	for (int i = 0; i < NMAPS; i++)
		for (long j = 0; j < 2 * page; j++)
			bad |= addr[i][j] != (j < page ? 'a' + i : 0);
	printf("%s pattern\n", bad ? "BAD" : "OK");
	printf("DONE\n");
	for (;;)
		pause();
}
