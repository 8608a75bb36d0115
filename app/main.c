/* app/main.c: command line: run the pool, check the config, migrate, manage apps. */
#include "config.h"

#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"

static void
usage(void)
{
	fprintf(stderr,
	    "usage: sockudo-fcgi [-t] [-c file] [--listen addr] [--workers n] [--threads n]\n"
	    "                    [--pidfile file]\n"
	    "       sockudo-fcgi [-c file] migrate | maintain\n"
	    "       sockudo-fcgi [-c file] app create [--id id] [--name name] [--key key]"
	    " [--secret secret]\n"
	    "       sockudo-fcgi [-c file] app list | show ID | enable ID | disable ID |"
	    " rotate-secret ID\n"
	    "       sockudo-fcgi [-c file] app set ID field value\n");
	exit(1);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config",	required_argument, NULL, 'c' },
		{ "listen",	required_argument, NULL, 'l' },
		{ "workers",	required_argument, NULL, 'w' },
		{ "threads",	required_argument, NULL, 'T' },
		{ "pidfile",	required_argument, NULL, 'p' },
		{ "test",	no_argument,	   NULL, 't' },
		{ "version",	no_argument,	   NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = getenv("SOCKUDO_FCGI_CONF");
	struct config *cfg;
	char err[512];
	/* command-line overrides, applied after the file */
	struct config_override over[] = { { "listen", NULL }, { "workers", NULL },
	    { "threads", NULL }, { "pidfile", NULL } };
	int ch, test = 0, explicit = 0;

	/*
	 * Buffers of 128 KiB and more (a large message's column, its JSON)
	 * are mapped and unmapped.  Left to itself glibc raises that bound
	 * to the largest buffer freed so far, after which such buffers stay
	 * in each thread's arena: a worker's RSS then grows by megabytes per
	 * thread that ever served a big message.
	 */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);

	if (path == NULL)
		path = CONFIG_DEFAULT_PATH;
	else
		explicit = 1;
	/* '+': stop at the first non-option so subcommands keep their own flags */
	while ((ch = getopt_long(argc, argv, "+c:tV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; explicit = 1; break;
		case 'l': over[0].value = optarg; break;
		case 'w': over[1].value = optarg; break;
		case 'T': over[2].value = optarg; break;
		case 'p': over[3].value = optarg; break;
		case 't': test = 1; break;
		case 'V': printf("sockudo-fcgi %s\n", PACKAGE_VERSION); return 0;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;

	if ((cfg = config_new()) == NULL) {
		fprintf(stderr, "sockudo-fcgi: out of memory\n");
		return 1;
	}
	/* without -c a missing default file is fine: the defaults apply */
	if ((explicit || access(path, F_OK) == 0) &&
	    config_load(cfg, path, err, sizeof(err)) != 0) {
		fprintf(stderr, "sockudo-fcgi: %s\n", err);
		config_free(cfg);
		return 1;
	}
	if (config_apply(cfg, over, sizeof(over) / sizeof(over[0]), err, sizeof(err)) != 0) {
		fprintf(stderr, "sockudo-fcgi: %s\n", err);
		config_free(cfg);
		return 1;
	}
	log_set_level(cfg->log_level);
	if (test) {
		printf("configuration OK\n");
		config_free(cfg);
		return 0;
	}
	if (argc == 0)		/* the pool takes cfg */
		return pool_run(path, cfg, over, sizeof(over) / sizeof(over[0]));
	if (strcmp(argv[0], "migrate") == 0 && argc == 1)
		ch = cli_migrate(cfg);
	else if (strcmp(argv[0], "maintain") == 0 && argc == 1)
		ch = cli_maintain(cfg);
	else if (strcmp(argv[0], "app") == 0)
		ch = cli_app(cfg, argc - 1, argv + 1);
	else
		usage();
	config_free(cfg);
	return ch;
}
