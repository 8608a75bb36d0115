/*
 * app/webhookd.c: sockudo-pushd's realtime chores, in one thread: send
 * queued webhooks (signed as Pusher signs them, retried with backoff) and
 * sweep connections whose lease ran out (their Pushpin restarted or lost
 * them), so that channel state holds no ghosts.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "app.h"
#include "db/db.h"
#include "handlers/handlers.h"

#define HOOK_SLOTS	50	/* webhooks in flight at once */
#define SWEEP_BATCH	100
#define RETRY_MAX_MS	(10 * 60 * 1000)

/* One webhook being sent. */
struct slot {
	struct webhook		 w;
	CURL			*e;		/* NULL: the slot is free */
	struct curl_slist	*hdr;
};

struct hookd {
	const struct config	*cfg;
	struct db		*db;
	struct grip_pub		*grip;
	CURLM			*multi;
	struct slot		 slot[HOOK_SLOTS];
	size_t			 busy;
};

/* One webhook's HTTP request: Pusher's X-Pusher-Key and X-Pusher-Signature. */
static CURL *
hook_request(const struct app *a, const char *body, struct curl_slist **hdr, long timeout_ms)
{
	char sig[65], line[160];
	CURL *e;

	if ((e = curl_easy_init()) == NULL)
		return NULL;
	auth_hmac_hex(a->secret, body, sig);
	*hdr = curl_slist_append(NULL, "Content-Type: application/json");
	snprintf(line, sizeof(line), "X-Pusher-Key: %s", a->key);
	*hdr = curl_slist_append(*hdr, line);
	snprintf(line, sizeof(line), "X-Pusher-Signature: %s", sig);
	*hdr = curl_slist_append(*hdr, line);
	curl_easy_setopt(e, CURLOPT_URL, a->webhook_url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, *hdr);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "sockudo-fcgi webhooks");
	return e;
}

/* A failed webhook: retry later (exponential backoff), or give up at the limit. */
static void
hook_failed(struct hookd *h, const struct webhook *w, const char *why)
{
	int attempts = w->attempts + 1;
	int64_t delay = (int64_t)h->cfg->webhook_retry_base_ms << (attempts < 20 ? attempts - 1 : 19);

	if (delay > RETRY_MAX_MS)
		delay = RETRY_MAX_MS;

	if (attempts >= h->cfg->webhook_max_attempts) {
		log_error("webhook %lld of app %s dropped after %d attempts: %s", w->id,
		    w->app_id, attempts, why);
		(void)db_webhook_done(h->db, w->id);
		return;
	}
	log_warn("webhook %lld of app %s failed (%s); attempt %d in %lld ms", w->id,
	    w->app_id, why, attempts + 1, (long long)delay);
	(void)db_webhook_retry(h->db, w->id, attempts, now_ms() + delay, why);
}

/*
 * Start sending due webhooks in the free slots.  Requests run in the
 * background of the loop (reap() collects them), so one slow receiver
 * holds one slot, not every app's webhooks nor the sweep.  Returns how
 * many started.
 */
static size_t
start(struct hookd *h)
{
	struct webhook w[HOOK_SLOTS];
	struct app a;
	size_t n = 0, i, k = 0;

	if (h->busy == HOOK_SLOTS)
		return 0;
	/* the lease outlasts the request's timeout: another sender never doubles one */
	if (db_webhook_claim(h->db, now_ms(), h->cfg->webhook_timeout_ms * 2LL + 5000, w,
	    HOOK_SLOTS - h->busy, &n) != 0)
		return 0;
	for (i = 0; i < n; i++) {
		struct slot *sl;
		if (db_app_get(h->db, "id", w[i].app_id, &a) != 0 || a.webhook_url[0] == '\0') {
			(void)db_webhook_done(h->db, w[i].id);	/* the app or its URL is gone */
			webhook_free(&w[i]);
			continue;
		}
		while (h->slot[k].e != NULL)
			k++;
		sl = &h->slot[k];
		sl->w = w[i];
		if ((sl->e = hook_request(&a, sl->w.body, &sl->hdr, h->cfg->webhook_timeout_ms)) == NULL) {
			webhook_free(&sl->w);	/* its lease runs out; retried then */
			continue;
		}
		curl_easy_setopt(sl->e, CURLOPT_PRIVATE, (void *)sl);
		curl_multi_add_handle(h->multi, sl->e);
		h->busy++;
	}
	return n;
}

