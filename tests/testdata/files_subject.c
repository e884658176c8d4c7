/* files_subject: holds files in one of the ways of issue 3 (unlinked,
 * replaced, linked elsewhere, sparse, mapped, shared, ...), prints
 * "READY pid", then on every SIGUSR1 checks its own files and prints one
 * "OK name" or "BAD name: why" line per check, then "DONE round bad".
 * Every check leaves the files as it found them, except the append check,
 * whose growth is kept in memory (and so restored with it).
 *
 * Usage: files_subject MODE DIR [ARG]
 *   ghost     a 4 MiB file, unlinked, offset in the middle
 *   replaced  as ghost, then a new file is made at the same name
 *   twice     two unlinked files that had the same name
 *   many      one unlinked file in three fds and a shared mapping
 *   remap     a file unlinked here but still linked as DIR/a
 *   named     a linked file named "x (deleted)", an unlinked "y (deleted)"
 *   sparse    a 4 GiB unlinked file with 8 MiB of data in 4 islands
 *   dense     an unlinked file of ARG MiB, all data
 *   shmap     a shared writable mapping of an unlinked file, written after
 *   dlopen    a library (ARG) loaded, called, then deleted
 *   dup       two fds on one open file description, linked and unlinked
 *   flags     O_APPEND, O_RDONLY, O_WRONLY|O_TRUNC files, linked and unlinked */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1 << 20)
#define MAXFDS 16

/* A tracked fd: what it must look like at every check. */
struct tfd {
	const char *name;
	int fd;
	char link[PATH_MAX + 32]; /* /proc/self/fd/N must read this */
	int flags;                /* F_GETFL */
	off_t pos;
	off_t size;
	unsigned seed;           /* contents: pattern(seed) over [0, size) */
	off_t isl[4], isl_len;   /* or: islands of isl_len bytes, holes elsewhere */
	int nisl;
};

static struct tfd fds[MAXFDS];
static int nfds, bad;
static const char *dir;
static char *map;         /* a shared mapping (many, shmap) */
static size_t map_len;
static unsigned long (*lib_fn)(unsigned long);
static char lib_path[PATH_MAX];
static off_t append_size; /* flags: size of the append files */

static unsigned char pattern(unsigned seed, off_t p)
{
	return (unsigned char)(p * 131 + (p >> 11) + seed * 17);
}

