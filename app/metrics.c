/* app/metrics.c: pool-wide counters and latency histograms in shared memory. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "app.h"

/* Upper bounds of the latency buckets, in microseconds (Prometheus "le"). */
static const int64_t bounds_us[] = { 1000, 2500, 5000, 10000, 25000, 50000, 100000,
    250000, 500000, 1000000, 2500000 };
#define NBUCKETS (sizeof(bounds_us) / sizeof(bounds_us[0]))
#define NCLASSES 5	/* 1xx..5xx */

struct route_metrics {
	uint64_t	count[NCLASSES];
	uint64_t	buckets[NBUCKETS];	/* non-cumulative */
	uint64_t	sum_us;
};

/*
 * Mapped once by the supervisor before it forks, so every worker process
 * adds to the same counters with atomic operations and /metrics shows
 * the whole pool.  The last route slot counts requests that matched none.
 */
#define NGROUPS 6	/* group sizes 1, 2-3, 4-7, 8-15, 16-31, 32+ */

struct metrics {
	uint64_t		requests;
	uint64_t		publishes;
	uint64_t		groups[NGROUPS];	/* publish group commits by size */
	uint64_t		grouped;		/* publishes in them */
	uint64_t		by_status[600];
	uint64_t		dep_count[DEP_COUNT];
	uint64_t		dep_sum_us[DEP_COUNT];
	size_t			nroutes;
	struct route_metrics	routes[];
};

static struct metrics *m;

int
metrics_init(size_t nroutes)
{
	size_t len = sizeof(*m) + (nroutes + 1) * sizeof(struct route_metrics);
	void *p;

	if (m != NULL)
		return 0;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	m = p;
	m->nroutes = nroutes;
	return 0;
}

#define ADD(x, v) __atomic_add_fetch(&(x), (v), __ATOMIC_RELAXED)
#define GET(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

void
metrics_record(int route, int status, int64_t us)
{
	struct route_metrics *r;
	size_t b;

	if (m == NULL)
		return;
	r = &m->routes[route >= 0 && (size_t)route < m->nroutes ? (size_t)route : m->nroutes];
	ADD(m->requests, 1);
	if (status >= 100 && status < 600) {
		ADD(m->by_status[status], 1);
		ADD(r->count[status / 100 - 1], 1);
	}
	for (b = 0; b < NBUCKETS && us > bounds_us[b]; b++)
		;
	if (b < NBUCKETS)
		ADD(r->buckets[b], 1);
	ADD(r->sum_us, (uint64_t)(us > 0 ? us : 0));
}

void
metrics_count_publish(unsigned n)
{
	if (m != NULL)
		ADD(m->publishes, n);
}

/* One group commit of n publishes (app/groupcommit.c). */
void
metrics_group(size_t n)
{
	size_t b = 0;

	if (m == NULL || n == 0)
		return;
	while (b + 1 < NGROUPS && n >= ((size_t)2 << b))
		b++;
	ADD(m->groups[b], 1);
	ADD(m->grouped, n);
}

void
metrics_dep_latency(int dep, int64_t us)
{
	if (m == NULL || dep < 0 || dep >= DEP_COUNT)
		return;
	ADD(m->dep_count[dep], 1);
	ADD(m->dep_sum_us[dep], (uint64_t)us);
}

struct buf {
	char	*p;
	size_t	 len, cap;
};

static void
bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
bprintf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (b->p != NULL && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap + (size_t)n + 1) * 2;
		char *np = realloc(b->p, cap);
		if (np == NULL)
			return;
		b->p = np;
		b->cap = cap;
	}
}

static const char *
route_label(size_t i)
{
	const struct route *rt = router_get(i);

	return rt != NULL ? rt->name : "unmatched";
}

