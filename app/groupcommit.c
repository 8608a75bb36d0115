/* app/groupcommit.c: leader/follower group commit among the threads of one process. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include "app.h"

/*
 * Threads that want to commit durable work queue it here.  While no
 * thread is committing, the first one to look becomes the leader: it
 * takes up to `max` queued items (its own among them or not) and runs
 * them in one transaction on its own connection, so that one fsync
 * serves many requests.  The rest wait for their item to be done; when
 * the leader finishes, a waiting thread leads the next group.  Nothing is
 * shared with other processes: the database serialises them.
 */
struct groupcommit {
	pthread_mutex_t	 mu;
	struct gc_item	*head, *tail;
	int		 leading;
	size_t		 max;
};

struct groupcommit *
gc_new(size_t max)
{
	struct groupcommit *g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	pthread_mutex_init(&g->mu, NULL);
	g->max = max < 1 ? 1 : max;
	return g;
}

void
gc_free(struct groupcommit *g)
{
	if (g == NULL)
		return;
	pthread_mutex_destroy(&g->mu);
	free(g);
}

/* Take up to max queued items that may share a transaction; called locked. */
static size_t
take_group(struct groupcommit *g, const struct gc_ops *ops, struct gc_item **batch)
{
	struct gc_item *p, **pp;
	size_t n = 0;

	for (pp = &g->head; *pp != NULL && n < g->max && n < GC_MAX_GROUP;) {
		p = *pp;
		if (ops->conflicts != NULL && ops->conflicts(p, batch, n)) {
			pp = &p->next;	/* waits for the next group */
			continue;
		}
		batch[n++] = p;
		*pp = p->next;
	}
	g->tail = NULL;
	for (p = g->head; p != NULL; p = p->next)
		g->tail = p;
	return n;
}

/*
 * Submit it and return its rc once it is done (by this thread or
 * another).  ops->run is called with the leader's ctx for each group and
 * must set every item's rc, keeping each item's outcome separate;
 * ops->conflicts keeps an item out of a group it cannot share (it waits
 * for the next one).  Each waiter sleeps on its own condition, so a
 * commit wakes only the threads it finished and the next leader.
 */
int
gc_submit(struct groupcommit *g, struct gc_item *it, const struct gc_ops *ops, void *ctx)
{
	struct gc_item *batch[GC_MAX_GROUP];
	size_t n, i;

	it->done = 0;
	it->next = NULL;
	pthread_cond_init(&it->cv, NULL);
	pthread_mutex_lock(&g->mu);
	if (g->tail != NULL)
		g->tail->next = it;
	else
		g->head = it;
	g->tail = it;
	while (!it->done) {
		if (g->leading) {
			pthread_cond_wait(&it->cv, &g->mu);
			continue;
		}
		g->leading = 1;
		n = take_group(g, ops, batch);
		pthread_mutex_unlock(&g->mu);
		metrics_group(n);
		ops->run(batch, n, ctx);
		pthread_mutex_lock(&g->mu);
		for (i = 0; i < n; i++) {
			batch[i]->done = 1;
			if (batch[i] != it)
				pthread_cond_signal(&batch[i]->cv);
		}
		g->leading = 0;
		/* the oldest waiter leads the next group */
		if (g->head != NULL && g->head != it)
			pthread_cond_signal(&g->head->cv);
	}
	pthread_mutex_unlock(&g->mu);
	pthread_cond_destroy(&it->cv);
	return it->rc;
}
