/* handlers/messages.c: versioned messages (SPEC 6), and the transaction annotations share. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "db/db.h"

#define TX_ATTEMPTS 3
#define MAX_DESCRIPTION 1000
#define MAX_MESSAGE_DATA (1024 * 1024)	/* what appends may grow a message to */
#define MSG_STORE "the message store"

/* The feature flag, and a valid channel name (args[1]). */
int
message_check(struct req *r, struct resp *p, unsigned feature)
{
	char err[160];

	if (!(r->app.flags & feature))
		return resp_error(p, 403, "feature_disabled", "%s are disabled for this app",
		    feature == APP_F_MESSAGES ? "versioned messages" : "annotations");
	if (!valid_channel_name(r->args[1], err, sizeof(err)))
		return resp_error(p, 400, "invalid_input", "%s", err);
	return 0;
}

static int
no_message(struct resp *p, const struct req *r)
{
	return resp_error(p, 404, "not_found", "channel %s has no message %s",
	    r->args[1], r->args[2]);
}

struct tx {
	const char	*key;		/* idempotency key or NULL */
	unsigned char	 hash[32];
	msg_apply_fn	 apply;
	void		*arg;
	int		 mark_duplicate;
};

/* One attempt: the HTTP status answered or to answer, or a negative DB_* code. */
static int
tx_once(struct req *r, struct resp *p, const struct tx *t, json_object **answer)
{
	struct db *d = r->w->db;
	struct idem_row ir;
	struct msg_head h;
	int rc, status;

	*answer = NULL;
	if ((rc = db_begin(d)) != 0)
		return rc;
	if (t->key != NULL) {
		rc = db_idem_claim(d, r->app.id, t->key, t->hash, r->app.idempotency_ttl_s,
		    now_ms(), &ir);
		if (rc == DB_CONFLICT) {
			db_rollback(d);
			status = idem_replay(p, ir.hash, t->hash, ir.status, ir.response,
			    t->mark_duplicate);
			free(ir.response);
			return status;
		}
		if (rc != 0)
			goto fail;
	}
	if ((rc = db_message_head(d, r->app.id, r->args[1], r->args[2], 1, &h)) == DB_NOTFOUND) {
		db_rollback(d);
		return no_message(p, r);
	}
	if (rc != 0)
		goto fail;
	if ((status = t->apply(r, p, &h, t->arg, answer)) >= 400) {
		db_rollback(d);
		return status;
	}
	if ((rc = status) < 0)
		goto fail;
	if (t->key != NULL && (rc = db_idem_store(d, r->app.id, t->key, status,
	    json_object_to_json_string_ext(*answer, JSON_C_TO_STRING_PLAIN))) != 0)
		goto fail;
	if ((rc = db_commit(d)) == 0)
		return status;
fail:
	db_rollback(d);
	if (*answer != NULL)
		json_object_put(*answer);
	*answer = NULL;
	return rc > 0 ? DB_ERROR : rc;
}

/*
 * Tell the channel's subscribers about a change just committed (SPEC 6,
 * 7): sockudo:message.<action> with the message's new state, or
 * sockudo:annotation.summary with its new summary.  Read after the
 * commit, so what is sent is what a GET would show.
 */
static void
announce(struct req *r, const char *what, json_object *answer)
{
	const char *status = json_object_get_string(json_object_object_get(answer, "status"));
	json_object *m = NULL, *summary;
	char event[48];

	if (r->w->grip == NULL || (status != NULL && strcmp(status, "applied") != 0))
		return;
	if (strcmp(what, "annotate") == 0 || strcmp(what, "unannotate") == 0) {
		summary = json_object_new_object();
		if (db_annotation_summary(r->w->db, r->app.id, r->args[2], summary) == 0) {
			m = json_object_new_object();
			json_object_object_add(m, "message_serial",
			    json_object_new_string(r->args[2]));
			json_object_object_add(m, "summary", summary);
			snprintf(event, sizeof(event), "sockudo:annotation.summary");
		} else
			json_object_put(summary);
	} else if (db_message_get(r->w->db, r->app.id, r->args[1], r->args[2], &m) == 0)
		snprintf(event, sizeof(event), "sockudo:message.%s", what);
	if (m == NULL)
		return;
	rt_deliver(r->w->grip, r->app.id, r->args[1], event,
	    json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN), NULL);
	json_object_put(m);
}

