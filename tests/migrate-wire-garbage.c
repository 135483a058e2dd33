// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The migration's parser refuses every deviation from the wire format,
 * each checked against the layout before use (the fuzz target holds it to
 * never more than that), and a peer's garbage ends that connection only:
 *
 *   headers   a bad magic, a header CRC that does not match, an unknown
 *             type, set flags, a count out of 1..64 (or one where none
 *             belongs), a length beyond its type's stated maximum or
 *             short of its minimum: -EPROTO;
 *   payloads  a region or page out of range, unknown entry flags, a zero
 *             page with a CRC, lengths that do not add up, a bitmap with
 *             bits past the last page or a wrong count, a stop-and-copy
 *             that leaves pages, an error text that is not printable:
 *             -EPROTO; a page whose CRC32C does not match: -EBADMSG and
 *             the entry's index;
 *   a peer    a destination sent a valid HELLO, then garbage, fails its
 *             migration with EPROTO (it had not switched over) and
 *             says so; another destination in the same process, on its
 *             own connections, completes.
 */
#include <sys/socket.h>
#include <unistd.h>

#include "lib/harness.h"
#include "lib/migrate-pair.h"
#include "migrate/wire.h"
#include "util/crc32c.h"

/* Two regions: 16 pages of 4 KiB, 2 of 2 MiB. */
static const struct mig_layout_region lr[2] = { { 16, 4096, 0 }, { 2, 2u << 20, 16 } };
static const struct mig_layout lay = { 2, lr, 18 };

static uint8_t msg[MIG_HDR_SIZE + 8 * 4096];

static int parse(uint32_t len, struct mig_msg *m, int *bad)
{
	struct mig_hdr h;
	int ret = mig_parse_hdr(msg, &lay, &h);

	if (ret)
		return ret;
	CHECK_EQ(h.len, len);
	return mig_parse_body(&h, msg + MIG_HDR_SIZE, &lay, m, bad);
}

/* A PAGES message: n entries, page i of region 0 (data: i+1 repeated). */
static uint32_t pages(int n, bool zero_last)
{
	uint8_t *e = msg + MIG_HDR_SIZE, *data = e + MIG_PAGE_ENTRY * n;
	int i;

	for (i = 0; i < n; i++, e += MIG_PAGE_ENTRY) {
		bool zero = zero_last && i == n - 1;

		memset(e, 0, MIG_PAGE_ENTRY);
		put_le32(e, 0);
		put_le32(e + 4, zero ? MIG_PAGE_ZERO : 0);
		put_le64(e + 8, i);
		if (!zero) {
			memset(data, i + 1, 4096);
			put_le32(e + 16, crc32c(0, data, 4096));
			data += 4096;
		}
	}
	mig_put_hdr(msg, MIG_PAGES, 0, n, data - msg - MIG_HDR_SIZE);
	return data - msg - MIG_HDR_SIZE;
}

static void headers(void)
{
	struct mig_hdr h;
	uint32_t len = pages(2, false);

	CHECK_OK(mig_parse_hdr(msg, &lay, &h));
	CHECK_EQ(h.type, MIG_PAGES);
	CHECK_EQ(h.count, 2);
	CHECK_EQ(h.len, len);
	msg[0] ^= 1;					/* magic */
	CHECK_EQ(mig_parse_hdr(msg, &lay, &h), -EPROTO);
	msg[0] ^= 1;
	msg[12] ^= 1;					/* header CRC */
	CHECK_EQ(mig_parse_hdr(msg, &lay, &h), -EPROTO);
	/* Each header below is well formed but for one field. */
	mig_put_hdr(msg, MIG_TYPE_END, 0, 0, 0);
	CHECK_EQ(mig_parse_hdr(msg, &lay, &h), -EPROTO);
	mig_put_hdr(msg, 0, 0, 0, 0);
	CHECK_EQ(mig_parse_hdr(msg, &lay, &h), -EPROTO);
	mig_put_hdr(msg, MIG_DONE, 1, 0, 0);		/* flags */
	CHECK_EQ(mig_parse_hdr(msg, &lay, &h), -EPROTO);
	mig_put_hdr(msg, MIG_PAGES, 0, 0, 0);		/* no entries */
	CHECK_EQ(mig_parse_hdr(msg, &lay, &h), -EPROTO);
	mig_put_hdr(msg, MIG_PAGES, 0, 65, 65 * MIG_PAGE_ENTRY);
	CHECK_EQ(mig_parse_hdr(msg, &lay, &h), -EPROTO);
	mig_put_hdr(msg, MIG_DONE, 0, 1, 0);		/* a count where none belongs */
	CHECK_EQ(mig_parse_hdr(msg, &lay, &h), -EPROTO);
	mig_put_hdr(msg, MIG_PAGES, 0, 1, MIG_PAGE_ENTRY + MIG_MAX_DATA + 1);
	CHECK_EQ(mig_parse_hdr(msg, &lay, &h), -EPROTO);
	mig_put_hdr(msg, MIG_PAGES, 0, 2, MIG_PAGE_ENTRY);	/* short of 2 entries */
	CHECK_EQ(mig_parse_hdr(msg, &lay, &h), -EPROTO);
	mig_put_hdr(msg, MIG_REQUEST, 0, 2, 3 * MIG_REQ_ENTRY);
	CHECK_EQ(mig_parse_hdr(msg, &lay, &h), -EPROTO);
	mig_put_hdr(msg, MIG_HELLO, 0, 0, MIG_HELLO_BASE + 16 * 4097);
	CHECK_EQ(mig_parse_hdr(msg, &lay, &h), -EPROTO);
	/* The bitmap of this layout is 8 bytes. */
	mig_put_hdr(msg, MIG_SWITCHOVER, 0, 0, MIG_SWITCHOVER_BASE + 8 + MIG_BLOB_MAX + 1);
	CHECK_EQ(mig_parse_hdr(msg, &lay, &h), -EPROTO);
	mig_put_hdr(msg, MIG_SWITCHOVER, 0, 0, MIG_SWITCHOVER_BASE + 7);
	CHECK_EQ(mig_parse_hdr(msg, &lay, &h), -EPROTO);
	mig_put_hdr(msg, MIG_ERROR, 0, 0, MIG_ERROR_BASE + MIG_MAX_TEXT + 1);
	CHECK_EQ(mig_parse_hdr(msg, &lay, &h), -EPROTO);
	mig_put_hdr(msg, MIG_END, 0, 0, 1);
	CHECK_EQ(mig_parse_hdr(msg, &lay, &h), -EPROTO);
}

