/*
 * This file contains how sscardctl reads the daemon's configuration (src/ctl/ctl.h): the file
 * sscardd would read, and the socket path it would listen on. Both the daemon's commands
 * (src/sscardctl.c) and the operator's journal commands (src/ctl/ctl_journal.c) use it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "ctl/ctl.h"

int ctl_load_config(const struct ctl_opts *o, struct config *cfg, const char **file)
{
	char err[512];

	config_defaults(cfg);
	*file = o->config ? o->config : config_default_path();
	if (*file && config_load(cfg, *file, err, sizeof(err)) != 0) {
		fprintf(stderr, "sscardctl: %s\n", err);
		if (!o->config)
			fprintf(stderr, "sscardctl: (the daemon's configuration, from %s)\n",
				getenv(CONFIG_ENV) && getenv(CONFIG_ENV)[0] ? "$" CONFIG_ENV
									    : "its default path");
		config_wipe(cfg);
		return EXIT_USAGE;
	}
	return 0;
}

int ctl_socket_path(const struct ctl_opts *o, char *path, char *from, size_t from_len)
{
	const char *env = getenv("SSCARD_SOCKET"), *file;
	struct config cfg;
	int rc;

	if (o->socket) {
		snprintf(path, CONFIG_PATH_MAX, "%s", o->socket);
		snprintf(from, from_len, "--socket");
		return 0;
	}
	if (env && env[0]) {
		snprintf(path, CONFIG_PATH_MAX, "%s", env);
		snprintf(from, from_len, "$SSCARD_SOCKET");
		return 0;
	}
	rc = ctl_load_config(o, &cfg, &file);
	if (rc != 0)
		return rc;
	snprintf(path, CONFIG_PATH_MAX, "%s", cfg.socket_path);
	if (file)
		snprintf(from, from_len, "the socket_path of %s", file);
	else
		snprintf(from, from_len, "the built-in default: no --config, $%s or %s", CONFIG_ENV,
			 CONFIG_DEFAULT_PATH);
	config_wipe(&cfg);
	return 0;
}
