/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uffd migrate: the checker workload migrated, running, to a second
 * process - over loopback or between two network namespaces - and the
 * checker's verdict on the destination's memory.  What it shows a
 * library user does with uffd_mig_source_start() and uffd_mig_dest_start()
 * (tools/migrate_run.c holds the two processes).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "migrate_run.h"
#include "uffd.h"

static void print_json(const struct mig_run_cfg *cfg, const struct mig_run_result *r)
{
	const struct uffd_mig_stats *s = &r->src, *d = &r->dst;

	printf("{\"size_mib\":%zu,\"writers\":%d,\"hot_mib\":%zu,\"rate\":%.0f,", cfg->bytes >> 20,
	       cfg->writers, cfg->hot_bytes >> 20, cfg->rate);
	json_str(stdout, "mode", mig_mode_name(cfg->mode), true);
	printf("\"one_channel\":%s,\"minor\":%s,\"netns\":%s,\"mbit\":%u,\"delay_ms\":%.3f,",
	       cfg->one_channel ? "true" : "false", cfg->minor ? "true" : "false",
	       cfg->netns ? "true" : "false", cfg->link_mbit, cfg->delay_ms);
	json_str(stdout, "phase", mig_phase_name(d->phase), true);
	printf("\"rtt_ms\":%.3f,\"rounds\":%u,\"downtime_ms\":%.3f,\"stop_ms\":%.3f,\"switchover_pages\":%llu,"
	       "\"requested\":%llu,\"answered\":%llu,\"streamed\":%llu,\"continued\":%llu,"
	       "\"duplicates\":%llu,\"req_p50_ms\":%.3f,\"req_p99_ms\":%.3f,\"req_max_ms\":%.3f,"
	       "\"blocked_ms\":%.3f,\"precopy_ms\":%.3f,\"postcopy_ms\":%.3f,\"total_ms\":%.3f,\"wire_bytes\":%llu,\"wire_over_memory\":%.4f,"
	       "\"base_writes_per_s\":%.0f,\"postcopy_writes_per_s\":%.0f,",
	       r->rtt_ms, s->round, r->downtime_ms, r->stop_ms,
	       (unsigned long long)d->switchover_pages,
	       (unsigned long long)d->pages_requested, (unsigned long long)d->pages_answered,
	       (unsigned long long)d->pages_background, (unsigned long long)d->pages_continued,
	       (unsigned long long)d->duplicates, d->req_p50_ns / 1e6, d->req_p99_ns / 1e6,
	       d->req_ns_max / 1e6, d->blocked_ns / 1e6, s->precopy_ns / 1e6, d->postcopy_ns / 1e6,
	       s->total_ns / 1e6,
	       (unsigned long long)r->wire_bytes, (double)r->wire_bytes / r->table_bytes,
	       r->base_rate, r->post_rate);
	printf("\"exact\":%s,", r->exact ? "true" : "false");
	json_str(stdout, "verdict", r->verdict, true);
	json_str(stdout, "error", r->error ? r->message : "", false);
	printf("}\n");
}

static void print_human(const struct mig_run_cfg *cfg, const struct mig_run_result *r)
{
	const struct uffd_mig_stats *s = &r->src, *d = &r->dst;

	printf("  link: round trip %.3f ms%s\n", r->rtt_ms, cfg->netns ? "" : " (loopback)");
	printf("  precopy: %u round%s, %llu pages sent (%llu zero) while the writers ran "
	       "(%.0f writes/s)\n", s->round, s->round == 1 ? "" : "s",
	       (unsigned long long)(s->pages_sent - s->pages_requested - s->pages_background),
	       (unsigned long long)s->zero_pages, r->base_rate);
	printf("  switchover: the program was stopped %.2f ms (all writers parked here to "
	       "running there; parking them took %.2f ms); %llu pages left for after\n",
	       r->downtime_ms, r->stop_ms, (unsigned long long)d->switchover_pages);
	printf("  postcopy: %llu pages requested (fault to mapped: p50 %.3f ms, p99 %.3f ms, "
	       "max %.3f ms), %llu streamed, %llu duplicates dropped\n",
	       (unsigned long long)d->pages_requested, d->req_p50_ns / 1e6, d->req_p99_ns / 1e6,
	       d->req_ns_max / 1e6, (unsigned long long)d->pages_background,
	       (unsigned long long)d->duplicates);
	if (cfg->minor)
		printf("  MINOR: %llu pages mapped by CONTINUE alone, %llu fetched\n",
		       (unsigned long long)d->pages_continued,
		       (unsigned long long)(d->pages_answered + d->pages_background));
	if (d->postcopy_ns && cfg->writers)
		printf("  the writers were blocked %.1f%% of the postcopy (%.0f writes/s there)\n",
		       100.0 * d->blocked_ns / ((double)d->postcopy_ns * cfg->writers),
		       r->post_rate);
	printf("  total %.1f ms, %.1f MiB on the wire (%.3fx the memory)\n", s->total_ns / 1e6,
	       r->wire_bytes / 1048576.0, (double)r->wire_bytes / r->table_bytes);
	if (r->error)
		printf("  FAILED: %s\n", r->message);
	else
		printf("  verdict: %s\n", r->verdict);
}