static void payloads(void)
{
	uint8_t *e = msg + MIG_HDR_SIZE;
	struct mig_msg m;
	uint32_t len;
	int bad = -1;

	len = pages(3, true);
	CHECK_OK(parse(len, &m, &bad));
	CHECK_EQ(m.pages.n, 3);
	CHECK(m.pages.p[0].data == e + 3 * MIG_PAGE_ENTRY);
	CHECK(m.pages.p[1].data == e + 3 * MIG_PAGE_ENTRY + 4096);
	CHECK(m.pages.p[2].data == NULL);
	/* A flipped data byte: the CRC says which entry. */
	e[3 * MIG_PAGE_ENTRY + 4096 + 100] ^= 1;
	CHECK_EQ(parse(len, &m, &bad), -EBADMSG);
	CHECK_EQ(bad, 1);
	len = pages(3, true);
	put_le32(e + MIG_PAGE_ENTRY, 2);		/* no region 2 */
	CHECK_EQ(parse(len, &m, &bad), -EPROTO);
	len = pages(3, true);
	put_le64(e + MIG_PAGE_ENTRY + 8, 16);		/* region 0 has 16 pages */
	CHECK_EQ(parse(len, &m, &bad), -EPROTO);
	len = pages(3, true);
	put_le32(e + 4, 4);				/* unknown flag */
	CHECK_EQ(parse(len, &m, &bad), -EPROTO);
	len = pages(3, true);
	put_le32(e + 2 * MIG_PAGE_ENTRY + 16, 1);	/* a zero page with a CRC */
	CHECK_EQ(parse(len, &m, &bad), -EPROTO);
	len = pages(3, true);
	put_le32(e + 2 * MIG_PAGE_ENTRY + 4, 0);	/* data the length lacks */
	CHECK_EQ(parse(len, &m, &bad), -EPROTO);
	len = pages(3, true);
	put_le32(e, 1);				/* a 2 MiB page in 4 KiB */
	put_le64(e + 8, 0);
	CHECK_EQ(parse(len, &m, &bad), -EPROTO);

	/* SWITCHOVER: 18 pages, bitmap of one word. */
	e = msg + MIG_HDR_SIZE;
	memset(e, 0, 64);
	put_le32(e, MIG_SW_POSTCOPY);
	put_le32(e + 4, 3);
	put_le64(e + 8, 2);
	put_le64(e + 16, 8);
	put_le64(e + MIG_SWITCHOVER_BASE, (1ull << 17) | 1);
	memcpy(e + MIG_SWITCHOVER_BASE + 8, "abc", 3);
	mig_put_hdr(msg, MIG_SWITCHOVER, 0, 0, MIG_SWITCHOVER_BASE + 8 + 3);
	CHECK_OK(parse(MIG_SWITCHOVER_BASE + 11, &m, &bad));
	CHECK_EQ(m.sw.pages, 2);
	CHECK_EQ(m.sw.blob_len, 3);
	CHECK(!memcmp(m.sw.blob, "abc", 3));
	put_le64(e + MIG_SWITCHOVER_BASE, (1ull << 18) | 1);	/* past page 17 */
	CHECK_EQ(parse(MIG_SWITCHOVER_BASE + 11, &m, &bad), -EPROTO);
	put_le64(e + MIG_SWITCHOVER_BASE, 1);		/* 1 set, 2 said */
	CHECK_EQ(parse(MIG_SWITCHOVER_BASE + 11, &m, &bad), -EPROTO);
	put_le64(e + 8, 1);
	put_le32(e, 0);				/* stop-and-copy with pages left */
	CHECK_EQ(parse(MIG_SWITCHOVER_BASE + 11, &m, &bad), -EPROTO);
	put_le32(e, MIG_SW_POSTCOPY);
	put_le64(e + 16, 16);				/* another bitmap size */
	CHECK_EQ(parse(MIG_SWITCHOVER_BASE + 11, &m, &bad), -EPROTO);

	/* ERROR: printable text of the length said. */
	put_le32(e, 74);
	put_le32(e + 4, 0);
	put_le32(e + 8, 4);
	memcpy(e + MIG_ERROR_BASE, "oops", 4);
	mig_put_hdr(msg, MIG_ERROR, 0, 0, MIG_ERROR_BASE + 4);
	CHECK_OK(parse(MIG_ERROR_BASE + 4, &m, &bad));
	CHECK_EQ(m.error.code, 74);
	e[MIG_ERROR_BASE + 2] = '\n';
	CHECK_EQ(parse(MIG_ERROR_BASE + 4, &m, &bad), -EPROTO);
	memcpy(e + MIG_ERROR_BASE, "oops", 4);
	put_le32(e + 4, 2);				/* unknown flag */
	CHECK_EQ(parse(MIG_ERROR_BASE + 4, &m, &bad), -EPROTO);
}

