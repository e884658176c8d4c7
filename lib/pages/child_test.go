package pages

// childSrc is a program that lays out memory whose dump is known, prints
// where (anon, private file, shared file, unreadable anon; hex), and
// waits. argv[1] and argv[2] are files of 8 pages of 'F' and 'S'.
//
// Anonymous, 400 pages: 0-299 patterned (a run longer than a chunk),
// 300 read only (the zero page), 301 written with zeros, 302-304
// patterned, 305 zeros, 306 patterned, the rest untouched.
// Private file, 8 pages: 0 read, 2 patterned, 5 written with zeros (a
// private copy that must be kept), 6 one byte 'X' then the file's 'F's.
// Shared file: page 0 written (the file holds it: not dumped).
// Unreadable: 4 pages, 1-2 patterned, then PROT_NONE.
// Sparse, 4000 pages: every other page patterned, 2000 one-page ranges, so
// that PAGEMAP_SCAN fills its output array in the middle of a walk.
// Big, 1600 pages: patterned but for page 700, written with zeros; larger
// than small batches, which end inside it.
const childSrc = `
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PS 4096

static void pattern(char *base, int page, int tag) {
	unsigned char *p = (unsigned char *)base + (long)page * PS;
	for (int o = 0; o < PS; o++)
		p[o] = (unsigned char)((page * 131 + o * 7 + tag) % 255 + 1);
}

/* region maps pages of anonymous memory followed by a PROT_NONE guard
   page, so that it never merges with the next region into one mapping. */
static char *region(int pages) {
	char *p = mmap(NULL, (pages + 1) * PS, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mprotect(p + pages * PS, PS, PROT_NONE);
	madvise(p, pages * PS, MADV_NOHUGEPAGE);
	return p;
}

int main(int argc, char **argv) {
	int rw = PROT_READ | PROT_WRITE;
	char *a = region(400);
	for (int i = 0; i < 300; i++)
		pattern(a, i, 1);
	volatile char c = a[300 * PS];
	(void)c;
	memset(a + 301 * PS, 0, PS);
	for (int i = 302; i < 305; i++)
		pattern(a, i, 1);
	memset(a + 305 * PS, 0, PS);
	pattern(a, 306, 1);

	int fd = open(argv[1], O_RDONLY);
	char *f = mmap(NULL, 8 * PS, rw, MAP_PRIVATE, fd, 0);
	c = f[0];
	pattern(f, 2, 2);
	memset(f + 5 * PS, 0, PS);
	f[6 * PS] = 'X';

	int sfd = open(argv[2], O_RDWR);
	char *s = mmap(NULL, 8 * PS, rw, MAP_SHARED, sfd, 0);
	s[0] = 'W';

	char *n = mmap(NULL, 4 * PS, rw, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pattern(n, 1, 3);
	pattern(n, 2, 3);
	mprotect(n, 4 * PS, PROT_NONE);

	char *sp = region(4000);
	for (int i = 0; i < 4000; i += 2)
		pattern(sp, i, 4);

	char *big = region(1600);
	for (int i = 0; i < 1600; i++)
		pattern(big, i, 5);
	memset(big + 700 * PS, 0, PS);

	printf("%lx %lx %lx %lx %lx %lx\n", (unsigned long)a, (unsigned long)f, (unsigned long)s,
	       (unsigned long)n, (unsigned long)sp, (unsigned long)big);
	fflush(stdout);
	for (;;)
		pause();
}
`

// pattern is the C program's pattern function.
func pattern(page, tag int) []byte {
	b := make([]byte, 4096)
	for o := range b {
		b[o] = byte((page*131+o*7+tag)%255 + 1)
	}
	return b
}
