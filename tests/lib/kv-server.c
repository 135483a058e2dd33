/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Starting and stopping the kv tests' servers: see kv-server.h. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "kv-server.h"

#define CLUSTER_BUS_OFFSET	10000	/* a cluster node's bus: its port + this */

/* Directories removed at exit, also when a check fails (FAIL exits). */
static char made[4][256];

static void remove_made(void)
{
	int i;

	for (i = 0; i < 4; i++)
		if (made[i][0])
			t_kv_rmdir(made[i]);
}

void t_kv_mkdir(char *dir, size_t len)
{
	static bool registered;
	int i;

	snprintf(dir, len, "/tmp/libuffd-kv-XXXXXX");
	if (!mkdtemp(dir))
		FAIL("mkdtemp: %s", strerror(errno));
	if (!registered) {
		atexit(remove_made);
		registered = true;
	}
	for (i = 0; i < 4; i++)
		if (!made[i][0]) {
			snprintf(made[i], sizeof(made[i]), "%s", dir);
			break;
		}
}

void t_kv_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static pid_t spawn(char *const argv[], const char *log)
{
	pid_t parent = getpid(), pid = fork();

	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	return pid;
}

static void dump_log(const struct t_kv *k)
{
	char line[512];
	FILE *f = fopen(k->log, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		fprintf(stderr, "  server: %s", line);
	fclose(f);
}

/* Connect within 20 s, while the server lives. */
static bool connect_to(struct t_kv *k, const char *portfile)
{
	int i, st;

	for (i = 0; i < 20000; i++) {
		if (waitpid(k->pid, &st, WNOHANG) == k->pid) {
			k->pid = 0;
			return false;
		}
		if (portfile && k->port <= 0) {
			FILE *f = fopen(portfile, "r");

			if (f) {
				if (fscanf(f, "%d", &k->port) != 1)
					k->port = -1;
				fclose(f);
			}
		}
		if (k->port > 0 && !kvc_connect(&k->c, NULL, k->port, 20000))
			return true;
		usleep(1000);
	}
	return false;
}

static const char *kv_binary(void)
{
	static char path[512];
	const char *build = getenv("BUILD");

	snprintf(path, sizeof(path), "%s/uffd-kv", build ? build : "build");
	return path;
}

void t_kv_start(struct t_kv *k, const char *dir, const char *const *extra)
{
	char portfile[300], logdir[256];
	const char *argv[32];
	int n = 0;

	memset(k, 0, sizeof(*k));
	k->c.fd = -1;
	k->port = -1;
	if (dir) {
		snprintf(k->dir, sizeof(k->dir), "%s", dir);
		snprintf(logdir, sizeof(logdir), "%s", dir);
	} else {
		t_kv_mkdir(logdir, sizeof(logdir));
	}
	snprintf(portfile, sizeof(portfile), "%s/port.%d", logdir, (int)getpid());
	snprintf(k->log, sizeof(k->log), "%s/server.log", logdir);
	unlink(portfile);
	argv[n++] = kv_binary();
	argv[n++] = "--port";
	argv[n++] = "0";
	argv[n++] = "--port-file";
	argv[n++] = portfile;
	if (dir) {
		argv[n++] = "--dir";
		argv[n++] = dir;
	}
	while (extra && *extra && n < 30)
		argv[n++] = *extra++;
	argv[n] = NULL;
	k->pid = spawn((char *const *)argv, k->log);
	if (!connect_to(k, portfile)) {
		dump_log(k);
		FAIL("uffd-kv did not come up (%s)", argv[0]);
	}
	unlink(portfile);
	if (!dir) {
		unlink(k->log);
		rmdir(logdir);
		snprintf(k->log, sizeof(k->log), "/dev/null");
	}
}

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd >= 0 && !bind(fd, (struct sockaddr *)&sa, sizeof(sa)) &&
	    !getsockname(fd, (struct sockaddr *)&sa, &len))
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* A free port whose cluster bus port (+10000) is free too. */
static int free_cluster_port(void)
{
	int i, port, bus;

	for (i = 0; i < 1000; i++) {
		port = free_port();
		if (port <= 0 || port > 65535 - CLUSTER_BUS_OFFSET)
			continue;
		bus = socket(AF_INET, SOCK_STREAM, 0);
		if (bus >= 0) {
			struct sockaddr_in sa = { .sin_family = AF_INET,
						  .sin_port = htons(port + CLUSTER_BUS_OFFSET),
						  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
			bool ok = !bind(bus, (struct sockaddr *)&sa, sizeof(sa));

			close(bus);
			if (ok)
				return port;
		}
	}
	return -1;
}

void t_redis_start(struct t_kv *k, const char *dir)
{
	t_redis_start_args(k, dir, NULL, false);
}

void t_redis_start_args(struct t_kv *k, const char *dir, const char *const *extra,
			bool cluster)
{
	char port[16], conf[300] = "";
	int attempt;

	if (system("command -v redis-server >/dev/null 2>&1"))
		SKIP("redis-server is not installed (Debian: apt-get install redis-server)");
	for (attempt = 0; attempt < 5; attempt++) {
		char *argv[32] = { "redis-server", "--port", port, "--bind", "127.0.0.1",
				   "--save", "", "--appendonly", "no", "--daemonize", "no",
				   "--dir", (char *)dir };
		int argc = 13, i;

		memset(k, 0, sizeof(*k));
		k->c.fd = -1;
		snprintf(k->dir, sizeof(k->dir), "%s", dir);
		snprintf(k->log, sizeof(k->log), "%s/redis.log", dir);
		k->port = cluster ? free_cluster_port() : free_port();
		snprintf(port, sizeof(port), "%d", k->port);
		if (cluster) {
			snprintf(conf, sizeof(conf), "%s/nodes.conf", dir);
			argv[argc++] = "--cluster-enabled";
			argv[argc++] = "yes";
			argv[argc++] = "--cluster-config-file";
			argv[argc++] = conf;
		}
		for (i = 0; extra && extra[i] && argc < 31; i++)
			argv[argc++] = (char *)extra[i];
		argv[argc] = NULL;
		k->pid = spawn(argv, k->log);
		if (connect_to(k, NULL))
			return;
		t_kv_stop(k);	/* the port was taken meanwhile: another one */
		if (cluster)
			unlink(conf);
	}
	dump_log(k);
	FAIL("redis-server did not come up");
}

int t_kv_wait_exit(struct t_kv *k, int ms)
{
	int i, st;

	if (k->pid <= 0)
		return -1;
	for (i = 0; i < ms; i++) {
		if (waitpid(k->pid, &st, WNOHANG) == k->pid) {
			k->pid = 0;
			kvc_close(&k->c);
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		}
		usleep(1000);
	}
	return -1;
}

int t_kv_stop(struct t_kv *k)
{
	int st = -1;

	kvc_close(&k->c);
	if (k->pid <= 0)
		return -1;
	kill(k->pid, SIGTERM);
	st = t_kv_wait_exit(k, 20000);
	if (k->pid > 0) {
		kill(k->pid, SIGKILL);
		waitpid(k->pid, NULL, 0);
		k->pid = 0;
		st = -1;
	}
	return st;
}

void t_kv_expect(struct t_kv *k, const char *words, const char *want)
{
	struct kvc_reply r;
	char got[256];
	int ret = kvc_cmdf(&k->c, &r, words);

	if (ret)
		FAIL("%s: %s", words, strerror(-ret));
	if (r.type == KVC_NIL)
		snprintf(got, sizeof(got), "(nil)");
	else if (r.type == KVC_INT || r.type == KVC_ARRAY)
		snprintf(got, sizeof(got), "%c%lld", r.type, r.integer);
	else
		snprintf(got, sizeof(got), "%s%.*s", r.type == KVC_BULK ? "" : r.type == KVC_ERROR ?
			 "-" : "+", (int)(r.len > 200 ? 200 : r.len), r.str);
	if (strcmp(got, want))
		FAIL("%s: got '%s', want '%s'", words, got, want);
}

long long t_kv_info(struct t_kv *k, const char *field)
{
	long long v;
	int ret = kvc_info_ll(&k->c, NULL, field, &v);

	if (ret)
		FAIL("INFO %s: %s", field, strerror(-ret));
	return v;
}
