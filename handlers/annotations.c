/* handlers/annotations.c: annotations of a message and their summaries (SPEC 7). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "db/db.h"

#define MAX_TYPE 100
#define MAX_NAME 200
#define MAX_COUNT 1000000
#define ANN_STORE "the annotation store"

/*
 * Read an annotation's body into a (data owned by *owned), checking it
 * against SPEC 7: what each summarizer needs, and nothing it cannot use.
 * Returns 0, or the 400/413 it answered.
 */
static int
annotation_parse(struct req *r, struct resp *p, struct annotation *a, char **owned)
{
	static const char *const need_name[] = { [SUM_DISTINCT] = "distinct",
	    [SUM_UNIQUE] = "unique", [SUM_MULTIPLE] = "multiple" };
	static const char *const need_client[] = { [SUM_FLAG] = "flag",
	    [SUM_DISTINCT] = "distinct", [SUM_UNIQUE] = "unique" };
	json_object *o = r->json, *v;

	*owned = NULL;
	if (o == NULL)
		return resp_error(p, 400, "invalid_input", "a JSON body is required");
	if ((a->type = body_string(body_member(o, "type", NULL))) == NULL ||
	    strlen(a->type) > MAX_TYPE || (a->summarizer = summarizer_of(a->type)) == -1)
		return resp_error(p, 400, "invalid_input",
		    "type must be \"namespace:summarizer.v1\" (namespace: 1 to 64 of A-Z a-z 0-9 _ -)");
	if (a->summarizer < 0)
		return resp_error(p, 400, "invalid_input", "unknown summarizer in type %s: "
		    "use total.v1, flag.v1, distinct.v1, unique.v1 or multiple.v1", a->type);
	if (body_opt_string(o, "name", NULL, MAX_NAME, &a->name) != 0)
		return resp_error(p, 400, "invalid_input",
		    "name must be a string of 1 to %d bytes", MAX_NAME);
	if (body_opt_string(o, "client_id", "clientId", MAX_CLIENT_ID, &a->client_id) != 0)
		return resp_error(p, 400, "invalid_input",
		    "client_id must be a string of 1 to %d bytes", MAX_CLIENT_ID);
	if (a->name == NULL && (size_t)a->summarizer < sizeof(need_name) / sizeof(need_name[0]) &&
	    need_name[a->summarizer] != NULL)
		return resp_error(p, 400, "invalid_input", "%s.v1 annotations need a name",
		    need_name[a->summarizer]);
	if (a->client_id == NULL &&
	    (size_t)a->summarizer < sizeof(need_client) / sizeof(need_client[0]) &&
	    need_client[a->summarizer] != NULL)
		return resp_error(p, 400, "invalid_input", "%s.v1 annotations need a client_id",
		    need_client[a->summarizer]);
	a->count = 1;
	if ((v = body_member(o, "count", NULL)) != NULL) {
		if (a->summarizer != SUM_MULTIPLE)
			return resp_error(p, 400, "invalid_input",
			    "count is only for multiple.v1 annotations");
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
		    json_object_get_int64(v) > MAX_COUNT)
			return resp_error(p, 400, "invalid_input",
			    "count must be a whole number from 1 to %d", MAX_COUNT);
		a->count = json_object_get_int64(v);
	}
	if ((v = body_member(o, "data", NULL)) != NULL) {
		body_data(v, owned, &a->data, &a->datalen);
		if (a->datalen > (size_t)r->app.max_event_data_bytes)
			return resp_error(p, 413, "payload_too_large",
			    "data is %zu bytes, over this app's limit of %d", a->datalen,
			    r->app.max_event_data_bytes);
	}
	a->now = now_ms();
	return 0;
}

static int
apply_add(struct req *r, struct resp *p, const struct msg_head *h, void *arg,
    json_object **answer)
{
	char aserial[32];
	int rc;

	(void)p;
	if ((rc = db_annotation_add(r->w->db, r->app.id, r->args[2], h, arg, aserial)) != 0)
		return rc > 0 ? DB_ERROR : rc;
	*answer = json_object_new_object();
	json_object_object_add(*answer, "annotation_serial", json_object_new_string(aserial));
	return 201;
}

