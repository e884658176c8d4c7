/* shmem: shared anonymous memory for the checkpoint tests.
 *
 * It maps MiB MiB of MAP_SHARED|MAP_ANONYMOUS memory (A) and fills three
 * pages in every eight of its first three quarters with pseudo-random
 * data; the other pages are never touched. mremap with an old size of 0
 * makes two more mappings of the same object: B, all of it, and C, the
 * 2 MiB at offset 4 MiB. Beside them lies a MAP_PRIVATE anonymous region
 * (P) of 4 MiB with a pattern. It prints
 *
 *	READY A B C P
 *
 * (hex addresses) and then, on every SIGUSR1, checks the contents of A and
 * P against what it wrote (reading every page, holes too) and that a
 * write through one mapping shows through the others, and prints
 * "OK round=N ..." or "BAD round=N ...".
 *
 * Usage: shmem MiB */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096
#define MIB (1 << 20)

static volatile sig_atomic_t go;

static void on_usr1(int sig) { (void)sig; go = 1; }

/* touched says whether page i of A holds data. */
static int touched(size_t i, size_t pages) { return i < pages / 4 * 3 && i % 8 < 3; }

/* marker is the page of A, never filled, that the sharing check writes. */
static size_t marker(void) { return 4 * MIB / PAGE + 5; }

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* sum hashes the words of n bytes at p, taking those of the marker page
 * of A as zeros. */
static uint64_t sum(const uint64_t *p, size_t n, const uint64_t *skip)
{
	uint64_t s = 0;
	for (size_t i = 0; i < n / 8; i++) {
		int in = skip && &p[i] >= skip && &p[i] < skip + PAGE / 8;
		s = s * 31 + (in ? 0 : p[i]);
	}
	return s;
}

int main(int argc, char **argv)
{
	size_t size = (argc > 1 ? strtoul(argv[1], 0, 10) : 32) * MIB, pages = size / PAGE;
	uint64_t *a, *b, *c, *p, sa = 0, sp, round = 0, seed = 0x2545F4914F6CDD1Dull;

	a = mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	p = mmap(0, 4 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED || p == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < pages; i++)
		if (touched(i, pages))
			for (size_t w = 0; w < PAGE / 8; w++)
				a[i * PAGE / 8 + w] = next(&seed);
	for (size_t i = 0; i < 4 * MIB / 8; i++)
		p[i] = i * 0x9E3779B97F4A7C15ull;
	/* The sum of A over its filled pages only: reading a hole of shared
	 * memory would fill it. Holes add zeros, so the sum is the same. */
	for (size_t i = 0; i < pages; i++) {
		const uint64_t *pg = &a[i * PAGE / 8];
		for (size_t w = 0; w < PAGE / 8; w++)
			sa = sa * 31 + (touched(i, pages) ? pg[w] : 0);
	}
	sp = sum(p, 4 * MIB, 0);
	b = mremap(a, 0, size, MREMAP_MAYMOVE);
	c = mremap((char *)a + 4 * MIB, 0, 2 * MIB, MREMAP_MAYMOVE);
	if (b == MAP_FAILED || c == MAP_FAILED)
		return 2;
	signal(SIGUSR1, on_usr1);
	printf("READY %lx %lx %lx %lx\n", (unsigned long)a, (unsigned long)b, (unsigned long)c,
	       (unsigned long)p);
	fflush(stdout);
	for (;;) {
		while (!go)
			usleep(20000);
		go = 0;
		uint64_t *m = &a[marker() * PAGE / 8], got = sum(a, size, m), gotp = sum(p, 4 * MIB, 0);
		int shared = 1;
		/* A write through B shows through A and C, and one through C
		 * through A and B. */
		b[marker() * PAGE / 8] = 0x5348415245440000ull + round;
		if (m[0] != 0x5348415245440000ull + round ||
		    c[(marker() * PAGE - 4 * MIB) / 8] != m[0])
			shared = 0;
		c[(marker() * PAGE - 4 * MIB) / 8 + 1] = ~round;
		if (m[1] != ~round || b[marker() * PAGE / 8 + 1] != ~round)
			shared = 0;
		int bad = got != sa || gotp != sp || !shared;
		printf("%s round=%llu sum=%d private=%d shared=%d\n", bad ? "BAD" : "OK",
		       (unsigned long long)round, got == sa, gotp == sp, shared);
		fflush(stdout);
		round++;
	}
}
