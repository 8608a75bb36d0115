/* handlers/handlers.h: every route handler; one file per resource. */
#ifndef SOCKUDO_HANDLERS_H
#define SOCKUDO_HANDLERS_H

#include "app/app.h"

/* events.c (SPEC 3) */
int	h_events_publish(struct req *, struct resp *);
int	h_events_batch(struct req *, struct resp *);

/* socket.c: the Pusher protocol over Pushpin's WebSocket-over-HTTP (issue 5) */
int	h_socket_events(struct req *, struct resp *);

/* realtime.c: delivery to subscribers and channel state changes */
struct grip_pub;
struct sub_limits;
struct rt {
	struct db		*db;
	struct grip_pub		*grip;		/* NULL: realtime delivery is off */
	const struct app	*app;
	const struct sub_limits	*limits;	/* of joins; NULL: none */
};
void	rt_grip_channel(char *out, size_t len, const char *app_id, const char *channel);
void	rt_socket_channel(char *out, size_t len, const char *app_id, const char *socket_id);
char	*rt_message(const char *event, const char *channel, const char *data, size_t datalen,
	    const char *user_id);
char	*rt_error_message(int code, const char *why);
void	rt_item_add(json_object *items, const char *app_id, const char *channel,
	    char *content, const char *except_socket);
void	rt_publish(struct grip_pub *, json_object *items);
void	rt_deliver(struct grip_pub *, const char *app_id, const char *channel,
	    const char *event, const char *data, const char *except_socket);
int	rt_webhook(struct db *, const struct app *, json_object *events);
int	rt_join(struct rt *, const char *channel, const char *socket_id, const char *user_id,
	    const char *user_info, int *refused);
int	rt_leave(struct rt *, const char *channel, const char *socket_id);
int	rt_disconnect(struct rt *, const char *socket_id);
void	rt_close_socket(struct grip_pub *, const char *app_id, const char *socket_id,
	    int code, const char *why);

/* channels.c (SPEC 4) */
int	h_channels_list(struct req *, struct resp *);
int	h_channels_show(struct req *, struct resp *);
int	h_channels_users(struct req *, struct resp *);
int	h_users_terminate(struct req *, struct resp *);

/* history.c (SPEC 5) */
int	h_history_list(struct req *, struct resp *);
int	h_history_state(struct req *, struct resp *);
int	h_history_purge(struct req *, struct resp *);

/* messages.c (SPEC 6) */
int	h_message_get(struct req *, struct resp *);
int	h_message_versions(struct req *, struct resp *);
int	h_message_update(struct req *, struct resp *);
int	h_message_delete(struct req *, struct resp *);
int	h_message_append(struct req *, struct resp *);

/*
 * A change of the message a route names (args: app, channel, serial), in
 * one transaction holding the message's row lock, with the request's
 * idempotency key.  apply answers with the status of *answer (200, 201),
 * an error status it already put in the response (400 and up), or a
 * negative DB_* code.
 */
struct db;
struct msg_head;
typedef int (*msg_apply_fn)(struct req *, struct resp *, const struct msg_head *,
    void *arg, json_object **answer);
int	message_check(struct req *, struct resp *, unsigned feature);
int	message_tx(struct req *, struct resp *, const char *what, msg_apply_fn, void *arg,
	    int mark_duplicate);
char	*cursor_make_text(const struct req *, const char *scope, const char *pos);
int	cursor_parse_text(const struct req *, const char *scope, const char *cursor,
	    char **pos);
int	page_answer(struct req *, struct resp *, const char *scope, json_object *items,
	    int has_more, long long last);
int	page_answer_text(struct req *, struct resp *, const char *scope, json_object *items,
	    int has_more, const char *last);
int	paging_params(struct req *, struct resp *, int with_direction, int *newest_first,
	    size_t *limit);

/* annotations.c (SPEC 7) */
int	h_annotation_add(struct req *, struct resp *);
int	h_annotation_list(struct req *, struct resp *);
int	h_annotation_delete(struct req *, struct resp *);

/* push.c, pushcred.c, pushpub.c (SPEC 8) */
#define PUSH_STORE "the push store"
int	push_check(struct req *, struct resp *);
char	*push_web_subscription(json_object *, const char *allow, const char **why);
int	push_store_error(struct resp *, int rc);
int	h_push_device_add(struct req *, struct resp *);
int	h_push_device_put(struct req *, struct resp *);
int	h_push_device_get(struct req *, struct resp *);
int	h_push_device_delete(struct req *, struct resp *);
int	h_push_device_delete_client(struct req *, struct resp *);
int	h_push_device_list(struct req *, struct resp *);
int	h_push_sub_add(struct req *, struct resp *);
int	h_push_sub_list(struct req *, struct resp *);
int	h_push_sub_delete(struct req *, struct resp *);
int	h_push_channels(struct req *, struct resp *);
int	h_push_cred_put(struct req *, struct resp *);
int	h_push_cred_list(struct req *, struct resp *);
int	h_push_cred_delete(struct req *, struct resp *);
int	h_push_template_put(struct req *, struct resp *);
int	h_push_template_get(struct req *, struct resp *);
int	h_push_template_delete(struct req *, struct resp *);
int	h_push_template_list(struct req *, struct resp *);
const char *template_check(json_object *);
char	*template_render(const char *text, json_object *data, size_t max, int *over);
int	h_push_publish(struct req *, struct resp *);
int	h_push_status(struct req *, struct resp *);
int	h_push_cancel(struct req *, struct resp *);
int	h_push_callback(struct req *, struct resp *);

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

/* body.c: JSON request bodies and idempotency keys */
#define MAX_IDEM_KEY 128
#define MAX_CLIENT_ID 200	/* a client_id anywhere in the API */
json_object	*body_member(json_object *, const char *key, const char *alias);
const char	*body_string(json_object *);
void		 body_data(json_object *, char **owned, const char **data, size_t *len);
int		 body_opt_string(json_object *, const char *key, const char *alias,
		    size_t max, const char **out);
int		 idem_key_valid(const char *);
int		 idem_key_of(struct req *, struct resp *, const char **key);
void		 idem_hash(json_object *, const char *scope, unsigned char out[32]);
int		 idem_replay(struct resp *, const unsigned char stored[32],
		    const unsigned char hash[32], int status, const char *body,
		    int mark_duplicate);

/* store.c */
int	store_error(struct resp *, int rc, const char *store, const char *what);

/* info.c: the `info` attribute lists of SPEC 3 and 4 */
int	info_parse(const char *list, int *subs, int *users, int *cache, char *err,
	    size_t errlen);

#endif
