// tree.c: a process tree for tests/tree_test.go.
//
//	tree DIR
//
// The root opens DIR/shared.dat once (fd 3, one open file description
// that every child inherits), then forks:
//   z1   exits with code 7 and stays a zombie
//   z2   is killed by SIGTERM and stays a zombie
//   a    leads a process group of its own, with a child a1 in it
//   b    leads a session of its own
//   e    stays in the root's group
// Every live process counts in its own memory and appends each number to
// DIR/NAME.log every 20 ms. On SIGUSR1 a process writes 10 bytes through
// fd 3, which moves the offset all of them share. On SIGUSR2 the root
// reaps its zombies and prints "REAPED PID STATUS" for each.
// When all is set up the root prints "READY root a a1 b e z1 z2" (PIDs).
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t usr1, usr2;

static void on_usr1(int sig) { (void)sig; usr1 = 1; }
static void on_usr2(int sig) { (void)sig; usr2 = 1; }

static const char *dir;
static pid_t zombies[2];

static void step(const char *name, int fd, long *count)
{
	char path[4096], line[32];
	snprintf(path, sizeof(path), "%s/%s.log", dir, name);
	int log = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (log < 0) {
		perror(path);
		exit(1);
	}
	int n = snprintf(line, sizeof(line), "%ld\n", *count);
	if (write(log, line, n) != n)
		exit(1);
	close(log);
	(*count)++;
	if (usr1) {
		usr1 = 0;
		if (write(fd, "0123456789", 10) != 10)
			exit(1);
	}
}

// live counts forever; the root also reaps on SIGUSR2.
static void live(const char *name, int fd, int root)
{
	long count = 0;
	struct timespec ts = {0, 20 * 1000 * 1000};
	for (;;) {
		step(name, fd, &count);
		if (root && usr2) {
			usr2 = 0;
			for (int i = 0; i < 2; i++) {
				int st;
				pid_t got = waitpid(zombies[i], &st, WNOHANG);
				printf("REAPED %d %d\n", (int)got, got > 0 ? st : -1);
			}
			fflush(stdout);
		}
		nanosleep(&ts, NULL);
	}
}

static pid_t child(const char *name, int fd, int how)
{
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	if (pid > 0)
		return pid;
	if (how == 1 && setpgid(0, 0) < 0)
		exit(1);
	if (how == 2 && setsid() < 0)
		exit(1);
	if (!strcmp(name, "a")) {
		pid_t a1 = child("a1", fd, 0);
		char path[4096];
		snprintf(path, sizeof(path), "%s/a1.pid", dir);
		FILE *f = fopen(path, "w");
		fprintf(f, "%d\n", (int)a1);
		fclose(f);
	}
	live(name, fd, 0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: tree DIR\n");
		return 2;
	}
	dir = argv[1];
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, on_usr2);
	char path[4096];
	snprintf(path, sizeof(path), "%s/shared.dat", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd != 3) {
		fprintf(stderr, "shared.dat is fd %d, not 3\n", fd);
		return 1;
	}
	zombies[0] = fork();
	if (zombies[0] == 0)
		_exit(7);
	zombies[1] = fork();
	if (zombies[1] == 0) {
		for (;;)
			pause();
	}
	kill(zombies[1], SIGTERM);
	siginfo_t si;
	for (int i = 0; i < 2; i++) {
		// Wait for each to be a zombie, without reaping it.
		if (waitid(P_PID, zombies[i], &si, WEXITED | WNOWAIT) < 0) {
			perror("waitid");
			return 1;
		}
	}
	pid_t a = child("a", fd, 1);
	pid_t b = child("b", fd, 2);
	pid_t e = child("e", fd, 0);
	snprintf(path, sizeof(path), "%s/a1.pid", dir);
	int a1 = 0;
	for (int i = 0; i < 500 && a1 == 0; i++) {
		FILE *f = fopen(path, "r");
		if (f) {
			if (fscanf(f, "%d", &a1) != 1)
				a1 = 0;
			fclose(f);
		}
		usleep(10000);
	}
	printf("READY %d %d %d %d %d %d %d\n", (int)getpid(), (int)a, a1, (int)b, (int)e,
	       (int)zombies[0], (int)zombies[1]);
	fflush(stdout);
	live("root", fd, 1);
	return 0;
}
