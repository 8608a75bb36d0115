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

/* Ping MariaDB and memcached; records their latency; returns the failed one or NULL. */
static const char *
check_deps(struct req *r, int64_t *db_us, int64_t *mc_us)
{
	int64_t t0 = mono_us();
	int dbrc = db_ping(r->w->db);
	int64_t t1 = mono_us();
	int mcrc = cache_ping(r->w->cache);
	int64_t t2 = mono_us();

	*db_us = t1 - t0;
	*mc_us = t2 - t1;
	metrics_dep_latency(DEP_MARIADB, *db_us);
	metrics_dep_latency(DEP_MEMCACHED, *mc_us);
	if (dbrc != 0)
		return "mariadb";
	if (mcrc != 0)
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
	int64_t a, b;
	const char *bad = check_deps(r, &a, &b);

	return bad ? down(p, bad) : resp_text(p, 200, "text/plain", "OK\n");
}

/* GET /up/{app_id}: as /up, and 503 for an unknown or disabled app. */
int
h_ops_up_app(struct req *r, struct resp *p)
{
	int64_t a, b;
	const char *bad = check_deps(r, &a, &b);
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

/* GET /stats: JSON counters and live dependency latencies.  Status: 200. */
int
h_ops_stats(struct req *r, struct resp *p)
{
	json_object *o = metrics_stats_json(), *deps = json_object_new_object(), *d;
	int64_t db_us, mc_us;
	const char *bad = check_deps(r, &db_us, &mc_us);
	long long apps = -1;

	(void)db_app_count(r->w->db, &apps);
	json_object_object_add(o, "apps", apps >= 0 ? json_object_new_int64(apps) : NULL);
	d = json_object_new_object();
	json_object_object_add(d, "up", json_object_new_boolean(!bad || strcmp(bad, "mariadb")));
	json_object_object_add(d, "latency_ms", json_object_new_double((double)db_us / 1000));
	json_object_object_add(deps, "mariadb", d);
	d = json_object_new_object();
	json_object_object_add(d, "up", json_object_new_boolean(!bad || strcmp(bad, "memcached")));
	json_object_object_add(d, "latency_ms", json_object_new_double((double)mc_us / 1000));
	json_object_object_add(deps, "memcached", d);
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