/*
 * Run apply on the message the route names, in a transaction that holds
 * the message's lock (and the idempotency key, when the request has one),
 * redone on a deadlock or lock wait timeout.  `what` names the operation
 * in the idempotency hash, so a key reused for another operation or
 * message is a conflict.
 */
int
message_tx(struct req *r, struct resp *p, const char *what, msg_apply_fn apply, void *arg,
    int mark_duplicate)
{
	struct tx t = { .apply = apply, .arg = arg, .mark_duplicate = mark_duplicate };
	json_object *answer = NULL;
	char *scope = NULL;
	int rc, attempt;

	if ((rc = idem_key_of(r, p, &t.key)) != 0)
		return rc;
	if (t.key != NULL) {
		if (asprintf(&scope, "%s\n%s\n%s", what, r->args[1], r->args[2]) < 0)
			return resp_error(p, 500, "internal", "out of memory");
		idem_hash(r->json, scope, t.hash);
		free(scope);
	}
	for (attempt = 0; attempt < TX_ATTEMPTS; attempt++) {
		rc = tx_once(r, p, &t, &answer);
		if (!db_retryable(r->w->db, rc))
			break;
	}
	if (rc < 0)
		return store_error(p, rc, MSG_STORE, "the message could not be changed");
	if (answer != NULL) {
		announce(r, what, answer);
		return resp_json(p, rc, answer);
	}
	return rc;
}

/*
 * GET /apps/{id}/channels/{ch}/messages/{serial}: the latest visible
 * state and the annotation summary.  Statuses: 200, 400, 403, 404, 503.
 */
int
h_message_get(struct req *r, struct resp *p)
{
	json_object *m, *ann, *summary;
	int rc;

	if ((rc = message_check(r, p, APP_F_MESSAGES)) != 0)
		return rc;
	rc = db_message_get(r->w->db, r->app.id, r->args[1], r->args[2], &m);
	if (rc == DB_NOTFOUND)
		return no_message(p, r);
	if (rc != 0)
		return store_error(p, rc, MSG_STORE, "the message could not be read");
	summary = json_object_new_object();
	if ((rc = db_annotation_summary(r->w->db, r->app.id, r->args[2], summary)) != 0) {
		json_object_put(summary);
		json_object_put(m);
		return store_error(p, rc, MSG_STORE, "the message could not be read");
	}
	ann = json_object_new_object();
	json_object_object_add(ann, "summary", summary);
	json_object_object_add(m, "annotations", ann);
	return resp_json(p, 200, m);
}

/*
 * GET /apps/{id}/channels/{ch}/messages/{serial}/versions?limit=&direction=&cursor=
 * Statuses: 200, 400 (bad limit, direction or cursor), 403, 404, 503.
 */
int
h_message_versions(struct req *r, struct resp *p)
{
	struct version_page pg = { .channel = r->args[1], .serial = r->args[2] };
	const char *cursor = req_param(r, "cursor");
	char *scope = NULL;
	int rc;

	if ((rc = message_check(r, p, APP_F_MESSAGES)) != 0 ||
	    (rc = paging_params(r, p, 1, &pg.newest_first, &pg.limit)) != 0)
		return rc;
	if (asprintf(&scope, "versions\n%s\n%s\n%s", pg.channel, pg.serial,
	    pg.newest_first ? "newest_first" : "oldest_first") < 0)
		return resp_error(p, 500, "internal", "out of memory");
	if (cursor != NULL && cursor_parse(r, scope, cursor, &pg.after) != 0) {
		free(scope);
		return resp_error(p, 400, "invalid_input",
		    "cursor is not one this server issued for this message and direction");
	}
	pg.items = json_object_new_array();
	if ((rc = db_message_versions(r->w->db, r->app.id, &pg)) != 0) {
		free(scope);
		json_object_put(pg.items);
		if (rc == DB_NOTFOUND)
			return no_message(p, r);
		return store_error(p, rc, MSG_STORE, "the versions could not be read");
	}
	rc = page_answer(r, p, scope, pg.items, pg.has_more, pg.last_seq);
	free(scope);
	return rc;
}

