/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd serve: run a page server (uffd_serve_new()) until SIGINT or
 * SIGTERM - lazy restore of other processes' memory from an image or a
 * raw memory file, for libuffd clients (uffd_serve_attach()) and for
 * Firecracker, whose UFFD handler it can be unchanged.  One line per
 * connection on stderr while it runs, the totals when it stops.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <uffd/serve.h>

#include "args.h"
#include "uffd.h"

#define MAX_UIDS 64

static void log_line(void *arg, const char *line)
{
	(void)arg;
	fprintf(stderr, "uffd serve: %s\n", line);
}

/* "1000,1001": at most MAX_UIDS uids, decimal, below (uid_t)-1. */
static int parse_uids(const char *list, uid_t *uids)
{
	const char *p = list;
	int n = 0;

	while (*p) {
		char *end;
		unsigned long v;

		if (n == MAX_UIDS || *p < '0' || *p > '9')
			return -1;
		errno = 0;
		v = strtoul(p, &end, 10);
		if (errno || v >= (uid_t)-1 || (*end && *end != ','))
			return -1;
		uids[n++] = v;
		p = *end ? end + 1 : end;
		if (*end && !*p)
			return -1;
	}
	return n;
}

/* "0660": octal, 1 to 0777. */
static int parse_mode(const char *s, unsigned *mode)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '7')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 8);
	if (errno || *end || !v || v > 0777)
		return -1;
	*mode = v;
	return 0;
}

