/* app/pushd_main.c: sockudo-pushd's command line. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "app.h"

static void
usage(void)
{
	fprintf(stderr, "usage: sockudo-pushd [-c file] [--once] [-t] [-V]\n");
	exit(1);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config",	required_argument, NULL, 'c' },
		{ "once",	no_argument,	   NULL, 'o' },
		{ "test",	no_argument,	   NULL, 't' },
		{ "version",	no_argument,	   NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = getenv("SOCKUDO_FCGI_CONF");
	struct config *cfg;
	char err[512];
	int ch, once = 0, test = 0, rc;

	if (path == NULL)
		path = CONFIG_DEFAULT_PATH;
	while ((ch = getopt_long(argc, argv, "c:tV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'o':
			once = 1;
			break;
		case 't':
			test = 1;
			break;
		case 'V':
			printf("sockudo-pushd %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if ((cfg = config_new()) == NULL || config_load(cfg, path, err, sizeof(err)) != 0) {
		fprintf(stderr, "sockudo-pushd: %s\n", cfg ? err : "out of memory");
		return 1;
	}
	if (test) {
		printf("sockudo-pushd: %s: ok\n", path);
		config_free(cfg);
		return 0;
	}
	log_set_level(cfg->log_level);
	rc = pushd_run(cfg, once);
	config_free(cfg);
	return rc;
}