static const char *const mode_names[] = { "hybrid", "postcopy-only", "precopy-only", NULL };

int cmd_migrate(int argc, char **argv)
{
	uint64_t size = 256ul << 20, writers = 2, hot = 32ul << 20, rate = 100000, rounds = 0;
	uint64_t downtime = 0, mbit = 0, delay_us = 0;
	bool json = false, netns = false, one_channel = false, minor = false;
	bool mbit_seen = false, delay_seen = false;
	int mode = 0, ret;
	const struct arg_opt opts[] = {
		OPT_UINT("size", 's', &size, NULL, "MiB", "the checker's table (default 256)",
			 1, 65536, 1ul << 20),
		OPT_UINT("writers", 'w', &writers, NULL, "N", "writer threads (default 2)", 1, 64, 1),
		OPT_UINT("hot", 'H', &hot, NULL, "MiB", "the pages the writers write, from the "
			 "start of the table (default 32; 0: all)", 0, 65536, 1ul << 20),
		OPT_UINT("rate", 'r', &rate, NULL, "W", "writes per second, all writers (default "
			 "100000; 0: as fast as they can)", 0, 100000000, 1),
		OPT_CHOICE("mode", 'm', &mode, NULL, "MODE", "hybrid (precopy, then postcopy), "
			   "postcopy-only or precopy-only", mode_names),
		OPT_FLAG("one-channel", '1', &one_channel, "requests and answers on the stream "
			 "(QEMU's vanilla postcopy shape)"),
		OPT_FLAG("minor", 'M', &minor, "the destination's table is a memfd (MINOR faults, "
			 "CONTINUE)"),
		OPT_UINT("rounds", 'R', &rounds, NULL, "N", "precopy rounds at most (default: "
			 "the library's)", 0, 1000, 1),
		OPT_UINT("downtime-ms", 'D', &downtime, NULL, "MS", "the downtime budget that ends "
			 "the precopy (default: the library's)", 0, 100000, 1),
		OPT_FLAG("netns", 'n', &netns, "the two processes in network namespaces of their "
			 "own, joined by a veth (198.18.0.1-2)"),
		OPT_UINT("mbit", 'b', &mbit, &mbit_seen, "N", "with --netns: shape the veth to N "
			 "Mbit/s (tbf)", 1, 100000, 1),
		OPT_UINT("delay-us", 'd', &delay_us, &delay_seen, "US", "with --netns: add this "
			 "one-way delay (a relay)", 1, 1000000, 1),
		OPT_FLAG("json", 'j', &json, "one JSON object"),
		OPT_END,
	};
	struct arg_spec spec = {
		.prog = "uffd migrate",
		.about = "Runs the checker workload (writers stamping versions into a table) in one\n"
			 "process and migrates it, running, to another: precopy rounds, a switchover\n"
			 "that carries the dirty bitmap and the writers' state, then pages on demand\n"
			 "over an urgent connection while the rest streams.  The destination's\n"
			 "checker then proves its table exact.\n",
		.opts = opts,
	};
	struct mig_run_cfg cfg;
	struct mig_run_result res;

	ret = args_parse(&spec, argc, argv);
	if (ret != ARGS_GO_ON)
		return ret;
	if (!netns && (mbit_seen || delay_seen))
		return args_usage_error(&spec, "--mbit and --delay-us need --netns");
	cfg = (struct mig_run_cfg){
		.bytes = size, .writers = (int)writers, .hot_bytes = hot, .rate = (double)rate,
		.fill = 1.0, .seed = 1, .mode = (enum uffd_mig_mode)mode,
		.one_channel = one_channel, .minor = minor, .max_rounds = (int)rounds,
		.downtime_ms = (unsigned)downtime, .netns = netns, .link_mbit = (unsigned)mbit,
		.delay_ms = delay_us / 1000.0, .settle_s = 0.2, .after_s = 0.1,
	};
	cfg.progress = !json && isatty(STDERR_FILENO);
	if (!json)
		printf("uffd migrate: %zu MiB checker table, %d writers at %.0f writes/s over a "
		       "%zu MiB hot set; %s, %s, %s%s\n", cfg.bytes >> 20, cfg.writers, cfg.rate,
		       (cfg.hot_bytes && cfg.hot_bytes < cfg.bytes ? cfg.hot_bytes : cfg.bytes) >> 20,
		       mig_mode_name(cfg.mode),
		       cfg.one_channel ? "one connection" : "two connections",
		       cfg.minor ? "memfd (MINOR) destination, " : "",
		       cfg.netns ? "two network namespaces" : "loopback");
	fflush(stdout);
	ret = mig_run(&cfg, &res);
	if (ret) {
		fprintf(stderr, "uffd migrate: %s%s\n", res.skipped ? "cannot run between namespaces: " :
			"", res.message[0] ? res.message : strerror(-ret));
		return EXIT_FAILED;
	}
	if (json)
		print_json(&cfg, &res);
	else
		print_human(&cfg, &res);
	return !res.error && res.exact ? EXIT_OK : EXIT_FAILED;
}