/*
 * POST /apps/{id}/channels/{ch}/messages/{serial}/annotations
 * {type, name?, client_id?, count?, data?, idempotency_key?} -> 201
 * {"annotation_serial"}.  Statuses: 201, 400, 403, 404 (no such message),
 * 409 idempotency_conflict, 413, 503.
 */
int
h_annotation_add(struct req *r, struct resp *p)
{
	struct annotation a = { 0 };
	char *owned = NULL;
	int rc;

	if ((rc = message_check(r, p, APP_F_ANNOTATIONS)) == 0 &&
	    (rc = annotation_parse(r, p, &a, &owned)) == 0)
		rc = message_tx(r, p, "annotate", apply_add, &a, 0);
	free(owned);
	return rc;
}

static int
apply_delete(struct req *r, struct resp *p, const struct msg_head *h, void *arg,
    json_object **answer)
{
	int rc;

	(void)h;
	(void)arg;
	rc = db_annotation_delete(r->w->db, r->app.id, r->args[2], r->args[3]);
	if (rc == DB_NOTFOUND)
		return resp_error(p, 404, "not_found", "message %s has no annotation %s",
		    r->args[2], r->args[3]);
	if (rc != 0)
		return rc > 0 ? DB_ERROR : rc;
	*answer = json_object_new_object();
	return 200;
}

/*
 * DELETE /apps/{id}/channels/{ch}/messages/{serial}/annotations/{aserial}
 * -> {}.  Deleting again is 200.  Statuses: 200, 400, 403, 404, 503.
 */
int
h_annotation_delete(struct req *r, struct resp *p)
{
	int rc;

	if ((rc = message_check(r, p, APP_F_ANNOTATIONS)) != 0)
		return rc;
	return message_tx(r, p, "unannotate", apply_delete, NULL, 0);
}

/*
 * GET /apps/{id}/channels/{ch}/messages/{serial}/annotations
 * ?type=&client_id=&limit=&cursor= -> {"items", "has_more", "next_cursor"}.
 * Statuses: 200, 400 (bad limit, filter or cursor), 403, 404, 503.
 */
int
h_annotation_list(struct req *r, struct resp *p)
{
	struct annotation_page pg = { .serial = r->args[2], .type = req_param(r, "type"),
	    .client_id = req_param(r, "client_id") };
	const char *cursor = req_param(r, "cursor");
	char *scope = NULL;
	struct msg_head h;
	int rc;

	if ((rc = message_check(r, p, APP_F_ANNOTATIONS)) != 0 ||
	    (rc = paging_params(r, p, 0, NULL, &pg.limit)) != 0)
		return rc;
	if (asprintf(&scope, "annotations\n%s\n%s\n%s\n%s", r->args[1], pg.serial,
	    pg.type ? pg.type : "", pg.client_id ? pg.client_id : "") < 0)
		return resp_error(p, 500, "internal", "out of memory");
	rc = cursor != NULL ? cursor_parse(r, scope, cursor, &pg.after) : 0;
	if (rc != 0) {
		free(scope);
		return resp_error(p, 400, "invalid_input",
		    "cursor is not one this server issued for this message and these filters");
	}
	if ((rc = db_message_head(r->w->db, r->app.id, r->args[1], pg.serial, 0, &h)) == 0) {
		pg.items = json_object_new_array();
		if ((rc = db_annotation_list(r->w->db, r->app.id, &pg)) != 0)
			json_object_put(pg.items);
	}
	if (rc != 0) {
		free(scope);
		if (rc == DB_NOTFOUND)
			return resp_error(p, 404, "not_found", "channel %s has no message %s",
			    r->args[1], pg.serial);
		return store_error(p, rc, ANN_STORE, "the annotations could not be read");
	}
	rc = page_answer(r, p, scope, pg.items, pg.has_more, pg.last_seq);
	free(scope);
	return rc;
}
