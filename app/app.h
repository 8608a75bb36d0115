/* app/app.h: the request plumbing shared by app/, handlers/ and db/. */
#ifndef SOCKUDO_APP_H
#define SOCKUDO_APP_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <pthread.h>
#include <signal.h>

#include <json-c/json.h>

#define SOCKUDO_VERSION_STRING PACKAGE_VERSION

/* ---- config.c ---------------------------------------------------- */

struct config {
	char	*listen;
	int	 workers;
	int	 threads;
	char	*pidfile;
	char	*log_level;
	char	*db_host;
	int	 db_port;
	char	*db_socket;
	char	*db_user;
	char	*db_password;
	char	*db_name;
	int	 db_connect_timeout;
	int	 db_rw_timeout;
	char	*memcached;
	int	 memcached_timeout_ms;
	int	 auth_timestamp_skew;
	int	 max_body_bytes;
	int	 max_query_params;
	int	 request_timeout;
	int	 app_cache_ttl;
	int	 channel_cache_ttl_ms;
	int	 maintain_interval;
	/* push (SPEC 8) */
	char	*push_secret_key;	/* 64 hex digits: seals provider credentials */
	char	*apns_url;
	char	*fcm_url;
	char	*fcm_token_url;		/* OAuth2 token endpoint; never a tenant's token_uri */
	char	*push_ca_file;		/* "": the system's CAs */
	char	*webpush_allow;		/* Web Push host:port exempt from https, public */
	int	 push_batch;
	int	 push_lease_s;
	int	 push_max_attempts;
	int	 push_retry_base_ms;
	int	 push_timeout_ms;
	int	 push_poll_ms;
	int	 push_threads;
	int	 push_max_recipients;
	/* realtime (issue 5) */
	char	*pushpin_publish;	/* publish URLs, space separated; "": none */
	char	*pushpin_sig_key;	/* Pushpin's Grip-Sig key; "": no WebSockets */
	char	*pushpin_sig_iss;	/* Pushpin's sig_iss; "": any issuer */
	int	 pushpin_timeout_ms;
	int	 pushpin_max_body;	/* Pushpin's push_in_http_max_body_size */
	int	 ws_keepalive_s;	/* Pushpin's keep-alive request interval */
	int	 ws_lease_s;		/* a connection unheard of this long is swept */
	int	 ws_activity_timeout_s;
	int	 ws_client_events_per_s;	/* per connection (Pusher: 10) */
	int	 ws_max_channels;	/* per connection; under Pushpin's own limit */
	int	 presence_max_members;	/* per channel (Pusher: 100) */
	int	 presence_max_user_info;	/* bytes of a member's user_info */
	int	 webhook_timeout_ms;
	int	 webhook_retry_base_ms;
	int	 webhook_max_attempts;
};

#define CONFIG_DEFAULT_PATH "/etc/sockudo-fcgi/sockudo-fcgi.conf"

struct config	*config_new(void);
int		 config_load(struct config *, const char *path, char *err, size_t errlen);
int		 config_parse_line(struct config *, const char *line, char *err, size_t errlen);
int		 config_set(struct config *, const char *key, const char *value,
		    char *err, size_t errlen);
int		 config_check(const struct config *, char *err, size_t errlen);
int		 config_push_key(const struct config *, unsigned char key[32]);
void		 config_free(struct config *);

/* Command-line settings that win over the file, also after a reload. */
struct config_override {
	const char	*key;
	const char	*value;		/* NULL: not given */
};

int		 config_apply(struct config *, const struct config_override *, size_t,
		    char *err, size_t errlen);

