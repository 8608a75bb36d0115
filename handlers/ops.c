/* handlers/ops.c: unsigned operator routes: /live, /up, /stats, /metrics (SPEC 9). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "db/db.h"

/* GET /live: the process answers; no dependency is checked.  Status: 200. */
int
h_ops_live(struct req *r, struct resp *p)
{
	return resp_text(p, 200, "text/plain", "OK\n");
}

struct deps {
	int	 db_ok, mc_ok;
	int64_t	 db_us, mc_us;
};

/* Ping MariaDB and memcached, recording their round trips; returns the first failure or NULL. */
static const char *
check_deps(struct req *r, struct deps *d)
{
	int64_t t0 = mono_us(), t1, t2;

	d->db_ok = db_ping(r->w->db) == 0;
	t1 = mono_us();
	d->mc_ok = cache_ping(r->w->cache) == 0;
	t2 = mono_us();
	d->db_us = t1 - t0;
	d->mc_us = t2 - t1;
	metrics_dep_latency(DEP_MARIADB, d->db_us);
	metrics_dep_latency(DEP_MEMCACHED, d->mc_us);
	if (!d->db_ok)
		return "mariadb";
	if (!d->mc_ok)
		return "memcached";
	return NULL;
}

static int
down(struct resp *p, const char *what)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "DOWN: %s\n", what);
	p->retry_after = 1;
	return resp_text(p, 503, "text/plain", msg);
}

/* GET /up: 200 OK when MariaDB and memcached answer, else 503 naming the failure. */
int
h_ops_up(struct req *r, struct resp *p)
{
	struct deps d;
	const char *bad = check_deps(r, &d);

	return bad ? down(p, bad) : resp_text(p, 200, "text/plain", "OK\n");
}

/* GET /up/{app_id}: as /up, and 503 for an unknown or disabled app. */
int
h_ops_up_app(struct req *r, struct resp *p)
{
	struct deps d;
	const char *bad = check_deps(r, &d);
	struct app app;
	int rc;

	if (bad)
		return down(p, bad);
	rc = worker_app_by_id(r->w, r->args[0], &app);
	if (rc < 0)
		return down(p, "mariadb");
	if (rc > 0)
		return resp_text(p, 404, "text/plain", "DOWN: unknown app\n");
	if (!app.enabled)
		return down(p, "app disabled");
	return resp_text(p, 200, "text/plain", "OK\n");
}

static json_object *
dep_json(int up, int64_t us)
{
	json_object *o = json_object_new_object();
	char ms[32];

	snprintf(ms, sizeof(ms), "%.3f", (double)us / 1000);
	json_object_object_add(o, "up", json_object_new_boolean(up));
	json_object_object_add(o, "latency_ms", json_object_new_double_s((double)us / 1000, ms));
	return o;
}

/* GET /stats: JSON counters and live dependency latencies.  Status: 200. */
int
h_ops_stats(struct req *r, struct resp *p)
{
	json_object *o = metrics_stats_json(), *deps = json_object_new_object();
	struct deps d;
	long long apps = -1;

	(void)check_deps(r, &d);
	if (d.db_ok)
		(void)db_app_count(r->w->db, &apps);
	json_object_object_add(o, "apps", apps >= 0 ? json_object_new_int64(apps) : NULL);
	json_object_object_add(deps, "mariadb", dep_json(d.db_ok, d.db_us));
	json_object_object_add(deps, "memcached", dep_json(d.mc_ok, d.mc_us));
	json_object_object_add(o, "dependencies", deps);
	return resp_json(p, 200, o);
}

/* GET /metrics: Prometheus text format.  Status: 200. */
int
h_ops_metrics(struct req *r, struct resp *p)
{
	char *text = metrics_prometheus();
	int rc = resp_text(p, 200, "text/plain; version=0.0.4", text ? text : "");

	free(text);
	return rc;
}
