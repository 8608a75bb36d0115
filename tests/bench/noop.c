/* noop: a do-nothing threaded FastCGI responder, the baseline for tests/bench/run. */

/*
 * Shaped like the real pool so the benchmark compares like with like:
 * a supervisor forks -w workers that share one listening socket, each worker
 * runs -t threads, each thread owns an FCGX_Request and loops on
 * FCGX_Accept_r(), drains the request body and answers 200 with "{}".
 *
 * usage: noop -s /path/noop.sock [-w workers] [-t threads] [-b backlog]
 */

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <fcgiapp.h>

#define NOOP_MAX_WORKERS 64
#define NOOP_MAX_THREADS 256

static int listen_fd = -1;
static pid_t workers[NOOP_MAX_WORKERS];
static int nworkers = 2;
static int nthreads = 4;
static volatile sig_atomic_t stopping;

static void
usage(void)
{
	fprintf(stderr, "usage: noop -s socket [-w workers] [-t threads] "
	    "[-b backlog]\n");
	exit(2);
}

/* Parse a decimal in [lo, hi] or exit with a message naming the option. */
static int
parse_int(const char *s, int lo, int hi, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "noop: bad %s: %s (want %d..%d)\n",
		    what, s, lo, hi);
		exit(2);
	}
	return (int)v;
}

/*
 * One worker thread: accept, discard the body, answer "{}".
 * The request is reused across iterations; FCGX_Accept_r() finishes the
 * previous one. Returns only when accept fails (socket closed, shutdown).
 */
static void *
serve(void *arg)
{
	FCGX_Request req;
	char buf[8192];

	(void)arg;
	if (FCGX_InitRequest(&req, listen_fd, 0) != 0)
		return NULL;
	while (FCGX_Accept_r(&req) >= 0) {
		/* Drain the body as the real server must (CONTENT_LENGTH). */
		while (FCGX_GetStr(buf, sizeof(buf), req.in) > 0)
			;
		FCGX_PutS("Status: 200 OK\r\n"
		    "Content-Type: application/json\r\n"
		    "\r\n"
		    "{}", req.out);
		FCGX_Finish_r(&req);
	}
	FCGX_Free(&req, 1);
	return NULL;
}

/* Body of a forked worker: start the threads and wait for them. */
static void
worker_main(void)
{
	pthread_t tids[NOOP_MAX_THREADS];
	int i, started = 0;

#ifdef __linux__
	/* Do not outlive the supervisor if it is killed with SIGKILL. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
	if (FCGX_Init() != 0) {
		fprintf(stderr, "noop: FCGX_Init failed\n");
		_exit(1);
	}
	/*
	 * After FCGX_Init(): libfcgi installs its own SIGTERM handler (it only
	 * sets a flag, and threads blocked in accept() never see it), so a
	 * worker would ignore the supervisor's SIGTERM.
	 */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&tids[i], NULL, serve, NULL) != 0) {
			fprintf(stderr, "noop: pthread_create failed\n");
			break;
		}
		started++;
	}
	for (i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	_exit(started == nthreads ? 0 : 1);
}

/* Fork worker slot i; returns the pid or -1. */
static pid_t
spawn(int i)
{
	pid_t pid = fork();

	if (pid == 0)
		worker_main();
	if (pid > 0)
		workers[i] = pid;
	return pid;
}

/* Forget a reaped worker so it is never signalled again. */
static void
forget(pid_t pid)
{
	int i;

	for (i = 0; i < nworkers; i++)
		if (workers[i] == pid)
			workers[i] = 0;
}

/* Stop every worker: SIGTERM, then SIGKILL after about two seconds. */
static void
reap_all(void)
{
	int i, status, tries;
	pid_t pid;

	for (i = 0; i < nworkers; i++)
		if (workers[i] > 0)
			kill(workers[i], SIGTERM);
	for (tries = 0; tries < 200; tries++) {
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			forget(pid);
		if (pid < 0 && errno == ECHILD)
			return;
		usleep(10000);
	}
	for (i = 0; i < nworkers; i++)
		if (workers[i] > 0)
			kill(workers[i], SIGKILL);
	while ((pid = waitpid(-1, &status, 0)) > 0 || errno == EINTR)
		if (pid > 0)
			forget(pid);
}

/*
 * SIGTERM/SIGINT: stop. Signal the workers from here too (kill() is
 * async-signal-safe), so a signal landing just before waitpid() cannot
 * leave the supervisor blocked with every worker still alive.
 */
static void
on_signal(int sig)
{
	int i, saved = errno;

	(void)sig;
	stopping = 1;
	for (i = 0; i < nworkers; i++)
		if (workers[i] > 0)
			kill(workers[i], SIGTERM);
	errno = saved;
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	const char *path = NULL;
	int backlog = 1024;
	int ch, i, status;
	pid_t pid;

	while ((ch = getopt(argc, argv, "s:w:t:b:h")) != -1) {
		switch (ch) {
		case 's':
			path = optarg;
			break;
		case 'w':
			nworkers = parse_int(optarg, 1, NOOP_MAX_WORKERS,
			    "workers");
			break;
		case 't':
			nthreads = parse_int(optarg, 1, NOOP_MAX_THREADS,
			    "threads");
			break;
		case 'b':
			backlog = parse_int(optarg, 1, INT_MAX, "backlog");
			break;
		default:
			usage();
		}
	}
	if (path == NULL || optind != argc)
		usage();

	/* A stale socket from an earlier run would make bind() fail. */
	(void)unlink(path);
	listen_fd = FCGX_OpenSocket(path, backlog);
	if (listen_fd < 0) {
		fprintf(stderr, "noop: cannot listen on %s\n", path);
		return 1;
	}
	/* The web server may run as another user; this socket serves nothing. */
	(void)chmod(path, 0666);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (i = 0; i < nworkers; i++) {
		if (spawn(i) < 0) {
			fprintf(stderr, "noop: fork: %s\n", strerror(errno));
			stopping = 1;
			break;
		}
	}

	/* Supervise: restart a dead worker until told to stop. */
	while (!stopping) {
		pid = waitpid(-1, &status, 0);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (i = 0; i < nworkers; i++) {
			if (workers[i] != pid)
				continue;
			workers[i] = 0;
			if (!stopping && spawn(i) < 0)
				stopping = 1;
		}
	}

	reap_all();
	(void)unlink(path);
	return 0;
}