/* ---- log.c ------------------------------------------------------- */

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void	log_set_level(const char *);
void	log_msg(enum log_level, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
#define log_error(...)	log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)	log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

/* ---- util.c ------------------------------------------------------ */

int64_t	 now_ms(void);
int64_t	 mono_us(void);
int	 str_to_ll(const char *, long long min, long long max, long long *out);
int	 pct_decode(const char *src, size_t len, char *dst, size_t dstlen, size_t *outlen);
void	 hex_encode(const unsigned char *, size_t, char *out);
int	 random_bytes(unsigned char *, size_t);
void	 random_hex(char *out, size_t nbytes);
size_t	 discard_body(char *, size_t size, size_t n, void *arg);

/* ---- the app record (an API tenant) ------------------------------- */

enum app_flag {
	APP_F_HISTORY		= 1 << 0,
	APP_F_MESSAGES		= 1 << 1,
	APP_F_ANNOTATIONS	= 1 << 2,
	APP_F_PUSH		= 1 << 3,
};
#define APP_F_DEFAULT (APP_F_HISTORY | APP_F_MESSAGES | APP_F_ANNOTATIONS | APP_F_PUSH)

struct app {
	char	 id[65];
	char	 key[65];
	char	 secret[129];
	char	 name[129];
	int	 enabled;
	unsigned flags;
	int	 max_event_data_bytes;
	int	 max_channels_per_event;
	int	 max_batch_size;
	int	 max_publish_rps;
	int	 max_read_rps;
	int	 idempotency_ttl_s;
	int	 history_max_age_s;
	int	 history_max_messages;
	char	 webhook_url[501];	/* "": no webhooks */
};

void	app_defaults(struct app *);

/* ---- request and response ----------------------------------------- */

struct qparam {
	char	*key;		/* lower-cased */
	char	*value;		/* percent-decoded, '+' kept */
};

#define REQ_MAX_ROUTE_ARGS 4

struct worker;

/*
 * One request.  Every string is owned by the request and valid until
 * req_free(); nothing points into libfcgi's buffers.
 */
struct req {
	const struct config	*cfg;
	struct worker		*w;		/* this thread's db and cache */
	char			*method;
	char			*uri;		/* REQUEST_URI as sent */
	char			*path;		/* raw path, no query */
	char			*query;		/* raw query, may be "" */
	char			*content_type;
	char			*idem_header;	/* X-Idempotency-Key or NULL */
	char			*remote_addr;
	/* from Pushpin (WebSocket-over-HTTP); NULL when absent */
	char			*grip_sig;	/* Grip-Sig */
	char			*meta_user;	/* Meta-User: the socket_id */
	char			*meta_uid;	/* Meta-Uid: the signed-in user */
	char			*meta_renew;	/* Meta-Renew: last lease renewal, s */
	char			*meta_seen;	/* Meta-Seen: the client's last message, s */
	char			*meta_ce;	/* Meta-Ce: "<second> <client events in it>" */
	char			*body;		/* NUL-terminated copy */
	size_t			 bodylen;
	long long		 content_length;
	struct qparam		*params;
	size_t			 nparams;
	char			*args[REQ_MAX_ROUTE_ARGS]; /* decoded :path args */
	size_t			 nargs;
	int			 route;		/* index in the table, -1 none */
	struct app		 app;		/* the authenticated app */
	json_object		*json;		/* parsed body, owned */
	int64_t			 start_us;
};

struct resp {
	int		 status;
	json_object	*json;		/* owned; NULL with text */
	char		*text;		/* owned */
	size_t		 textlen;
	const char	*content_type;
	char		 allow[64];	/* for 405 */
	int		 retry_after;	/* seconds, 0 = none */
	char		*headers;	/* owned: more "Name: value\r\n" lines, or NULL */
};

void		 req_init(struct req *);
void		 req_free(struct req *);
int		 req_parse_query(struct req *, char *err, size_t errlen);
const char	*req_param(const struct req *, const char *key);
int		 req_param_int(const struct req *, const char *key, long long min,
		    long long max, long long def, long long *out);

void	resp_init(struct resp *);
void	resp_free(struct resp *);
int	resp_json(struct resp *, int status, json_object *);
int	resp_text(struct resp *, int status, const char *ctype, const char *text);
int	resp_bytes(struct resp *, int status, const char *ctype, const char *buf, size_t len);
int	resp_error(struct resp *, int status, const char *code, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));
int	resp_unavailable(struct resp *, const char *dependency);
int	resp_header(struct resp *, const char *name, const char *value);
const char *resp_reason(int status);
const char *resp_body(const struct resp *, size_t *len);
char	*resp_head(const struct resp *, size_t bodylen);

