/* handlers/handlers.h: every route handler; one file per resource. */
#ifndef SOCKUDO_HANDLERS_H
#define SOCKUDO_HANDLERS_H

#include "app/app.h"

/* events.c (SPEC 3) */
int	h_events_publish(struct req *, struct resp *);
int	h_events_batch(struct req *, struct resp *);

/* channels.c (SPEC 4) */
int	h_channels_list(struct req *, struct resp *);
int	h_channels_show(struct req *, struct resp *);
int	h_channels_users(struct req *, struct resp *);
int	h_users_terminate(struct req *, struct resp *);

/* history.c (SPEC 5) */
int	h_history_list(struct req *, struct resp *);
int	h_history_state(struct req *, struct resp *);
int	h_history_purge(struct req *, struct resp *);

/* ops.c (SPEC 9) */
int	h_ops_live(struct req *, struct resp *);
int	h_ops_up(struct req *, struct resp *);
int	h_ops_up_app(struct req *, struct resp *);
int	h_ops_stats(struct req *, struct resp *);
int	h_ops_metrics(struct req *, struct resp *);

/* channel_state.c: the cached reads shared by events.c and channels.c */
int	channel_state_counts(struct req *, const char *channel, long long *subs,
	    long long *users);
json_object *channel_state_list(struct req *, const char *prefix, int subs, int users,
	    int *rc);

/* cursor.c: paging cursors bound to a scope string (SPEC 5-7) */
#define CURSOR_MAX 64
void	cursor_make(const struct req *, const char *scope, long long pos,
	    char out[CURSOR_MAX]);
int	cursor_parse(const struct req *, const char *scope, const char *cursor,
	    long long *pos);

/* store.c */
int	store_error(struct resp *, int rc, const char *store, const char *what);

/* info.c: the `info` attribute lists of SPEC 3 and 4 */
int	info_parse(const char *list, int *subs, int *users, int *cache, char *err,
	    size_t errlen);

#endif
