/* app/pool.c: the pre-forked pool: a supervisor and its worker processes. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app.h"

#define MAX_WORKERS 256

static volatile sig_atomic_t got_term, got_hup, got_chld, got_alrm;
static volatile int worker_stop;

static void	die_with_parent(pid_t);

static void
on_signal(int sig)
{
	if (sig == SIGTERM || sig == SIGINT)
		got_term = 1;
	else if (sig == SIGHUP)
		got_hup = 1;
	else if (sig == SIGCHLD)
		got_chld = 1;
	else if (sig == SIGALRM)
		got_alrm = 1;
}

/*
 * Every maintain_interval seconds the supervisor forks `maintain`
 * (history retention, expired idempotency records), so a pool needs no
 * timer unit.  Several hosts doing it at once is harmless.
 */
static void
maintain_child(int listenfd, const struct config *cfg)
{
	sigset_t none;
	pid_t ppid = getpid(), pid = fork();
	int rc;

	if (pid != 0) {
		if (pid < 0)
			log_warn("maintain: fork: %s", strerror(errno));
		return;
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_IGN);
	die_with_parent(ppid);
	close(listenfd);
	dup2(STDERR_FILENO, STDOUT_FILENO);	/* its summary goes to the log */
	rc = cli_maintain(cfg);
	fflush(stdout);
	_exit(rc);
}

static void
on_worker_term(int sig)
{
	(void)sig;
	worker_stop = 1;
}

static void
set_handler(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

/* A worker process: serve until SIGTERM, finish in-flight requests, exit. */
/*
 * A child stops when its supervisor dies, even by SIGKILL: an orphaned
 * worker would hold the socket and keep serving with no one to restart it
 * or to drain it.  ppid is the supervisor's pid, taken before the fork.
 */
static void
die_with_parent(pid_t ppid)
{
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != ppid)		/* it died before prctl */
		kill(getpid(), SIGTERM);
}

static void
worker_main(int listenfd, const struct config *cfg, pid_t ppid)
{
	sigset_t none;

	/* the supervisor forks with its signals blocked */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	set_handler(SIGTERM, on_worker_term);
	set_handler(SIGINT, on_worker_term);
	set_handler(SIGHUP, SIG_IGN);
	die_with_parent(ppid);
	set_handler(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	if (fcgi_serve(listenfd, cfg, &worker_stop) != 0) {
		log_error("worker: cannot serve");
		_exit(1);
	}
	_exit(0);
}

struct slot {
	pid_t	 pid;
	int	 gen;		/* config generation it was started with */
	time_t	 started;
};

static pid_t
spawn(int listenfd, const struct config *cfg)
{
	pid_t ppid = getpid(), pid = fork();

	if (pid == 0)
		worker_main(listenfd, cfg, ppid);
	if (pid < 0)
		log_error("fork: %s", strerror(errno));
	return pid;
}

static int
live_workers(const struct slot *s, int n)
{
	int i, live = 0;

	for (i = 0; i < n; i++)
		live += s[i].pid > 0;
	return live;
}

/* Reap exited children; restart them unless we are stopping. */
static void
reap(struct slot *s, int n, int listenfd, const struct config *cfg, int gen, int stopping)
{
	pid_t pid;
	int st, i;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (i = 0; i < n; i++) {
			if (s[i].pid != pid)
				continue;
			s[i].pid = 0;
			if (stopping || s[i].gen != gen)
				break;
			if (WIFSIGNALED(st))
				log_warn("worker %d killed by signal %d; restarting", (int)pid,
				    WTERMSIG(st));
			else
				log_warn("worker %d exited with %d; restarting", (int)pid,
				    WEXITSTATUS(st));
			/* a worker that keeps dying at start must not become a fork loop */
			if (time(NULL) - s[i].started < 1)
				sleep(1);
			s[i].pid = spawn(listenfd, cfg);
			s[i].gen = gen;
			s[i].started = time(NULL);
			break;
		}
	}
}

static void
signal_gen(struct slot *s, int n, int gen_below, int sig)
{
	int i;

	for (i = 0; i < n; i++)
		if (s[i].pid > 0 && s[i].gen < gen_below)
			kill(s[i].pid, sig);
}

static int
listen_fd(const struct config *cfg)
{
	int fd, acc = 0;
	socklen_t len = sizeof(acc);

	if (*cfg->listen != '\0') {
		if ((fd = fcgi_open_listen(cfg->listen)) < 0)
			log_error("cannot listen on %s", cfg->listen);
		return fd;
	}
	/* spawn-fcgi (and systemd socket activation of FastCGI) hand us fd 0 */
	if (getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == 0 && acc)
		return 0;
	log_error("no listen address configured and fd 0 is not a listening socket");
	return -1;
}

/* The unix socket path of a listen address, or NULL for TCP and fd 0. */
static const char *
socket_path(const char *listen)
{
	const char *path = strncmp(listen, "unix:", 5) == 0 ? listen + 5 : listen;

	return *path == '/' ? path : NULL;
}

/*
 * Remove the unix socket only if the path still names the file we bound
 * (st): a newer pool may have replaced it, and that one is not ours.
 */
static void
unlink_own_socket(const char *listen, const struct stat *st)
{
	const char *path = socket_path(listen);
	struct stat now;

	if (path != NULL && stat(path, &now) == 0 && now.st_dev == st->st_dev &&
	    now.st_ino == st->st_ino)
		unlink(path);
}

