/* heap: fills 256 MiB of heap with a known pattern, keeps a value on its
 * stack and one in registers (r12 and xmm15), then waits for SIGUSR1 in a
 * loop that holds those registers. On SIGUSR1 it checks everything and
 * prints "OK ..." or "BAD ..." to stdout, then waits again.
 *
 * Usage: heap MiB */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t go;

static void on_usr1(int sig) { (void)sig; go = 1; }

static uint64_t pattern(uint64_t i) { return (i * 0x9E3779B97F4A7C15ull) ^ (i >> 7); }

/* hold keeps v in r12 and w in xmm15 while it spins until go is set, and
 * returns what the registers hold then. */
static void hold(uint64_t v, uint64_t w, uint64_t *rv, uint64_t *rw)
{
	uint64_t a, b;
	__asm__ volatile(
		"mov %[v], %%r12\n\t"
		"movq %[w], %%xmm15\n\t"
		"1: pause\n\t"
		"cmpl $0, %[go]\n\t"
		"je 1b\n\t"
		"mov %%r12, %[a]\n\t"
		"movq %%xmm15, %[b]\n\t"
		: [a] "=r"(a), [b] "=r"(b)
		: [v] "r"(v), [w] "r"(w), [go] "m"(go)
		: "r12", "xmm15", "memory");
	*rv = a;
	*rw = b;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 256;
	size_t n = mib << 17; /* 8-byte words */
	uint64_t *heap = malloc(n * 8);
	volatile uint64_t stackval[4] = {0x5741434b5741434bull, 1, 2, 3};
	uint64_t sum = 0, rv, rw, round = 0;

	if (!heap)
		return 1;
	signal(SIGUSR1, on_usr1);
	for (size_t i = 0; i < n; i++) {
		heap[i] = pattern(i);
		sum += heap[i];
	}
	/* leave some pages zero: one in every 16 */
	for (size_t i = 0; i < n; i += 16 * 512)
		memset(&heap[i], 0, 4096);
	printf("READY %d %016llx\n", getpid(), (unsigned long long)sum);
	fflush(stdout);
	for (;;) {
		uint64_t v = 0x1234567890abcdefull + round, w = 0xfedcba0987654321ull - round;
		hold(v, w, &rv, &rw);
		go = 0;
		uint64_t bad = 0, check = 0;
		for (size_t i = 0; i < n; i++) {
			uint64_t want = (i % (16 * 512)) < 512 ? 0 : pattern(i);
			if (heap[i] != want)
				bad++;
			check += heap[i];
		}
		if (stackval[0] != 0x5741434b5741434bull || stackval[3] != 3)
			bad++;
		if (rv != v || rw != w)
			bad++;
		printf("%s round=%llu bad=%llu r12=%llx xmm15=%llx\n", bad ? "BAD" : "OK",
		       (unsigned long long)round, (unsigned long long)bad,
		       (unsigned long long)rv, (unsigned long long)rw);
		fflush(stdout);
		round++;
	}
}