static void die(const char *what)
{
	fprintf(stderr, "files_subject: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void result(int ok, const char *name, const char *fmt, ...)
{
	if (ok) {
		printf("OK %s\n", name);
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	printf("BAD %s: ", name);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	bad++;
}

static char *path(const char *name)
{
	static char buf[8][PATH_MAX];
	static int n;
	char *p = buf[n++ % 8];
	snprintf(p, PATH_MAX, "%s/%s", dir, name);
	return p;
}

/* fill writes pattern(seed) over [0, size) of fd. */
static void fill(int fd, unsigned seed, off_t size)
{
	static unsigned char buf[MIB];
	for (off_t off = 0; off < size; off += MIB) {
		size_t n = size - off < MIB ? size - off : MIB;
		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(seed, off + i);
		if (pwrite(fd, buf, n, off) != (ssize_t)n)
			die("pwrite");
	}
}

/* track opens name in DIR with flags, fills it with pattern(seed) up to
 * size unless it is read-only or appends, and returns its tracked fd. */
static struct tfd *track(const char *label, const char *name, int flags, unsigned seed,
			 off_t size)
{
	struct tfd *t = &fds[nfds++];
	int fd = open(path(name), flags | O_CREAT, 0640);
	if (fd < 0)
		die(name);
	/* pwrite on an O_APPEND fd appends: those are never filled */
	if (size > 0 && (flags & O_ACCMODE) != O_RDONLY && !(flags & O_APPEND))
		fill(fd, seed, size);
	t->name = label;
	t->fd = fd;
	t->flags = fcntl(fd, F_GETFL);
	t->seed = seed;
	t->size = size;
	snprintf(t->link, sizeof t->link, "%s", path(name));
	return t;
}

/* gone unlinks the tracked file's name: its link gains " (deleted)". */
static void gone(struct tfd *t, const char *name)
{
	if (unlink(path(name)) < 0)
		die("unlink");
	strcat(t->link, " (deleted)");
}

static void seekto(struct tfd *t, off_t pos)
{
	if (lseek(t->fd, pos, SEEK_SET) != pos)
		die("lseek");
	t->pos = pos;
}

static int data_ok(struct tfd *t, off_t *at)
{
	static unsigned char buf[MIB];
	int in_island = t->nisl > 0;
	for (off_t off = 0; off < t->size; off += MIB) {
		off_t n = t->size - off < MIB ? t->size - off : MIB;
		if (in_island) {
			int found = 0;
			for (int i = 0; i < t->nisl; i++)
				found |= off + n > t->isl[i] && off < t->isl[i] + t->isl_len;
			if (!found && off % (256 * MIB) != MIB) /* sample one hole in 256 */
				continue;
		}
		if (pread(t->fd, buf, n, off) != n) {
			*at = off;
			return 0;
		}
		for (off_t i = 0; i < n; i++) {
			off_t p = off + i;
			unsigned char want = pattern(t->seed, p);
			if (in_island) {
				int inside = 0;
				for (int k = 0; k < t->nisl; k++)
					inside |= p >= t->isl[k] && p < t->isl[k] + t->isl_len;
				want = inside ? want : 0;
			}
			if (buf[i] != want) {
				*at = p;
				return 0;
			}
		}
	}
	return 1;
}

/* check_fd checks one tracked fd: link, flags, offset, size, contents. */
static void check_fd(struct tfd *t)
{
	char fdpath[64], link[PATH_MAX + 32], name[128];
	struct stat st;
	off_t at = 0;
	ssize_t n;

	snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", t->fd);
	n = readlink(fdpath, link, sizeof link - 1);
	link[n < 0 ? 0 : n] = 0;
	snprintf(name, sizeof name, "%s.link", t->name);
	result(strcmp(link, t->link) == 0, name, "reads \"%s\", want \"%s\"", link, t->link);

	snprintf(name, sizeof name, "%s.flags", t->name);
	int flags = fcntl(t->fd, F_GETFL);
	result(flags == t->flags, name, "%o, want %o", flags, t->flags);

	snprintf(name, sizeof name, "%s.pos", t->name);
	off_t pos = lseek(t->fd, 0, SEEK_CUR);
	result(pos == t->pos, name, "%lld, want %lld", (long long)pos, (long long)t->pos);

	snprintf(name, sizeof name, "%s.size", t->name);
	fstat(t->fd, &st);
	result(st.st_size == t->size, name, "%lld, want %lld", (long long)st.st_size,
	       (long long)t->size);

	if ((t->flags & O_ACCMODE) == O_WRONLY)
		return;
	snprintf(name, sizeof name, "%s.data", t->name);
	result(data_ok(t, &at), name, "differs at %lld", (long long)at);
}

static struct tfd *find(const char *label)
{
	for (int i = 0; i < nfds; i++)
		if (strcmp(fds[i].name, label) == 0)
			return &fds[i];
	fprintf(stderr, "no fd %s\n", label);
	exit(2);
}

static ino_t ino(int fd)
{
	struct stat st;
	return fstat(fd, &st) < 0 ? 0 : st.st_ino;
}

/* shares checks that a write through a shows through b, then undoes it. */
static void shares(const char *name, struct tfd *a, struct tfd *b, off_t off)
{
	unsigned char old, mark = 0x5a, got = 0;
	pread(a->fd, &old, 1, off);
	pwrite(a->fd, &mark, 1, off);
	pread(b->fd, &got, 1, off);
	pwrite(a->fd, &old, 1, off);
	result(got == mark && ino(a->fd) == ino(b->fd), name, "wrote %x through %s, %s reads %x",
	       mark, a->name, b->name, got);
}

/* check_map checks the shared mapping against fd t and that writes go
 * both ways. */
static void check_map(struct tfd *t)
{
	static unsigned char buf[MIB];
	size_t n = map_len < MIB ? map_len : MIB;
	pread(t->fd, buf, n, 0);
	result(memcmp(buf, map, n) == 0, "map.same", "the mapping and the fd differ");

	unsigned char old = map[100], got = 0, mark = 0xa5;
	map[100] = mark;
	pread(t->fd, &got, 1, 100);
	map[100] = old;
	result(got == mark, "map.to_fd", "a write through the mapping reads %x through the fd", got);

	pread(t->fd, &old, 1, 200);
	pwrite(t->fd, &mark, 1, 200);
	got = map[200];
	pwrite(t->fd, &old, 1, 200);
	result(got == mark, "map.from_fd", "a write through the fd reads %x in the mapping", got);
}

/* check_maps checks that /proc/self/maps names lib_path as deleted. */
static void check_maps(void)
{
	char line[PATH_MAX + 128], want[PATH_MAX + 16];
	FILE *f = fopen("/proc/self/maps", "r");
	int found = 0;
	snprintf(want, sizeof want, "%s (deleted)\n", lib_path);
	while (f && fgets(line, sizeof line, f))
		found |= strlen(line) > strlen(want) &&
			 strcmp(line + strlen(line) - strlen(want), want) == 0;
	if (f)
		fclose(f);
	result(found, "lib.maps", "no mapping reads %s", want);
}

static unsigned long lib_expect(unsigned long x)
{
	unsigned long h = x;
	for (int i = 0; i < 256; i++)
		h = h * 31 + (unsigned long)i * i;
	return h;
}

static void check(const char *mode)
{
	for (int i = 0; i < nfds; i++)
		check_fd(&fds[i]);
	if (!strcmp(mode, "twice")) {
		struct tfd *a = find("first"), *b = find("second");
		result(ino(a->fd) != ino(b->fd), "two_files", "one inode %lu",
		       (unsigned long)ino(a->fd));
	} else if (!strcmp(mode, "many")) {
		shares("a_to_b", find("a"), find("b"), 10);
		result(ino(find("a")->fd) == ino(find("c")->fd), "c_same", "another inode");
		check_map(find("a"));
	} else if (!strcmp(mode, "remap")) {
		struct tfd *t = find("b");
		struct tfd other = *t;
		other.name = "a";
		other.fd = open(path("a"), O_RDONLY);
		shares("b_to_a", t, &other, 10);
		close(other.fd);
	} else if (!strcmp(mode, "sparse")) {
		struct stat st;
		fstat(find("sparse")->fd, &st);
		result(st.st_blocks * 512 <= 10 * MIB, "sparse.blocks", "%lld bytes allocated",
		       (long long)st.st_blocks * 512);
		printf("BLOCKS %lld\n", (long long)st.st_blocks);
	} else if (!strcmp(mode, "shmap")) {
		check_map(find("shmap"));
	} else if (!strcmp(mode, "dlopen")) {
		unsigned long got = lib_fn(7);
		result(got == lib_expect(7), "lib.call", "%lx, want %lx", got, lib_expect(7));
		check_maps();
	} else if (!strcmp(mode, "dup")) {
		const char *pairs[][2] = {{"linked", "linked.dup"}, {"ghost", "ghost.dup"}};
		for (int i = 0; i < 2; i++) {
			struct tfd *a = find(pairs[i][0]), *b = find(pairs[i][1]);
			char c;
			read(b->fd, &c, 1);
			off_t pos = lseek(a->fd, 0, SEEK_CUR);
			lseek(a->fd, a->pos, SEEK_SET);
			result(pos == a->pos + 1, pairs[i][1], "a read through the dup moved the "
			       "offset of the other to %lld, want %lld", (long long)pos,
			       (long long)a->pos + 1);
		}
	} else if (!strcmp(mode, "flags")) {
		const char *appends[] = {"append", "gappend"};
		for (int i = 0; i < 2; i++) {
			struct tfd *t = find(appends[i]);
			lseek(t->fd, 0, SEEK_SET);
			write(t->fd, "more\n", 5);
			off_t pos = lseek(t->fd, 0, SEEK_CUR);
			result(pos == append_size + 5, t->name, "an append landed at %lld, want %lld",
			       (long long)pos - 5, (long long)append_size);
		}
		append_size += 5;
		for (int i = 0; i < 2; i++) {
			find(appends[i])->size = append_size;
			find(appends[i])->pos = append_size;
		}
	}
}

static void setup(const char *mode, const char *arg)
{
	struct tfd *t;
	if (!strcmp(mode, "ghost") || !strcmp(mode, "replaced")) {
		t = track("ghost", "ghost.dat", O_RDWR, 1, 4 * MIB);
		seekto(t, 2 * MIB + 123);
		gone(t, "ghost.dat");
		if (!strcmp(mode, "replaced")) {
			int fd = open(path("ghost.dat"), O_WRONLY | O_CREAT | O_EXCL, 0644);
			if (fd < 0 || write(fd, "the new file\n", 13) != 13)
				die("new file");
			close(fd);
		}
	} else if (!strcmp(mode, "twice")) {
		t = track("first", "same", O_RDWR, 1, MIB);
		seekto(t, 10);
		gone(t, "same");
		t = track("second", "same", O_RDWR, 2, 2 * MIB);
		seekto(t, 20);
		gone(t, "same");
	} else if (!strcmp(mode, "many")) {
		t = track("a", "shared.dat", O_RDWR, 3, MIB);
		seekto(t, 1);
		t = track("b", "shared.dat", O_RDONLY, 3, MIB);
		seekto(t, 100);
		t = track("c", "shared.dat", O_WRONLY | O_APPEND, 3, MIB);
		seekto(t, 7);
		map_len = MIB;
		map = mmap(0, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, find("a")->fd, 0);
		if (map == MAP_FAILED)
			die("mmap");
		gone(&fds[0], "shared.dat");
		strcat(fds[1].link, " (deleted)");
		strcat(fds[2].link, " (deleted)");
	} else if (!strcmp(mode, "remap")) {
		int fd = open(path("a"), O_RDWR | O_CREAT, 0644);
		fill(fd, 4, 256 << 10);
		close(fd);
		if (link(path("a"), path("b")) < 0)
			die("link");
		t = track("b", "b", O_RDWR, 4, 256 << 10);
		seekto(t, 1000);
		gone(t, "b");
	} else if (!strcmp(mode, "named")) {
		t = track("x", "x (deleted)", O_RDWR, 5, 4096);
		seekto(t, 1);
		t = track("y", "y (deleted)", O_RDWR, 6, 8192);
		seekto(t, 2);
		gone(t, "y (deleted)");
	} else if (!strcmp(mode, "sparse")) {
		const off_t isl[4] = {0, (1LL << 30) + 4096, 3LL << 30, (4LL << 30) - 2 * MIB};
		t = track("sparse", "sparse", O_RDWR, 7, 0);
		for (int i = 0; i < 4; i++) {
			static unsigned char buf[2 * MIB];
			for (int k = 0; k < 2 * MIB; k++)
				buf[k] = pattern(7, isl[i] + k);
			if (pwrite(t->fd, buf, sizeof buf, isl[i]) != sizeof buf)
				die("pwrite");
			t->isl[i] = isl[i];
		}
		t->nisl = 4;
		t->isl_len = 2 * MIB;
		t->size = 4LL << 30;
		seekto(t, 3LL << 30);
		gone(t, "sparse");
	} else if (!strcmp(mode, "dense")) {
		t = track("dense", "dense", O_RDWR, 8, (off_t)atol(arg) * MIB);
		seekto(t, t->size);
		gone(t, "dense");
	} else if (!strcmp(mode, "shmap")) {
		t = track("shmap", "shmap", O_RDWR, 9, MIB);
		map_len = MIB;
		map = mmap(0, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
		if (map == MAP_FAILED)
			die("mmap");
		gone(t, "shmap");
		/* written through the mapping after the unlink: the expected
		 * contents follow the new seed on page 1 only, so keep it
		 * simple: rewrite all of it through the mapping. */
		for (size_t i = 0; i < map_len; i++)
			map[i] = pattern(10, i);
		t->seed = 10;
		seekto(t, 4096);
	} else if (!strcmp(mode, "dlopen")) {
		snprintf(lib_path, sizeof lib_path, "%s", arg);
		void *h = dlopen(lib_path, RTLD_NOW);
		if (!h) {
			fprintf(stderr, "dlopen: %s\n", dlerror());
			exit(2);
		}
		lib_fn = (unsigned long (*)(unsigned long))dlsym(h, "files_lib_value");
		if (!lib_fn || lib_fn(7) != lib_expect(7))
			die("files_lib_value");
		if (unlink(lib_path) < 0)
			die("unlink lib");
	} else if (!strcmp(mode, "dup")) {
		t = track("linked", "linked.dat", O_RDWR, 11, 65536);
		seekto(t, 1000);
		struct tfd *d = &fds[nfds++];
		*d = *t;
		d->name = "linked.dup";
		d->fd = dup(t->fd);
		t = track("ghost", "ghost.dat", O_RDWR, 12, 65536);
		seekto(t, 2000);
		gone(t, "ghost.dat");
		d = &fds[nfds++];
		*d = *t;
		d->name = "ghost.dup";
		d->fd = dup(t->fd);
	} else if (!strcmp(mode, "flags")) {
		const char *pre[] = {"ro.dat", "gro.dat", "trunc.dat", "gtrunc.dat"};
		for (int i = 0; i < 4; i++) {
			int fd = open(path(pre[i]), O_RDWR | O_CREAT, 0644);
			fill(fd, 13, MIB);
			close(fd);
		}
		for (int g = 0; g < 2; g++) {
			const char *names[] = {g ? "gappend.log" : "append.log", g ? "gro.dat" : "ro.dat",
					       g ? "gtrunc.dat" : "trunc.dat"};
			t = track(g ? "gappend" : "append", names[0], O_WRONLY | O_APPEND, 0, 0);
			write(t->fd, "line1\n", 6);
			t->size = t->pos = append_size = 6;
			t = track(g ? "gro" : "ro", names[1], O_RDONLY, 13, MIB);
			seekto(t, 5000);
			t = track(g ? "gtrunc" : "trunc", names[2], O_WRONLY | O_TRUNC, 14, 1000);
			seekto(t, 1000);
			if (g)
				for (int i = 0; i < 3; i++)
					gone(&fds[nfds - 3 + i], names[i]);
		}
	} else {
		fprintf(stderr, "unknown mode %s\n", mode);
		exit(2);
	}
}

static volatile sig_atomic_t go;

static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

int main(int argc, char **argv)
{
	sigset_t block, old;
	if (argc < 3) {
		fprintf(stderr, "usage: files_subject MODE DIR [ARG]\n");
		return 2;
	}
	dir = argv[2];
	signal(SIGUSR1, on_usr1);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &old);
	setup(argv[1], argc > 3 ? argv[3] : "");
	printf("READY %d\n", getpid());
	fflush(stdout);
	for (int round = 0;; round++) {
		while (!go)
			sigsuspend(&old);
		go = 0;
		bad = 0;
		check(argv[1]);
		printf("DONE %d %d\n", round, bad);
		fflush(stdout);
	}
}
