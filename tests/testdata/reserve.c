/* reserve: a 100 GiB PROT_NONE reservation and a 1 TiB MAP_NORESERVE mapping
 * with one byte written, for tests/unsupported_test.go. */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
int main(void) {
	char *p = mmap(NULL, 100UL << 30, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *q = mmap(NULL, 1UL << 40, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED || q == MAP_FAILED) return 1;
	q[12345] = 7;
	printf("READY %p %p\n", p, q); fflush(stdout);
	for (;;) pause();
}
