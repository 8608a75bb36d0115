/* db/migrate.c: apply db/schema/NNN_name.sql in order, once each. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "db.h"

static int
is_migration(const char *name)
{
	size_t len = strlen(name);

	return len > 8 && name[0] >= '0' && name[0] <= '9' && name[1] >= '0' &&
	    name[1] <= '9' && name[2] >= '0' && name[2] <= '9' && name[3] == '_' &&
	    strcmp(name + len - 4, ".sql") == 0;
}

static int
cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *
slurp(const char *path)
{
	FILE *f;
	char *buf = NULL;
	long len;

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1)) != NULL) {
		if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
			free(buf);
			buf = NULL;
		} else
			buf[len] = '\0';
	}
	fclose(f);
	return buf;
}

/*
 * Apply every migration not yet recorded in schema_migrations, in file
 * name order.  DDL commits implicitly in MariaDB, so each file is recorded
 * right after it ran; files are written to be safe to re-run (IF NOT
 * EXISTS) in case a run stops between the two.
 */
int
db_migrate(struct db *d, const char *dir, int verbose)
{
	static const char create[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
	    " version VARCHAR(64) NOT NULL PRIMARY KEY,"
	    " applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
	    " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";
	static const char seen[] = "SELECT COUNT(*) FROM schema_migrations WHERE version = ?";
	static const char record[] = "INSERT INTO schema_migrations (version) VALUES (?)";
	DIR *dp;
	struct dirent *de;
	char **names = NULL, path[4096], *sql;
	size_t n = 0, i;
	long long count;
	int rc = -1, applied = 0;

	if ((dp = opendir(dir)) == NULL) {
		log_error("migrate: %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(dp)) != NULL) {
		if (!is_migration(de->d_name))
			continue;
		char **nn = realloc(names, (n + 1) * sizeof(*names));
		if (nn == NULL)
			goto out;
		names = nn;
		if ((names[n] = strdup(de->d_name)) == NULL)
			goto out;
		n++;
	}
	qsort(names, n, sizeof(*names), cmp);
	if (db_run_script(d, create) != 0) {
		log_error("migrate: cannot create schema_migrations");
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct db_val v[] = { DB_STR(names[i]) };
		if (db_query_i64(d, seen, v, 1, &count) != 0)
			goto out;
		if (count > 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if ((sql = slurp(path)) == NULL) {
			log_error("migrate: %s: %s", path, strerror(errno));
			goto out;
		}
		int src = db_run_script(d, sql);
		free(sql);
		if (src != 0 || db_exec(d, record, v, 1, NULL) != 0) {
			log_error("migrate: %s failed", names[i]);
			goto out;
		}
		applied++;
		if (verbose)
			printf("applied %s\n", names[i]);
	}
	if (verbose)
		printf("%d migration(s) applied, %zu known\n", applied, n);
	rc = 0;
out:
	closedir(dp);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}
