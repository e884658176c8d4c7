/* counter: dirties MiB of heap (half a pattern, half pseudo-random, so
 * the archive is neither tiny nor incompressible), prints READY, then
 * counts: every 10 ms it prints the next number on a line of its own.
 * A test that sees the numbers go on knows the process runs.
 *
 * Usage: counter MiB */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 0;
	size_t n = mib << 17; /* 8-byte words */
	uint64_t *heap = n ? malloc(n * 8) : 0;
	uint64_t x = 88172645463325252ull;
	struct timespec ts = {0, 10 * 1000 * 1000};

	if (n && !heap)
		return 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		heap[i] = i < n / 2 ? i * 0x0101010101010101ull : x;
	}
	setvbuf(stdout, 0, _IOLBF, 0);
	printf("READY\n");
	for (uint64_t c = 0;; c++) {
		printf("%llu\n", (unsigned long long)c);
		nanosleep(&ts, 0);
	}
}
