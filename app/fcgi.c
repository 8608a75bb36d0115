/* app/fcgi.c: the FastCGI side: listening, accepting, reading requests, writing answers. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "app.h"

/*
 * Open the listening socket for addr: "unix:/path", "/path" or
 * "host:port".  Returns the fd or -1.
 */
int
fcgi_open_listen(const char *addr)
{
	const char *spec = addr;
	int fd;

	if (strncmp(spec, "unix:", 5) == 0)
		spec += 5;
	if (*spec == '/')
		(void)unlink(spec);	/* a stale socket from a previous run */
	if (FCGX_Init() != 0)
		return -1;
	fd = FCGX_OpenSocket(spec, 1024);
	if (fd < 0)
		return -1;
	if (*spec == '/')
		(void)chmod(spec, 0660);
	return fd;
}

struct serve {
	int			 listenfd;
	const struct config	*cfg;
	volatile int		*stop;
	int			 stop_pipe[2];	/* written once to wake the waiter */
	pthread_mutex_t		 accept_mu;	/* held by the thread waiting to accept */
	struct groupcommit	*publishes;
};

/* Copy a FastCGI parameter: libfcgi's storage dies at FCGX_Finish_r. */
static char *
param(FCGX_Request *fr, const char *name)
{
	const char *v = FCGX_GetParam(name, fr->envp);

	return v != NULL ? strdup(v) : NULL;
}

/*
 * Read the body up to the end of the FastCGI stdin stream, which must
 * hold exactly CONTENT_LENGTH bytes when that is given.  Reading to the
 * end means the web server has nothing more to send, so the connection
 * may be closed at once afterwards.  Over max_body_bytes is a 413 before
 * anything is read or signed (SPEC 3).
 */