/* The Prometheus text exposition (version 0.0.4); malloc'd. */
char *
metrics_prometheus(void)
{
	static const char *const deps[DEP_COUNT] = { "mariadb", "memcached" };
	struct buf b = { 0 };
	size_t i, k;
	int c;

	bprintf(&b, "# HELP sockudo_requests_total Requests by route and status class.\n"
	    "# TYPE sockudo_requests_total counter\n");
	if (m == NULL)
		return b.p;
	for (i = 0; i <= m->nroutes; i++)
		for (c = 0; c < NCLASSES; c++)
			if (GET(m->routes[i].count[c]) > 0)
				bprintf(&b, "sockudo_requests_total{route=\"%s\",code=\"%dxx\"} %llu\n",
				    route_label(i), c + 1,
				    (unsigned long long)GET(m->routes[i].count[c]));
	bprintf(&b, "# HELP sockudo_request_duration_seconds Request latency by route.\n"
	    "# TYPE sockudo_request_duration_seconds histogram\n");
	for (i = 0; i <= m->nroutes; i++) {
		uint64_t cum = 0;
		for (k = 0; k < NBUCKETS; k++) {
			cum += GET(m->routes[i].buckets[k]);
			bprintf(&b, "sockudo_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
			    route_label(i), (double)bounds_us[k] / 1e6, (unsigned long long)cum);
		}
		uint64_t total = 0;
		for (c = 0; c < NCLASSES; c++)
			total += GET(m->routes[i].count[c]);
		bprintf(&b, "sockudo_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
		    "sockudo_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
		    "sockudo_request_duration_seconds_count{route=\"%s\"} %llu\n",
		    route_label(i), (unsigned long long)total, route_label(i),
		    (double)GET(m->routes[i].sum_us) / 1e6, route_label(i),
		    (unsigned long long)total);
	}
	bprintf(&b, "# HELP sockudo_published_events_total Events accepted for publishing.\n"
	    "# TYPE sockudo_published_events_total counter\n"
	    "sockudo_published_events_total %llu\n", (unsigned long long)GET(m->publishes));
	bprintf(&b, "# HELP sockudo_publish_group_commits Publish transactions by the number"
	    " of requests they committed together.\n"
	    "# TYPE sockudo_publish_group_commits histogram\n");
	{
		static const char *const le[NGROUPS] = { "1", "3", "7", "15", "31", "+Inf" };
		uint64_t cum = 0, total = 0;
		for (c = 0; c < NGROUPS; c++) {
			cum += GET(m->groups[c]);
			bprintf(&b, "sockudo_publish_group_commits_bucket{le=\"%s\"} %llu\n", le[c],
			    (unsigned long long)cum);
		}
		total = cum;
		bprintf(&b, "sockudo_publish_group_commits_sum %llu\n"
		    "sockudo_publish_group_commits_count %llu\n",
		    (unsigned long long)GET(m->grouped), (unsigned long long)total);
	}
	bprintf(&b, "# HELP sockudo_dependency_check_seconds Health-check round trips.\n"
	    "# TYPE sockudo_dependency_check_seconds summary\n");
	for (c = 0; c < DEP_COUNT; c++)
		bprintf(&b, "sockudo_dependency_check_seconds_sum{dependency=\"%s\"} %.6f\n"
		    "sockudo_dependency_check_seconds_count{dependency=\"%s\"} %llu\n",
		    deps[c], (double)GET(m->dep_sum_us[c]) / 1e6, deps[c],
		    (unsigned long long)GET(m->dep_count[c]));
	return b.p;
}

/* Counters for /stats (the caller adds apps and live dependency checks). */
json_object *
metrics_stats_json(void)
{
	json_object *o = json_object_new_object(), *errs = json_object_new_object();
	char code[8];
	int s;

	json_object_object_add(o, "requests", json_object_new_int64(m ? (int64_t)GET(m->requests) : 0));
	json_object_object_add(o, "publishes",
	    json_object_new_int64(m ? (int64_t)GET(m->publishes) : 0));
	for (s = 400; m != NULL && s < 600; s++)
		if (GET(m->by_status[s]) > 0) {
			snprintf(code, sizeof(code), "%d", s);
			json_object_object_add(errs, code,
			    json_object_new_int64((int64_t)GET(m->by_status[s])));
		}
	json_object_object_add(o, "errors_by_status", errs);
	return o;
}
