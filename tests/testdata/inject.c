/* inject: a subject for killing ckpt-scan while it injects system calls.
 *
 * It catches SIGUSR1 (on an alternate signal stack, SA_RESTART; prints
 * "usr1"), blocks SIGUSR2, ignores SIGURG, sets a sigaltstack, and then,
 * by mode:
 *
 *   sleep MS  prints "sleeping", sleeps MS ms with nanosleep, prints
 *             "slept ELAPSED_MS RET ERRNO", again and again;
 *   read      reads lines from stdin: "read N ERRNO TEXT" each;
 *   spin      spins in assembly that checks, every turn, that a dozen
 *             general registers, MXCSR, ymm8 and (with AVX-512) zmm8 and
 *             zmm16 still hold what it put there; prints "spin N" after
 *             each round, "BAD registers" if they changed;
 *   rseq      spins inside an rseq critical section (glibc's rseq area)
 *             that only the kernel's abort gets it out of, which every
 *             signal of a 5 ms interval timer causes; prints "rseq N"
 *             after every 10 aborts. A thread let go inside the section
 *             without the abort spins there for good.
 *
 * Between rounds it checks that its signal mask, its SIGUSR1 action and
 * its sigaltstack are as it set them, and prints "BAD what" if not.
 *
 * Usage: inject sleep MS | inject read | inject spin | inject rseq */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char altstack[1 << 16];
static uint64_t pattern[8] __attribute__((aligned(64))) = {
	0x0123456789abcdefull, 0xfedcba9876543210ull, 0x1111222233334444ull,
	0x5555666677778888ull, 0x99990000aaaabbbbull, 0xccccddddeeeeffffull,
	0x0f0f0f0f0f0f0f0full, 0xf0f0f0f0f0f0f0f0ull,
};

/* spin_check(n, pattern) runs n turns and returns how many were left
 * when a register no longer held its value: 0 when all held. */
long spin_check(long n, const uint64_t *pat);
long spin_check512(long n, const uint64_t *pat);
__asm__(
	".text\n"
	".macro LOADREGS\n"
	"	push %rbx; push %rbp; push %r12; push %r13; push %r14; push %r15\n"
	"	sub $8, %rsp\n"
	"	movl $0x7f80, (%rsp)\n" /* round toward zero, all masked */
	"	ldmxcsr (%rsp)\n"
	"	mov 0(%rsi), %rbx; mov 8(%rsi), %rbp; mov 16(%rsi), %rcx\n"
	"	mov 24(%rsi), %rdx; mov 32(%rsi), %r8; mov 40(%rsi), %r9\n"
	"	mov 48(%rsi), %r10; mov 56(%rsi), %r11; mov 0(%rsi), %r12\n"
	"	mov 8(%rsi), %r13; mov 16(%rsi), %r14; mov 24(%rsi), %r15\n"
	".endm\n"
	".macro CHECKREGS fail\n"
	"	cmp 0(%rsi), %rbx; jne \\fail\n"
	"	cmp 8(%rsi), %rbp; jne \\fail\n"
	"	cmp 16(%rsi), %rcx; jne \\fail\n"
	"	cmp 24(%rsi), %rdx; jne \\fail\n"
	"	cmp 32(%rsi), %r8; jne \\fail\n"
	"	cmp 40(%rsi), %r9; jne \\fail\n"
	"	cmp 48(%rsi), %r10; jne \\fail\n"
	"	cmp 56(%rsi), %r11; jne \\fail\n"
	"	cmp 0(%rsi), %r12; jne \\fail\n"
	"	cmp 8(%rsi), %r13; jne \\fail\n"
	"	cmp 16(%rsi), %r14; jne \\fail\n"
	"	cmp 24(%rsi), %r15; jne \\fail\n"
	"	stmxcsr 4(%rsp)\n"
	"	cmpl $0x7f80, 4(%rsp); jne \\fail\n"
	".endm\n"
	".macro DONE\n"
	"	movl $0x1f80, (%rsp)\n"
	"	ldmxcsr (%rsp)\n"
	"	vzeroupper\n"
	"	mov %rdi, %rax\n"
	"	add $8, %rsp\n"
	"	pop %r15; pop %r14; pop %r13; pop %r12; pop %rbp; pop %rbx\n"
	"	ret\n"
	".endm\n"
	".globl spin_check\n"
	"spin_check:\n"
	"	LOADREGS\n"
	"	vmovdqu (%rsi), %ymm8\n"
	"1:	CHECKREGS 2f\n"
	"	vpcmpeqq (%rsi), %ymm8, %ymm9\n"
	"	vpmovmskb %ymm9, %eax\n"
	"	cmp $-1, %eax; jne 2f\n"
	"	dec %rdi; jnz 1b\n"
	"2:	DONE\n"
	".globl spin_check512\n"
	"spin_check512:\n"
	"	LOADREGS\n"
	"	vmovdqu64 (%rsi), %zmm8\n"
	"	vmovdqu64 (%rsi), %zmm16\n"
	"1:	CHECKREGS 2f\n"
	"	vpcmpeqq (%rsi), %zmm8, %k1\n"
	"	kmovw %k1, %eax\n"
	"	cmp $0xff, %eax; jne 2f\n"
	"	vpcmpeqq (%rsi), %zmm16, %k1\n"
	"	kmovw %k1, %eax\n"
	"	cmp $0xff, %eax; jne 2f\n"
	"	dec %rdi; jnz 1b\n"
	"2:	DONE\n");