static int
read_body(FCGX_Request *fr, struct req *r, struct resp *p)
{
	size_t max = (size_t)r->cfg->max_body_bytes, cap, len = 0;
	long long cl = -1;
	char *cls = param(fr, "CONTENT_LENGTH");
	int n;

	if (cls != NULL && *cls != '\0' && str_to_ll(cls, 0, 1LL << 40, &cl) != 0) {
		free(cls);
		return resp_error(p, 400, "invalid_input", "malformed Content-Length");
	}
	free(cls);
	if (cl > (long long)max)
		return resp_error(p, 413, "payload_too_large",
		    "the body is over %zu bytes", max);
	/* one byte more than announced: room to see the end of the stream */
	cap = cl >= 0 ? (size_t)cl + 1 : 4096;
	if ((r->body = malloc(cap + 1)) == NULL)
		return resp_error(p, 500, "internal", "out of memory");
	for (;;) {
		if (len == cap) {
			if (cap > max || cl >= 0)
				return resp_error(p, cl >= 0 ? 400 : 413, cl >= 0 ?
				    "invalid_input" : "payload_too_large", cl >= 0 ?
				    "the body is longer than Content-Length" :
				    "the body is over the size limit");
			char *nb = realloc(r->body, cap * 2 + 1);
			if (nb == NULL)
				return resp_error(p, 500, "internal", "out of memory");
			r->body = nb;
			cap *= 2;
		}
		n = FCGX_GetStr(r->body + len, (int)(cap - len), fr->in);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (cl >= 0 && len != (size_t)cl)
		return resp_error(p, 400, "invalid_input", "the body is shorter than Content-Length");
	if (len > max)
		return resp_error(p, 413, "payload_too_large", "the body is over %zu bytes", max);
	r->body[len] = '\0';
	r->bodylen = len;
	return 0;
}

/* Fill r from the FastCGI environment; the path is taken raw from REQUEST_URI (SPEC 1). */
static int
read_request(FCGX_Request *fr, struct req *r, struct resp *p)
{
	char *q;

	r->method = param(fr, "REQUEST_METHOD");
	r->uri = param(fr, "REQUEST_URI");
	r->content_type = param(fr, "CONTENT_TYPE");
	r->idem_header = param(fr, "HTTP_X_IDEMPOTENCY_KEY");
	r->remote_addr = param(fr, "REMOTE_ADDR");
	r->grip_sig = param(fr, "HTTP_GRIP_SIG");	/* came through Pushpin */
	if (r->uri != NULL && strncmp(r->uri, "/app/", 5) == 0) {
		/* a WebSocket-over-HTTP request from Pushpin (handlers/socket.c) */
		r->meta_user = param(fr, "HTTP_META_USER");
		r->meta_uid = param(fr, "HTTP_META_UID");
		r->meta_renew = param(fr, "HTTP_META_RENEW");
		r->meta_seen = param(fr, "HTTP_META_SEEN");
		r->meta_ce = param(fr, "HTTP_META_CE");
	}
	if (r->method == NULL || r->uri == NULL || r->uri[0] != '/')
		return resp_error(p, 400, "invalid_input", "no REQUEST_URI from the web server");
	if ((q = strchr(r->uri, '?')) != NULL) {
		r->path = strndup(r->uri, (size_t)(q - r->uri));
		r->query = strdup(q + 1);
	} else {
		r->path = strdup(r->uri);
		r->query = strdup("");
	}
	if (r->path == NULL || r->query == NULL)
		return resp_error(p, 500, "internal", "out of memory");
	return read_body(fr, r, p);
}

static void
write_response(FCGX_Request *fr, const struct resp *p)
{
	size_t len;
	const char *body = resp_body(p, &len);
	char *head = resp_head(p, len);

	if (head != NULL) {
		FCGX_PutStr(head, (int)strlen(head), fr->out);
		FCGX_PutStr(body, (int)len, fr->out);
	}
	free(head);
}

/*
 * Serve one request.  When the whole request was read, the connection is
 * detached so that FCGX_Finish_r closes it at once: libfcgi would
 * otherwise shut it down and wait for the web server's EOF, a wakeup and
 * a context switch per request for nothing.  A request cut short (a 413
 * before the body) keeps that lingering close, which protects the answer
 * from a reset while unread input is still arriving.
 */
static void
handle(FCGX_Request *fr, struct worker *w, const struct config *cfg)
{
	struct timeval tv = { cfg->request_timeout, 0 };
	struct req r;
	struct resp p;

	req_init(&r);
	resp_init(&p);
	r.cfg = cfg;
	r.w = w;
	r.start_us = mono_us();
	/* a stalled web server cannot hold this thread longer than request_timeout */
	setsockopt(fr->ipcFd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fr->ipcFd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (read_request(fr, &r, &p) == 0) {
		router_handle(&r, &p);
		FCGX_Detach(fr);
	}
	write_response(fr, &p);
	metrics_record(r.route, p.status, mono_us() - r.start_us);
	if (p.status >= 500)
		log_warn("%s %s -> %d", r.method ? r.method : "-", r.path ? r.path : "-",
		    p.status);
	else
		log_debug("%s %s -> %d", r.method ? r.method : "-", r.path ? r.path : "-",
		    p.status);
	resp_free(&p);
	req_free(&r);
}

/*
 * Take the next connection: returns 1 with one accepted into fr, 0 to
 * stop.  One thread per process waits on the socket at a time (the rest
 * queue on accept_mu), so a connection wakes one thread, not all of them,
 * and the waiter sees every connection that is pending (poll is level
 * triggered).  The stop pipe wakes the waiter; no signal is used, so
 * nothing can interrupt libfcgi halfway through taking a connection.
 */
static int
next_connection(struct serve *s, FCGX_Request *fr)
{
	struct pollfd pfd[2] = { { .fd = s->listenfd, .events = POLLIN },
	    { .fd = s->stop_pipe[0], .events = POLLIN } };
	int rc, got = 0;

	pthread_mutex_lock(&s->accept_mu);
	while (!got && !*s->stop) {
		if (poll(pfd, 2, -1) < 0 || !(pfd[0].revents & POLLIN) || *s->stop)
			continue;
		/* non-blocking socket: EAGAIN when another process took it */
		if ((rc = FCGX_Accept_r(fr)) >= 0)
			got = 1;
		else if (rc != -EAGAIN && rc != -EWOULDBLOCK && rc != -EINTR) {
			log_warn("accept: %s", strerror(-rc));
			usleep(10000);	/* EMFILE and friends: do not spin */
		}
	}
	pthread_mutex_unlock(&s->accept_mu);
	return got;
}

static void *
serve_thread(void *arg)
{
	struct serve *s = arg;
	struct worker *w;
	FCGX_Request fr;

	if ((w = worker_new(s->cfg)) == NULL) {
		log_error("worker: cannot set up a thread");
		return NULL;
	}
	w->publishes = s->publishes;
	FCGX_InitRequest(&fr, s->listenfd, 0);
	while (next_connection(s, &fr)) {
		handle(&fr, w, s->cfg);
		FCGX_Finish_r(&fr);
	}
	FCGX_Free(&fr, 1);
	worker_free(w);
	return NULL;
}

/*
 * Serve listenfd with cfg->threads threads until *stop becomes true;
 * then let each thread finish the request it is in and return.
 */
int
fcgi_serve(int listenfd, const struct config *cfg, volatile int *stop)
{
	struct serve s = { .listenfd = listenfd, .cfg = cfg, .stop = stop };
	pthread_t *tids;
	int i, n = cfg->threads, flags;

	if (FCGX_Init() != 0 || grip_init() != 0 || pipe2(s.stop_pipe, O_CLOEXEC) != 0)
		return -1;
	pthread_mutex_init(&s.accept_mu, NULL);
	flags = fcntl(listenfd, F_GETFL);
	if (flags < 0 || fcntl(listenfd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -1;
	/* a group can hold at most one publish per thread */
	if ((s.publishes = gc_new((size_t)n)) == NULL ||
	    (tids = calloc((size_t)n, sizeof(*tids))) == NULL) {
		gc_free(s.publishes);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (pthread_create(&tids[i], NULL, serve_thread, &s) != 0) {
			log_error("cannot start thread %d", i);
			*stop = 1;
			n = i;
			break;
		}
	while (!*stop)
		usleep(100000);
	/*
	 * Let go of the socket first, so that new connections go to other
	 * workers (or, when the whole pool stops, are refused), then wake
	 * the waiting thread; threads in a request finish it first.
	 */
	close(listenfd);
	(void)write(s.stop_pipe[1], "x", 1);
	for (i = 0; i < n; i++)
		pthread_join(tids[i], NULL);
	close(s.stop_pipe[0]);
	close(s.stop_pipe[1]);
	pthread_mutex_destroy(&s.accept_mu);
	free(tids);
	gc_free(s.publishes);
	return 0;
}