int cmd_serve(int argc, char **argv)
{
	const char *socket_path = NULL, *image = NULL, *mem_file = NULL, *ws = NULL;
	const char *allow = NULL, *mode = NULL;
	bool record = false, prefetch = false, demand_only = false, quiet = false, json = false;
	bool shared = false;
	uint64_t max_clients = 0, handshake_ms = 0;
	const struct arg_opt opts[] = {
		OPT_STRING("socket", 's', &socket_path, "PATH", "listen on this Unix socket "
			   "(required)", 107),
		OPT_STRING("image", 'i', &image, "FILE", "serve this image or chain", 0),
		OPT_STRING("mem-file", 'm', &mem_file, "FILE", "... or this raw memory file "
			   "(Firecracker's)", 0),
		OPT_FLAG("record", 'r', &record, "write the first client's working set to the "
			 "working-set file"),
		OPT_FLAG("prefetch", 'p', &prefetch, "prefetch the working set recorded there"),
		OPT_STRING("ws", 'w', &ws, "FILE", "the working-set file (default: the source's "
			   "path + .ws)", 0),
		OPT_FLAG("demand-only", 'd', &demand_only, "no background fill: pages arrive "
			 "when touched"),
		OPT_FLAG("shared-cache", 'S', &shared, "keep the source's pages once in memory and "
			 "map them into every libuffd client instead of copying"),
		OPT_STRING("allow-uid", 'u', &allow, "UIDS", "uids that may connect too, "
			   "comma-separated (the server's own and root always may)", 0),
		OPT_STRING("mode", 'M', &mode, "OCTAL", "the socket file's mode (default 0600; "
			   "0666 with --allow-uid)", 4),
		OPT_UINT("max-clients", 'c', &max_clients, NULL, "N", "connections at once "
			 "(default 256)", 1, 1 << 20, 1),
		OPT_UINT("handshake-ms", 'H', &handshake_ms, NULL, "MS", "refuse a handshake "
			 "that takes longer (default 5000)", 1, 3600000, 1),
		OPT_FLAG("quiet", 'q', &quiet, "no line per connection on stderr"),
		OPT_FLAG("json", 'j', &json, "the totals at exit as one JSON object"),
		OPT_END,
	};
	struct arg_spec spec = {
		.prog = "uffd serve",
		.synopsis = "--socket=PATH --image=FILE|--mem-file=FILE [options]",
		.about = "Serve the memory of an image (or chain) or of a raw memory file to\n"
			 "processes that hand over their userfaultfd on a Unix socket: libuffd\n"
			 "clients (uffd_serve_attach) and Firecracker (its UFFD handshake).\n"
			 "Runs until SIGINT or SIGTERM; one line per connection on stderr, the\n"
			 "totals on stdout at exit.\n",
		.opts = opts,
	};
	UFFD_OPTS(uffd_serve_opts, so, .log = log_line);
	struct uffd_serve_stats st;
	struct uffd_serve *s;
	uid_t uids[MAX_UIDS];
	sigset_t set;
	int ret, sig;

	ret = args_parse(&spec, argc, argv);
	if (ret != ARGS_GO_ON)
		return ret;
	if (!socket_path)
		return args_usage_error(&spec, "--socket is required");
	if (!image == !mem_file)
		return args_usage_error(&spec, "one of --image and --mem-file is required");
	if (record && prefetch)
		return args_usage_error(&spec, "--record and --prefetch do not go together");
	if (allow) {
		ret = parse_uids(allow, uids);
		if (ret < 1)
			return args_usage_error(&spec, "--allow-uid: \"%s\" is not a list of uids",
						allow);
		so.allow_uids = uids;
		so.nallow_uids = ret;
	}
	if (mode && parse_mode(mode, &so.socket_mode))
		return args_usage_error(&spec, "--mode: \"%s\" is not an octal mode 1..0777",
					mode);
	so.socket_path = socket_path;
	so.image = image;
	so.mem_file = mem_file;
	so.ws_path = ws;
	so.record = record;
	so.prefetch = prefetch;
	so.demand_only = demand_only;
	so.shared_cache = shared;
	so.max_clients = (int)max_clients;
	so.handshake_ms = (int)handshake_ms;
	if (quiet)
		so.log = NULL;
	/* Blocked before the server's threads exist, so they inherit it and
	 * the signal comes to sigwait() below. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	s = uffd_serve_new(&so);
	if (!s) {
		fprintf(stderr, "uffd serve: %s: %s%s\n", socket_path, strerror(errno),
			errno == ESTALE ? " (the working set was recorded from another source)" :
			errno == EADDRINUSE ? " (a server is listening there)" : "");
		return EXIT_FAILED;
	}
	if (so.log)
		fprintf(stderr, "uffd serve: serving %s on %s%s%s\n", image ? image : mem_file,
			socket_path, prefetch ? ", prefetching the working set" : "",
			record ? ", recording a working set" : "");
	sigwait(&set, &sig);
	uffd_serve_stats(s, &st);
	uffd_serve_free(s);
	if (json)
		printf("{\"accepted\":%llu,\"refused\":%llu,\"done\":%llu,\"gone\":%llu,"
		       "\"faults\":%llu,\"prefetched\":%llu,\"filled\":%llu,\"zero\":%llu,"
		       "\"errors\":%llu,\"events\":{\"fork\":%llu,\"remap\":%llu,\"remove\":%llu,"
		       "\"unmap\":%llu},\"ws_pages\":%llu,\"recorded\":%llu,\"cached\":%llu}\n",
		       (unsigned long long)st.accepted, (unsigned long long)st.refused,
		       (unsigned long long)st.done, (unsigned long long)st.gone,
		       (unsigned long long)st.faults, (unsigned long long)st.prefetched,
		       (unsigned long long)st.filled, (unsigned long long)st.zero,
		       (unsigned long long)st.errors, (unsigned long long)st.events[0],
		       (unsigned long long)st.events[1], (unsigned long long)st.events[2],
		       (unsigned long long)st.events[3], (unsigned long long)st.ws_pages,
		       (unsigned long long)st.recorded, (unsigned long long)st.cached);
	else
		printf("%llu clients served (%llu restored, %llu gone first), %llu refused; "
		       "pages: %llu on demand, %llu prefetched, %llu filled (%llu zero), "
		       "%llu errors\n", (unsigned long long)st.accepted,
		       (unsigned long long)st.done, (unsigned long long)st.gone,
		       (unsigned long long)st.refused, (unsigned long long)st.faults,
		       (unsigned long long)st.prefetched, (unsigned long long)st.filled,
		       (unsigned long long)st.zero, (unsigned long long)st.errors);
	return EXIT_OK;
}