/* ---- auth.c (SPEC 1) ---------------------------------------------- */

char	*auth_string_to_sign(const char *method, const char *path,
	    const struct qparam *, size_t);
void	 auth_hmac_hex(const char *secret, const char *msg, char out[65]);
int	 auth_signature_ok(const char *secret, const char *msg, const char *sig);
void	 auth_md5_hex(const char *buf, size_t len, char out[33]);
int	 auth_check(struct req *, struct resp *);

/* ---- validate.c --------------------------------------------------- */

int	valid_channel_name(const char *, char *err, size_t errlen);
int	valid_socket_id(const char *);
int	valid_event_name(const char *, char *err, size_t errlen);
int	channel_is_presence(const char *);
size_t	utf8_char(const unsigned char *, size_t n, uint32_t *cp);
int	utf8_valid(const char *, size_t len);
int	valid_text(const char *, size_t len);
int	valid_text_id(const char *, size_t max);

/* ---- json.c: strict JSON for untrusted input ----------------------- */

int		 json_check(const char *text, size_t len, char *err, size_t errlen);
json_object	*json_parse_strict(const char *text, size_t len, char *err, size_t errlen);
json_object	*json_parse_object(const char *text);
const char	*json_str(json_object *, const char *key);
int		 json_int(json_object *, const char *key, int64_t *out);
json_object	*json_obj(json_object *, const char *key);

/* ---- router.c ----------------------------------------------------- */

enum route_flags {
	R_SIGNED	= 1 << 0,	/* SPEC 1 signature required */
	R_BODY		= 1 << 1,	/* a JSON body is expected */
	R_PUBLISH	= 1 << 2,	/* counts against the publish rate */
	R_READ		= 1 << 3,	/* counts against the read rate */
	R_OPS		= 1 << 4,	/* operator endpoint: never through Pushpin */
};

typedef int (*handler_fn)(struct req *, struct resp *);

struct route {
	const char	*method;
	const char	*pattern;
	handler_fn	 fn;
	unsigned	 flags;
	const char	*name;		/* metrics label */
};

size_t		 router_count(void);
const struct route *router_get(size_t);
void		 router_handle(struct req *, struct resp *);
void		 router_finish(const struct req *, struct resp *, int rc);
int		 router_match_path(const char *pattern, const char *path,
		    char **args, size_t *nargs);

/* ---- metrics.c ---------------------------------------------------- */

int	metrics_init(size_t nroutes);
void	metrics_record(int route, int status, int64_t elapsed_us);
void	metrics_count_publish(unsigned nevents);
void	metrics_group(size_t n);
void	metrics_dep_latency(int dep, int64_t us);
char	*metrics_prometheus(void);
json_object *metrics_stats_json(void);

enum { DEP_MARIADB, DEP_MEMCACHED, DEP_COUNT };

/* ---- worker (fcgi.c / main.c) ------------------------------------- */

struct db;
struct cache;

struct app_cache_entry;
struct app_miss;
struct local_entry;

/* A share of an app's per-second request budget, taken from memcached. */
struct rate_lease {
	char		app[65];
	int		cls;		/* R_PUBLISH or R_READ */
	int64_t		sec;		/* the wall-clock second it is for */
	int		left;
};

#define WORKER_LEASES 16

/* Per-thread state: nothing here is shared between threads. */
struct worker {
	const struct config	*cfg;
	struct db		*db;
	struct cache		*cache;
	struct app_cache_entry	*apps;		/* small in-process app cache */
	struct app_miss		*misses;	/* lookups that found nothing */
	unsigned		 next_miss;
	struct local_entry	*local;		/* hot shared-cache values */
	struct rate_lease	 leases[WORKER_LEASES];
	struct groupcommit	*publishes;	/* shared by the process's threads */
	struct grip_pub		*grip;		/* to Pushpin; NULL: realtime is off */
};