/* Record the outcome of every finished webhook and free its slot; returns how many. */
static size_t
reap(struct hookd *h)
{
	struct slot *sl;
	CURLMsg *m;
	char why[200];
	long code;
	int running, left;
	size_t n = 0;

	curl_multi_perform(h->multi, &running);
	while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		sl = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
		code = 0;
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		if (m->data.result == CURLE_OK && code / 100 == 2)
			(void)db_webhook_done(h->db, sl->w.id);
		else {
			if (m->data.result != CURLE_OK)
				snprintf(why, sizeof(why), "%s", curl_easy_strerror(m->data.result));
			else
				snprintf(why, sizeof(why), "HTTP %ld", code);
			hook_failed(h, &sl->w, why);
		}
		curl_multi_remove_handle(h->multi, sl->e);
		curl_easy_cleanup(sl->e);
		curl_slist_free_all(sl->hdr);
		webhook_free(&sl->w);
		sl->e = NULL;
		sl->hdr = NULL;
		h->busy--;
		n++;
	}
	return n;
}

struct sweep {
	char	app_id[SWEEP_BATCH][65];
	char	socket_id[SWEEP_BATCH][64];
	size_t	n;
};

static int
row_expired(const char *app_id, const char *socket_id, void *arg)
{
	struct sweep *s = arg;

	if (s->n == SWEEP_BATCH)
		return 1;
	snprintf(s->app_id[s->n], sizeof(s->app_id[0]), "%s", app_id);
	snprintf(s->socket_id[s->n], sizeof(s->socket_id[0]), "%s", socket_id);
	s->n++;
	return 0;
}

/*
 * Connections unheard of for ws_lease_s leave their channels (with
 * their member_removed and channel_vacated events), and are told to
 * reconnect in case their socket is still somewhere.  Returns how many.
 */
static size_t
sweep(struct hookd *h)
{
	struct sweep *s = calloc(1, sizeof(*s));
	struct app a;
	struct rt t = { h->db, h->grip, &a, NULL };
	size_t i, n = 0;

	if (s == NULL || db_conns_expired(h->db, now_ms(), SWEEP_BATCH, row_expired, s) != 0) {
		free(s);
		return 0;
	}
	for (i = 0; i < s->n; i++) {
		if (db_app_get(h->db, "id", s->app_id[i], &a) != 0) {
			/* no app: nothing to tell anyone, just forget the socket */
			(void)db_conn_remove(h->db, s->app_id[i], s->socket_id[i]);
			continue;
		}
		if (rt_disconnect(&t, s->socket_id[i]) == 0) {
			rt_close_socket(h->grip, a.id, s->socket_id[i], 4200,
			    "the connection expired; reconnect");
			log_info("swept connection %s of app %s (lease ran out)",
			    s->socket_id[i], a.id);
			n++;
		}
	}
	free(s);
	return n;
}

/*
 * The thread: until *stop, start due webhooks, sweep, and wait a little
 * for the requests in flight (or, with nothing to do, for the next poll).
 */
void *
webhookd_run(void *arg)
{
	struct webhookd *wd = arg;
	struct hookd h = { .cfg = wd->cfg };
	int idle_ms = wd->cfg->push_poll_ms > 200 ? 200 : wd->cfg->push_poll_ms;
	size_t did, i;

	h.db = db_new(wd->cfg);
	h.grip = grip_pub_new(wd->cfg->pushpin_publish, wd->cfg->pushpin_timeout_ms,
	    wd->cfg->pushpin_max_body);
	h.multi = curl_multi_init();
	if (h.db == NULL || h.multi == NULL) {
		log_error("pushd: the webhook thread cannot start");
		wd->failed = 1;
		goto out;
	}
	while (!*wd->stop) {
		did = start(&h) + sweep(&h);
		curl_multi_poll(h.multi, NULL, 0, did ? 0 : h.busy ? 20 : idle_ms, NULL);
		did += reap(&h);
		if (wd->once && did == 0 && h.busy == 0)
			break;
	}
	/* stopping: what is in flight is not recorded; its lease makes it due again */
	for (i = 0; i < HOOK_SLOTS; i++) {
		if (h.slot[i].e == NULL)
			continue;
		curl_multi_remove_handle(h.multi, h.slot[i].e);
		curl_easy_cleanup(h.slot[i].e);
		curl_slist_free_all(h.slot[i].hdr);
		webhook_free(&h.slot[i].w);
	}
out:
	if (h.multi != NULL)
		curl_multi_cleanup(h.multi);
	grip_pub_free(h.grip);
	db_free(h.db);
	return NULL;
}