/* rseq_spin(cs, counter, n): enters the critical section desc by
 * setting *cs (the rseq_cs field of the thread's struct rseq) and spins
 * in it; the abort handler counts and enters it again, n times. */
extern ptrdiff_t __rseq_offset;
extern unsigned int __rseq_size;
void rseq_spin(uint64_t *cs, volatile long *counter, long n);
__asm__(
	".data\n"
	".balign 32\n"
	"rseq_desc:\n"
	"	.long 0, 0\n"
	"	.quad rseq_start\n"
	"	.quad rseq_end - rseq_start\n"
	"	.quad rseq_abort\n"
	".text\n"
	".globl rseq_spin\n"
	"rseq_spin:\n"
	"	lea rseq_desc(%rip), %rax\n"
	"1:	mov %rax, (%rdi)\n"
	"rseq_start:\n"
	"	jmp rseq_start\n"
	"rseq_end:\n"
	"	.long 0x53053053\n"
	"rseq_abort:\n"
	"	incq (%rsi)\n"
	"	dec %rdx\n"
	"	jnz 1b\n"
	"	ret\n");

static void on_alarm(int s) { (void)s; }

static void on_usr1(int s)
{
	(void)s;
	write(1, "usr1\n", 5);
}

static void bad(const char *what)
{
	printf("BAD %s\n", what);
	exit(3);
}

/* check makes sure the signal state is as main set it. */
static void check(void)
{
	sigset_t mask;
	struct sigaction sa;
	stack_t ss;

	if (sigprocmask(SIG_SETMASK, NULL, &mask) != 0 || !sigismember(&mask, SIGUSR2) ||
	    sigismember(&mask, SIGUSR1) || sigismember(&mask, SIGTERM))
		bad("signal mask");
	if (sigaction(SIGUSR1, NULL, &sa) != 0 || sa.sa_handler != on_usr1 ||
	    !(sa.sa_flags & SA_ONSTACK) || !(sa.sa_flags & SA_RESTART))
		bad("SIGUSR1 action");
	if (sigaction(SIGURG, NULL, &sa) != 0 || sa.sa_handler != SIG_IGN)
		bad("SIGURG action");
	if (sigaltstack(NULL, &ss) != 0 || ss.ss_sp != altstack ||
	    ss.ss_size != sizeof altstack || ss.ss_flags != 0)
		bad("sigaltstack");
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t mask;
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
	const char *mode = argc > 1 ? argv[1] : "";

	setvbuf(stdout, 0, _IOLBF, 0);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_ONSTACK | SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sa.sa_flags = 0;
	sigaction(SIGURG, &sa, NULL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sigaltstack(&ss, NULL);
	check();

	if (strcmp(mode, "sleep") == 0 && argc > 2) {
		long ms = atol(argv[2]);
		for (;;) {
			struct timespec req = {ms / 1000, ms % 1000 * 1000000L}, rem;
			printf("sleeping\n");
			double t0 = now_ms();
			int ret = nanosleep(&req, &rem);
			int err = ret ? errno : 0;
			printf("slept %.0f %d %d\n", now_ms() - t0, ret, err);
			check();
		}
	}
	if (strcmp(mode, "read") == 0) {
		char buf[256];
		for (;;) {
			ssize_t n = read(0, buf, sizeof buf - 1);
			int err = n < 0 ? errno : 0;
			if (n == 0)
				return 0;
			buf[n > 0 ? n : 0] = 0;
			printf("read %zd %d %s", n, err, n > 0 ? buf : "\n");
			check();
		}
	}
	if (strcmp(mode, "spin") == 0) {
		int avx512 = __builtin_cpu_supports("avx512f");
		for (long round = 0;; round++) {
			long left = avx512 ? spin_check512(6000000, pattern) :
					     spin_check(6000000, pattern);
			if (left)
				bad("registers");
			printf("spin %ld\n", round);
			check();
		}
	}
	if (strcmp(mode, "rseq") == 0) {
		volatile long aborts = 0;
		struct itimerval every = {{0, 5000}, {0, 5000}};
		if (__rseq_size < 16) {
			printf("no rseq\n");
			return 4;
		}
		uint64_t *cs = (uint64_t *)((char *)__builtin_thread_pointer() + __rseq_offset + 8);
		sa.sa_handler = on_alarm;
		sa.sa_flags = SA_RESTART;
		sigaction(SIGALRM, &sa, NULL);
		setitimer(ITIMER_REAL, &every, NULL);
		for (long round = 0;; round++) {
			rseq_spin(cs, &aborts, 10);
			printf("rseq %ld\n", aborts);
			check();
		}
	}
	fprintf(stderr, "usage: inject sleep MS | inject read | inject spin | inject rseq\n");
	return 2;
}
