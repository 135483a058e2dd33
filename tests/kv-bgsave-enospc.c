/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A disk that fills during BGSAVE: uffd-kv's --dir is a 24 MiB tmpfs.  A
 * first save fits; then 40 MiB more of values make the next BGSAVE run out
 * of space: INFO says rdb_last_bgsave_status:err with the reason, LASTSAVE
 * and rdb_saves stay where they were, SAVE answers an error too, the
 * server keeps serving every key, and the previous image is still there
 * byte for byte with no temporary file beside it.  After FLUSHALL gives the
 * memory back, a save fits again.  Skips if a tmpfs cannot be mounted.
 */
#include <errno.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/kv-server.h"

static char dir[256];
static bool mounted;

static void unmount(void)
{
	if (mounted)
		umount2(dir, MNT_DETACH);
	mounted = false;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		FAIL("%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n ? n : 1);
	CHECK(buf);
	CHECK_EQ(fread(buf, 1, n, f), (size_t)n);
	fclose(f);
	*len = n;
	return buf;
}

static void wait_save(struct t_kv *kv)
{
	int i;

	for (i = 0; t_kv_info(kv, "rdb_bgsave_in_progress"); i++) {
		CHECK(i < 30000);
		usleep(1000);
	}
}

static void set_values(struct t_kv *kv, const char *prefix, int n, size_t bytes)
{
	char key[32], *v = malloc(bytes);
	const char *argv[3] = { "SET", key, v };
	size_t lens[3] = { 3, 0, bytes };
	struct kvc_reply r;
	int i;

	CHECK(v);
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%s:%d", prefix, i);
		memset(v, 'a' + i % 26, bytes);
		lens[1] = strlen(key);
		CHECK_OK(kvc_append(&kv->c, 3, argv, lens));
		CHECK_OK(kvc_flush(&kv->c));
		CHECK_OK(kvc_read(&kv->c, &r));
		CHECK(r.type == KVC_STATUS);
	}
	free(v);
}

static void check_values(struct t_kv *kv, const char *prefix, int n, size_t bytes)
{
	char key[32], words[64];
	struct kvc_reply r;
	size_t j;
	int i;

	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%s:%d", prefix, i);
		snprintf(words, sizeof(words), "GET %s", key);
		CHECK_OK(kvc_cmdf(&kv->c, &r, words));
		if (r.type != KVC_BULK || r.len != bytes)
			FAIL("%s: type %c, %zu bytes", key, r.type, r.len);
		for (j = 0; j < bytes; j++)
			if (r.str[j] != 'a' + i % 26)
				FAIL("%s: byte %zu differs", key, j);
	}
}

int main(void)
{
	char image[300], err[128];
	size_t len0, len1;
	char *before, *after;
	struct kvc_reply r;
	struct t_kv kv;
	struct dirent *e;
	long long last;
	DIR *d;

	t_kv_mkdir(dir, sizeof(dir));
	if (mount("tmpfs", dir, "tmpfs", 0, "size=24m,mode=0700"))
		SKIP("cannot mount a tmpfs: %s", strerror(errno));
	mounted = true;
	atexit(unmount);
	snprintf(image, sizeof(image), "%s/dump.uffd", dir);

	t_kv_start(&kv, dir, NULL);
	set_values(&kv, "small", 1000, 1024);
	t_kv_expect(&kv, "BGSAVE", "+Background saving started");
	wait_save(&kv);
	CHECK(kvc_info_str(&kv.c, NULL, "rdb_last_bgsave_status", err, sizeof(err)) == 0);
	CHECK(!strcmp(err, "ok"));
	CHECK(kvc_cmdf(&kv.c, &r, "LASTSAVE") == 0 && r.type == KVC_INT);
	last = r.integer;
	before = read_file(image, &len0);

	/* 40 MiB of values: the next image does not fit */
	set_values(&kv, "big", 40, 1 << 20);
	sleep(1);		/* a LASTSAVE that moved would show */
	t_kv_expect(&kv, "BGSAVE", "+Background saving started");
	wait_save(&kv);
	CHECK(kvc_info_str(&kv.c, NULL, "rdb_last_bgsave_status", err, sizeof(err)) == 0);
	if (strcmp(err, "err"))
		FAIL("rdb_last_bgsave_status:%s after a save that cannot fit", err);
	CHECK(kvc_info_str(&kv.c, NULL, "uffd_last_bgsave_error", err, sizeof(err)) == 0);
	if (strcmp(err, strerror(ENOSPC)))
		FAIL("uffd_last_bgsave_error:%s", err);
	CHECK_EQ(t_kv_info(&kv, "rdb_saves"), 1);
	CHECK(kvc_cmdf(&kv.c, &r, "LASTSAVE") == 0 && r.type == KVC_INT);
	CHECK_EQ(r.integer, last);
	snprintf(err, sizeof(err), "-ERR save failed: %s", strerror(ENOSPC));
	t_kv_expect(&kv, "SAVE", err);

	/* still serving, the old image untouched, nothing else left behind */
	check_values(&kv, "small", 1000, 1024);
	check_values(&kv, "big", 40, 1 << 20);
	t_kv_expect(&kv, "SET more 1", "+OK");
	after = read_file(image, &len1);
	CHECK_EQ(len1, len0);
	CHECK(!memcmp(before, after, len0));
	free(after);
	d = opendir(dir);
	CHECK(d);
	while ((e = readdir(d)))
		if (strncmp(e->d_name, ".", 1) && strcmp(e->d_name, "dump.uffd") &&
		    strcmp(e->d_name, "server.log"))
			FAIL("left in the directory: %s", e->d_name);
	closedir(d);

	/* room again: saves work */
	t_kv_expect(&kv, "FLUSHALL", "+OK");
	t_kv_expect(&kv, "SET small:0 x", "+OK");
	t_kv_expect(&kv, "BGSAVE", "+Background saving started");
	wait_save(&kv);
	CHECK(kvc_info_str(&kv.c, NULL, "rdb_last_bgsave_status", err, sizeof(err)) == 0);
	if (strcmp(err, "ok"))
		FAIL("rdb_last_bgsave_status:%s after FLUSHALL", err);
	CHECK_EQ(t_kv_info(&kv, "rdb_saves"), 2);
	CHECK_EQ(t_kv_stop(&kv), 0);
	free(before);
	unmount();
	t_kv_rmdir(dir);
	return T_EXIT_PASS;
}