/* A destination whose source turns out to speak garbage. */
static void garbage_peer(void)
{
	struct t_mig good = {
		.co = { .sz = sizeof(struct uffd_checker_opts), .bytes = 1 << 20, .writers = 1,
			.seed = 2, .fill = 1.0 },
		.no_writers = true,
	};
	void *area = t_map_anon(1 << 20);
	struct uffd_image_region reg = { (uintptr_t)area, 1 << 20, 4096, UFFD_IMAGE_ANON };
	uint8_t hello[MIG_HDR_SIZE + MIG_HELLO_BASE + 16], back[256];
	int s[2], u[2], ret;
	struct uffd_mig_stats st;
	struct uffd_mig_dest *d;

	t_tcp_pair(&s[0], &s[1]);
	t_tcp_pair(&u[0], &u[1]);
	UFFD_OPTS(uffd_mig_dest_opts, o, .regions = &reg, .nregions = 1, .stream_fd = s[1],
		  .urgent_fd = u[1], .timeout_ms = 5000);
	d = uffd_mig_dest_start(&o);
	CHECK(d);
	/* Meanwhile a good migration runs in the same process. */
	t_mig_start(&good);
	memset(hello, 0, sizeof(hello));
	put_le32(hello + MIG_HDR_SIZE, 1);
	put_le32(hello + MIG_HDR_SIZE + 4, 1);
	put_le32(hello + MIG_HDR_SIZE + 20, 1);
	put_le64(hello + MIG_HDR_SIZE + 24, 42);
	put_le64(hello + MIG_HDR_SIZE + MIG_HELLO_BASE, 1 << 20);
	put_le32(hello + MIG_HDR_SIZE + MIG_HELLO_BASE + 8, 4096);
	mig_put_hdr(hello, MIG_HELLO, 0, 0, MIG_HELLO_BASE + 16);
	CHECK_EQ(write(s[0], hello, sizeof(hello)), sizeof(hello));
	/* WELCOME */
	CHECK_EQ(read(s[0], back, MIG_HDR_SIZE + 24), MIG_HDR_SIZE + 24);
	CHECK_EQ(back[4], MIG_WELCOME);
	CHECK_EQ(get_le32(back + MIG_HDR_SIZE + 4), 0);
	/* urgent HELLO */
	put_le32(hello + MIG_HDR_SIZE + 8, MIG_CHAN_URGENT);
	CHECK_EQ(write(u[0], hello, sizeof(hello)), sizeof(hello));
	CHECK_EQ(read(u[0], back, MIG_HDR_SIZE + 24), MIG_HDR_SIZE + 24);
	CHECK_EQ(get_le32(back + MIG_HDR_SIZE + 4), 0);
	/* Then garbage. */
	CHECK_EQ(write(s[0], "this is not a message", 21), 21);
	CHECK_EQ(uffd_mig_dest_wait(d, 5000), -EPROTO);
	CHECK_OK(uffd_mig_dest_stats(d, &st));
	CHECK_EQ(st.phase, UFFD_MIG_FAILED);
	/* It told the peer why. */
	ret = read(s[0], back, sizeof(back));
	CHECK(ret > MIG_HDR_SIZE);
	CHECK_EQ(back[4], MIG_ERROR);
	uffd_mig_dest_free(d);
	/* The other one did not notice. */
	ret = t_mig_wait(&good, 20000);
	if (ret)
		FAIL("the good migration: %s", strerror(-ret));
	t_mig_verify(&good);
	t_mig_free(&good);
	close(s[0]);
	close(s[1]);
	close(u[0]);
	close(u[1]);
}

int main(void)
{
	headers();
	payloads();
	garbage_peer();
	return T_EXIT_PASS;
}