/* msg_apply_fn of the mutations: apply, or answer a repeated delete. */
static int
apply_change(struct req *r, struct resp *p, const struct msg_head *h, void *arg,
    json_object **answer)
{
	struct msg_change *c = arg;
	const char *status = "applied";
	char vs[VERSION_SERIAL_MAX];
	long long seq;
	int rc;

	if (h->action == MSG_DELETE && c->action != MSG_DELETE)
		return resp_error(p, 409, "message_deleted", "message %s is deleted", r->args[2]);
	if (c->action == MSG_APPEND && h->datalen + c->datalen > MAX_MESSAGE_DATA)
		return resp_error(p, 413, "payload_too_large",
		    "the message's data would grow to %zu bytes, over %d",
		    h->datalen + c->datalen, MAX_MESSAGE_DATA);
	if (h->action == MSG_DELETE) {
		seq = h->version_seq;	/* deleted already: the first delete's answer */
		status = "duplicate";
	} else if ((rc = db_message_change(r->w->db, r->app.id, r->args[2], h, c, &seq)) != 0)
		return rc > 0 ? DB_ERROR : rc;
	version_serial(vs, r->args[2], seq);
	*answer = json_object_new_object();
	json_object_object_add(*answer, "message_serial", json_object_new_string(r->args[2]));
	json_object_object_add(*answer, "version_serial", json_object_new_string(vs));
	json_object_object_add(*answer, "action",
	    json_object_new_string(c->action == MSG_UPDATE ? "update" :
	    c->action == MSG_DELETE ? "delete" : "append"));
	json_object_object_add(*answer, "status", json_object_new_string(status));
	return 200;
}

/*
 * Read a mutation's body into c (data owned by *owned), checking it
 * against SPEC 6 and the app's limits.  Returns 0, or the 400/413 it
 * answered.
 */
static int
change_parse(struct req *r, struct resp *p, struct msg_change *c, char **owned)
{
	json_object *o = r->json, *v = NULL;
	char err[160];

	*owned = NULL;
	c->now = now_ms();
	if (body_opt_string(o, "description", NULL, MAX_DESCRIPTION, &c->description) != 0)
		return resp_error(p, 400, "invalid_input",
		    "description must be a string of 1 to %d bytes", MAX_DESCRIPTION);
	if (body_opt_string(o, "client_id", "clientId", MAX_CLIENT_ID, &c->client_id) != 0)
		return resp_error(p, 400, "invalid_input",
		    "client_id must be a string of 1 to %d bytes", MAX_CLIENT_ID);
	if (c->action == MSG_DELETE)
		return 0;
	if (o == NULL)
		return resp_error(p, 400, "invalid_input", "a JSON body is required");
	if (c->action == MSG_UPDATE && (v = body_member(o, "name", NULL)) != NULL &&
	    ((c->name = body_string(v)) == NULL || !valid_event_name(c->name, err, sizeof(err))))
		return resp_error(p, 400, "invalid_input", "name: %s",
		    c->name ? err : "must be a string");
	if ((v = body_member(o, "data", NULL)) != NULL) {
		if (c->action == MSG_APPEND && body_string(v) == NULL)
			return resp_error(p, 400, "invalid_input", "data to append must be a string");
		body_data(v, owned, &c->data, &c->datalen);
	}
	if (c->action == MSG_APPEND && c->data == NULL)
		return resp_error(p, 400, "invalid_input", "append needs data, a string");
	if (c->action == MSG_UPDATE && c->name == NULL && c->data == NULL)
		return resp_error(p, 400, "invalid_input", "update needs name or data");
	if (c->data != NULL && c->datalen > (size_t)r->app.max_event_data_bytes)
		return resp_error(p, 413, "payload_too_large",
		    "data is %zu bytes, over this app's limit of %d", c->datalen,
		    r->app.max_event_data_bytes);
	return 0;
}

/*
 * POST .../messages/{serial}/update|delete|append.  Statuses: 200, 400,
 * 403, 404, 409 (message_deleted, idempotency_conflict), 413, 503.
 */
static int
mutate(struct req *r, struct resp *p, int action, const char *what)
{
	struct msg_change c = { .action = action };
	char *owned = NULL;
	int rc;

	if ((rc = message_check(r, p, APP_F_MESSAGES)) == 0 &&
	    (rc = change_parse(r, p, &c, &owned)) == 0)
		rc = message_tx(r, p, what, apply_change, &c, 1);
	free(owned);
	return rc;
}

int
h_message_update(struct req *r, struct resp *p)
{
	return mutate(r, p, MSG_UPDATE, "update");
}

int
h_message_delete(struct req *r, struct resp *p)
{
	return mutate(r, p, MSG_DELETE, "delete");
}

int
h_message_append(struct req *r, struct resp *p)
{
	return mutate(r, p, MSG_APPEND, "append");
}