struct worker	*worker_new(const struct config *);
void		 worker_free(struct worker *);
int		 worker_app_by_key(struct worker *, const char *key, struct app *);
int		 worker_app_by_id(struct worker *, const char *id, struct app *);
char		*worker_local_get(struct worker *, const char *key, int64_t max_age_ms);
void		 worker_local_put(struct worker *, const char *key, int64_t born_ms,
		    const char *payload);

/* ---- fcgi.c: the only user of <fcgiapp.h> ------------------------ */

int	fcgi_open_listen(const char *addr);
int	fcgi_serve(int listenfd, const struct config *, volatile int *stop);

/* ---- groupcommit.c ----------------------------------------------- */

#define GC_MAX_GROUP 32

struct gc_item {
	struct gc_item	*next;
	int		 done;
	int		 rc;		/* set by ops->run */
	void		*arg;		/* the submitter's work */
	pthread_cond_t	 cv;		/* its submitter sleeps here */
};

struct gc_ops {
	int	(*conflicts)(const struct gc_item *, struct gc_item *const *group, size_t n);
	void	(*run)(struct gc_item **group, size_t n, void *ctx);
};

struct groupcommit;

struct groupcommit *gc_new(size_t max);
void		 gc_free(struct groupcommit *);
int		 gc_submit(struct groupcommit *, struct gc_item *, const struct gc_ops *,
		    void *ctx);

/* ---- pool.c ------------------------------------------------------- */

int	pool_run(const char *confpath, struct config *, const struct config_override *,
	    size_t);

/* ---- pushd.c: sockudo-pushd ------------------------------------- */

struct pushd;
struct push_batch;

int		 pushd_run(const struct config *, int once);
struct pushd	*pushd_new(const struct config *, struct db *, int timeout_ms);
void		 pushd_send(struct pushd *, struct push_batch *);
void		 pushd_free(struct pushd *);

/* ---- grip.c: Pushpin's wire formats (issue 5) --------------------- */
/* One WebSocket-over-HTTP event; pointers into the request body. */
struct ws_event {
	const char	*type;		/* "OPEN", "TEXT", ... (not NUL-terminated) */
	size_t		 typelen;
	const char	*content;	/* NULL: none */
	size_t		 len;
};
/* Events being written for the answer. */
struct ws_out {
	char	*buf;
	size_t	 len, cap;
};
struct grip_pub;
int	grip_next(const char *body, size_t len, size_t *off, struct ws_event *);
long	grip_count(const char *body, size_t len);
int	grip_is(const struct ws_event *, const char *type);
int	grip_out_event(struct ws_out *, const char *type, const char *content, size_t len);
int	grip_out_text(struct ws_out *, const char *text);
int	grip_out_control(struct ws_out *, json_object *msg);
int	grip_out_close(struct ws_out *, int code);
void	grip_out_free(struct ws_out *);
#define GRIP_SIG_MAX 4096	/* bytes of a Grip-Sig token we look at */
int	grip_sig_valid(const char *token, const char *key, const char *iss, int64_t now_s);
int	grip_init(void);
struct grip_pub *grip_pub_new(const char *urls, int timeout_ms, int max_body);
void	grip_pub_free(struct grip_pub *);
void	grip_item(json_object *items, const char *channel, const char *content,
	    const char *sender, int code);
int	grip_publish(struct grip_pub *, json_object *items);

/* ---- webhookd.c: sockudo-pushd's webhook and sweep thread -------- */
struct webhookd {
	const struct config	*cfg;
	volatile sig_atomic_t	*stop;
	int			 once;
	int			 failed;
	pthread_t		 tid;
};
void	*webhookd_run(void *);

/* ---- cli.c -------------------------------------------------------- */

int	cli_migrate(const struct config *);
int	cli_app(const struct config *, int argc, char **argv);
int	cli_maintain(const struct config *);

#endif
