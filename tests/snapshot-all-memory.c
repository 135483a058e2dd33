/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A snapshot of all the process's writable anonymous memory, taken from
 * /proc/self/maps, while checker writers run and the main thread rewrites
 * a malloc'd buffer: the image holds the checker table exactly as at the
 * instant and the buffer's contents from before the rewrite; the listing
 * names what it left out (the program's file-backed mappings); and the
 * snapshot's own threads, whose state is outside the listed memory, never
 * block on their own protection (the test would hang).
 */
#include <unistd.h>
#include <uffd/checker.h>
#include <uffd/snapshot.h>

#include "lib/harness.h"

#define TABLE (16UL << 20)
#define BUF (1UL << 20)

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

/* Copy [addr, addr+len) of the memory at the instant out of the image. */
static void read_back(struct uffd_image_chain *c, const struct uffd_image_region *regs,
		      int n, uint64_t addr, size_t len, char *out)
{
	size_t off;
	int i;

	for (off = 0; off < len; off += PAGE) {
		uint64_t a = addr + off;

		for (i = 0; i < n; i++)
			if (a >= regs[i].addr && a < regs[i].addr + regs[i].len)
				break;
		if (i == n)
			FAIL("address %#llx is in no region", (unsigned long long)a);
		CHECK(uffd_image_chain_read_page(c, i, (a - regs[i].addr) / PAGE, out + off) >= 0);
	}
}

int main(void)
{
	UFFD_OPTS(uffd_checker_opts, co, .bytes = TABLE, .writers = 2, .seed = 5, .fill = 1.0);
	char path[] = "/tmp/libuffd-all-XXXXXX", skipped[8192], msg[256];
	struct uffd_image_region *regs;
	struct uffd_image_info info;
	struct uffd_image_chain *chain;
	struct uffd_snap_stats st;
	struct uffd_checker *c;
	struct uffd_snap *s;
	char *buf, *copy;
	int n, fd;

#ifdef SANITIZED
	SKIP("a sanitizer's shadow memory is anonymous too: a whole-process "
	     "snapshot would protect terabytes of it");
#endif
	t_require(UFFD_FEAT_WP_UNPOPULATED);
	fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	c = uffd_checker_new(&co);
	CHECK(c);
	buf = malloc(BUF);
	CHECK(buf);
	memset(buf, 'A', BUF);
	copy = t_map_anon(TABLE);
	CHECK_OK(uffd_checker_start(c));

	n = uffd_snap_all_regions(&regs, skipped, sizeof(skipped));
	CHECK(n > 0);
	CHECK(strstr(skipped, "file-backed"));
	{
		UFFD_OPTS(uffd_snap_opts, so, .path = path, .regions = regs, .nregions = n,
			  .pause = uffd_checker_pause_cb,
			  .resume = uffd_checker_resume_cb, .arg = c,
			  .skip_unprotectable = true);

		s = uffd_snap_begin(&so);
	}
	if (!s)
		FAIL("uffd_snap_begin: %s", strerror(errno));
	memset(buf, 'B', BUF);			/* after the instant */
	CHECK_OK(uffd_snap_wait(s, 60000));
	CHECK_OK(uffd_snap_stats(s, &st));
	uffd_snap_free(s);
	uffd_checker_pause(c);
	CHECK(buf[BUF / 2] == 'B');

	chain = uffd_image_chain_open(path, NULL);
	CHECK(chain);
	CHECK_OK(uffd_image_info(uffd_image_chain_get(chain, 0), &info));
	CHECK_EQ(info.nregions, n - (int)st.skipped_regions);
	read_back(chain, info.regions, info.nregions, (uintptr_t)uffd_checker_area(c), TABLE, copy);
	if (uffd_checker_verify_memory(c, copy, msg, sizeof(msg)))
		FAIL("the table in the image is not the instant: %s", msg);
	read_back(chain, info.regions, info.nregions, (uintptr_t)buf & ~(PAGE - 1), PAGE, copy);
	CHECK(copy[((uintptr_t)buf & (PAGE - 1)) + 1] == 'A');
	read_back(chain, info.regions, info.nregions, ((uintptr_t)buf + BUF / 2) & ~(PAGE - 1),
		  PAGE, copy);
	CHECK(t_is_filled(copy, 0, 0));
	CHECK(copy[0] == 'A' && copy[PAGE - 1] == 'A');
	uffd_image_chain_close(chain);

	uffd_checker_stop(c);
	uffd_checker_free(c);
	free(regs);
	unlink(path);
	return T_EXIT_PASS;
}
