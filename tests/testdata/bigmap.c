/* bigmap: maps GiB of private anonymous memory without reserving swap
 * (MAP_NORESERVE), writes a pattern into its first and last pages,
 * prints "READY ADDR", then checks the pattern every 10 ms and exits 3
 * if it changed. A restore under an address space limit (ulimit -v)
 * smaller than the mapping cannot have it back.
 *
 * Usage: bigmap GiB */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

int main(int argc, char **argv)
{
	size_t len = (argc > 1 ? strtoul(argv[1], 0, 10) : 1) << 30;
	uint64_t *p = mmap(0, len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint64_t *last;
	struct timespec ts = {0, 10 * 1000 * 1000};

	if (p == MAP_FAILED)
		return 1;
	last = p + len / 8 - 512;
	for (int i = 0; i < 512; i++)
		p[i] = last[i] = 0x5a5a0000ull + i;
	printf("READY %p\n", (void *)p);
	fflush(stdout);
	for (;;) {
		for (int i = 0; i < 512; i++)
			if (p[i] != 0x5a5a0000ull + i || last[i] != 0x5a5a0000ull + i)
				return 3;
		nanosleep(&ts, 0);
	}
}