/* Remove the pidfile only if it still holds our pid. */
static void
unlink_own_pidfile(const char *path)
{
	FILE *f;
	int pid = 0;

	if (*path == '\0' || (f = fopen(path, "r")) == NULL)
		return;
	if (fscanf(f, "%d", &pid) == 1 && pid == (int)getpid())
		unlink(path);
	fclose(f);
}

static void
write_pidfile(const char *path)
{
	FILE *f;

	if (*path == '\0')
		return;
	if ((f = fopen(path, "w")) == NULL) {
		log_warn("pidfile %s: %s", path, strerror(errno));
		return;
	}
	fprintf(f, "%d\n", (int)getpid());
	fclose(f);
}

/*
 * Run the pool in the foreground.  SIGTERM/SIGINT: stop accepting, let
 * workers drain, exit 0.  SIGHUP: re-read the config file and replace
 * the workers with a new generation (old ones drain).  A worker that
 * dies is replaced.  Takes cfg (a reload replaces it) and frees it.
 */
int
pool_run(const char *confpath, struct config *cfg, const struct config_override *over,
    size_t nover)
{
	struct slot slots[MAX_WORKERS * 2];
	struct stat bound;		/* the socket file we created */
	struct config *next;
	sigset_t mask, old;
	char err[256];
	int listenfd, n, i, gen = 0, total;

	if ((listenfd = listen_fd(cfg)) < 0) {
		config_free(cfg);
		return 1;
	}
	memset(&bound, 0, sizeof(bound));
	if (socket_path(cfg->listen) != NULL)
		(void)stat(socket_path(cfg->listen), &bound);
	if (metrics_init(router_count()) != 0) {
		log_error("cannot map the metrics area");
		config_free(cfg);
		return 1;
	}
	write_pidfile(cfg->pidfile);
	set_handler(SIGTERM, on_signal);
	set_handler(SIGINT, on_signal);
	set_handler(SIGHUP, on_signal);
	set_handler(SIGCHLD, on_signal);
	set_handler(SIGALRM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)cfg->maintain_interval);

	memset(slots, 0, sizeof(slots));
	n = cfg->workers;
	for (i = 0; i < n; i++) {
		slots[i].pid = spawn(listenfd, cfg);
		slots[i].started = time(NULL);
	}
	total = n;
	log_info("sockudo-fcgi %s: %d workers x %d threads on %s", PACKAGE_VERSION, n,
	    cfg->threads, *cfg->listen ? cfg->listen : "fd 0");

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGALRM);
	sigprocmask(SIG_BLOCK, &mask, &old);
	while (!got_term) {
		if (!got_chld && !got_hup && !got_alrm)
			sigsuspend(&old);
		if (got_alrm) {
			got_alrm = 0;
			maintain_child(listenfd, cfg);
			alarm((unsigned)cfg->maintain_interval);
		}
		if (got_chld) {
			got_chld = 0;
			reap(slots, total, listenfd, cfg, gen, 0);
		}
		if (got_hup) {
			got_hup = 0;
			if ((next = config_new()) == NULL ||
			    config_load(next, confpath, err, sizeof(err)) != 0 ||
			    config_apply(next, over, nover, err, sizeof(err)) != 0) {
				log_error("reload: %s; keeping the running config",
				    next ? err : "out of memory");
				config_free(next);
				continue;
			}
			/* the socket and pidfile are the ones we created: shutdown removes them */
			if (strcmp(next->listen, cfg->listen) != 0)
				log_warn("reload: a new listen address needs a restart");
			if (config_set(next, "listen", cfg->listen, err, sizeof(err)) != 0 ||
			    config_set(next, "pidfile", cfg->pidfile, err, sizeof(err)) != 0) {
				log_error("reload: %s; keeping the running config", err);
				config_free(next);
				continue;
			}
			/* old workers keep a private copy of the old config after fork */
			config_free(cfg);
			cfg = next;
			log_set_level(cfg->log_level);
			alarm((unsigned)cfg->maintain_interval);
			gen++;
			/* compact live slots, then start the new generation */
			int k = 0;
			for (i = 0; i < total; i++)
				if (slots[i].pid > 0)
					slots[k++] = slots[i];
			total = k;
			n = cfg->workers;
			for (i = 0; i < n && total < MAX_WORKERS * 2; i++) {
				slots[total].pid = spawn(listenfd, cfg);
				slots[total].gen = gen;
				slots[total++].started = time(NULL);
			}
			signal_gen(slots, total, gen, SIGTERM);
			log_info("reloaded: generation %d, %d workers", gen, n);
		}
	}
	log_info("stopping: draining %d workers", live_workers(slots, total));
	/*
	 * New connections are refused from now on (the workers close their
	 * copies too), so a web server fails over at once instead of queueing
	 * requests on a socket nobody will accept from again.
	 */
	unlink_own_socket(cfg->listen, &bound);
	close(listenfd);
	signal_gen(slots, total, gen + 1, SIGTERM);
	for (i = 0; i < (cfg->request_timeout + 5) * 10 && live_workers(slots, total) > 0; i++) {
		reap(slots, total, listenfd, cfg, gen, 1);
		usleep(100000);
	}
	signal_gen(slots, total, gen + 1, SIGKILL);
	while (waitpid(-1, NULL, 0) > 0)
		;
	unlink_own_pidfile(cfg->pidfile);
	log_info("stopped");
	config_free(cfg);
	return 0;
}
