/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The page server's parsers of outside input, case by case: Firecracker's
 * JSON (serde's exact output, whitespace, the older page_size_kib, members
 * it does not know; every prefix of a valid array asks for more bytes and
 * never fails; integers strictly decimal and at most 2^64 - 1; malformed,
 * nested, trailing, empty, too many, too long), the checks of a client's
 * regions, libuffd's frames (round trip, CRC, version, length, type, cut
 * short; version 2 events: the address space, the sequence number, FORK
 * and DONE; MAP flags), a userfaultfd's fdinfo, /proc/PID/maps coverage,
 * and working-set headers and indexes.
 */
#include "lib/harness.h"
#include "serve/proto.h"
#include "serve/wset.h"
#include "util/crc32c.h"
#include "util/le.h"

#define MAXR 8

static struct serve_mapping m[MAXR];

static int fc(const char *json, char *why)
{
	size_t where;

	return uffd__serve_fc_parse(json, strlen(json), m, MAXR, &where, why, 112);
}

static void fc_bad(const char *json, const char *why_part)
{
	char why[112];
	int ret = fc(json, why);

	if (ret != -EBADMSG || !strstr(why, why_part))
		FAIL("%s: got %d \"%s\", want EBADMSG with \"%s\"", json, ret, why, why_part);
}

static void test_firecracker(void)
{
	const char *serde = "[{\"base_host_virt_addr\":139872387203072,\"size\":100663296,"
			    "\"offset\":0,\"page_size\":4096,\"page_size_kib\":4096},"
			    "{\"base_host_virt_addr\":139872521420800,\"size\":33554432,"
			    "\"offset\":100663296,\"page_size\":4096,\"page_size_kib\":4096}]";
	char why[112], big[SERVE_FC_MAX_JSON + 64];
	size_t len = strlen(serde), i, where;
	int k;

	CHECK_EQ(fc(serde, why), 2);
	CHECK_EQ(m[0].addr, 139872387203072ull);
	CHECK_EQ(m[0].len, 100663296);
	CHECK_EQ(m[0].offset, 0);
	CHECK_EQ(m[0].page_size, 4096);
	CHECK_EQ(m[1].addr, 139872521420800ull);
	CHECK_EQ(m[1].offset, 100663296);
	/* Every proper prefix is a valid beginning: more bytes needed. */
	for (i = 0; i < len; i++)
		CHECK_EQ(uffd__serve_fc_parse(serde, i, m, MAXR, &where, why, sizeof(why)), 0);
	CHECK_EQ(fc(" [ {\n\"size\" : 8192 ,\"offset\":4096,\t\"base_host_virt_addr\" :\r 8192,"
		    "\"page_size_kib\":4096} ] \n", why), 1);
	CHECK_EQ(m[0].addr, 8192);
	CHECK_EQ(m[0].len, 8192);
	CHECK_EQ(m[0].offset, 4096);
	CHECK_EQ(fc("[{\"base_host_virt_addr\":0,\"size\":0,\"offset\":0,\"page_size\":2097152}]",
		    why), 1);
	CHECK_EQ(m[0].page_size, 2097152);
	CHECK_EQ(fc("[{\"base_host_virt_addr\":18446744073709551615,\"size\":1,\"offset\":2,"
		    "\"page_size\":4096}]", why), 1);
	CHECK_EQ(m[0].addr, UINT64_MAX);
	/* Members this server does not know, with scalar values: skipped. */
	CHECK_EQ(fc("[{\"guest_memfd\":null,\"base_host_virt_addr\":4096,\"x\":\"a\\\"b\\u00e9\","
		    "\"size\":4096,\"y\":-1.5e+3,\"offset\":0,\"z\":true,\"page_size\":4096,"
		    "\"w\":false,\"v\":0}]", why), 1);
	CHECK_EQ(m[0].addr, 4096);

	fc_bad("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size\":4096,"
	       "\"page_size_kib\":8192}]", "differ");
	fc_bad("[{\"base_host_virt_addr\":4096,\"size\":4096,\"page_size\":4096}]", "no offset");
	fc_bad("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0}]", "no page_size");
	fc_bad("[{\"size\":1,\"size\":2,\"base_host_virt_addr\":0,\"offset\":0,\"page_size\":1}]",
	       "named twice");
	fc_bad("[{\"size\":01}]", "leading zero");
	fc_bad("[{\"size\":-1}]", "unsigned integer");
	fc_bad("[{\"size\":4096.0}]", "not an integer");
	fc_bad("[{\"size\":4096e3}]", "not an integer");
	fc_bad("[{\"size\":18446744073709551616}]", "2^64");
	fc_bad("[{\"size\":\"4096\"}]", "unsigned integer");
	fc_bad("[{\"x\":{\"a\":1}}]", "nested");
	fc_bad("[{\"x\":[1]}]", "nested");
	fc_bad("[{\"x\":tru}]", "literal");
	fc_bad("[{\"x\":\"a\\qb\"}]", "escape");
	fc_bad("[{\"x\":\"a\tb\"}]", "control character");
	fc_bad("[]", "no regions");
	fc_bad("[{}]", "empty object");
	fc_bad("{\"size\":1}", "'['");
	fc_bad("[{\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0,\"page_size\":4096}] x",
	       "after the array");
	fc_bad("[{\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0,\"page_size\":4096}}",
	       "',' or ']'");
	fc_bad("[{\"base_host_virt_addr\" 0}]", "':'");
	/* More regions than room for. */
	k = snprintf(big, sizeof(big), "[");
	for (i = 0; i <= MAXR; i++)
		k += snprintf(big + k, sizeof(big) - k, "%s{\"base_host_virt_addr\":%zu,\"size\":4096,"
			      "\"offset\":0,\"page_size\":4096}", i ? "," : "", i * 4096);
	snprintf(big + k, sizeof(big) - k, "]");
	CHECK_EQ(fc(big, why), -E2BIG);
	/* No complete array in the bound. */
	memset(big, ' ', sizeof(big));
	big[0] = '[';
	CHECK_EQ(uffd__serve_fc_parse(big, sizeof(big), m, MAXR, &where, why, sizeof(why)),
		 -E2BIG);
	CHECK_EQ(uffd__serve_fc_parse(big, SERVE_FC_MAX_JSON, m, MAXR, &where, why,
				      sizeof(why)), 0);
}

static void test_checks(void)
{
	struct serve_mapping r[3] = {
		{ 0x20000, 0x2000, 0x2000, 4096 },
		{ 0x10000, 0x10000, 0, 4096 },		/* ends where r[0] starts */
		{ 0x40000, 0x1000, 0x3000, 4096 },
	};
	char why[112];

	CHECK_OK(uffd__serve_check_mappings(r, 3, 0x10000, why, sizeof(why)));
	CHECK_EQ(r[0].addr, 0x10000);		/* sorted by address */
	CHECK_EQ(r[1].addr, 0x20000);
	r[2].addr = 0x21000;
	CHECK_EQ(uffd__serve_check_mappings(r, 3, 0x10000, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "overlap"));
	CHECK_EQ(uffd__serve_check_mappings(r, 0, 0x10000, why, sizeof(why)), -EINVAL);
	r[0] = (struct serve_mapping){ 0x10000, 0x1000, 0xf000, 4096 };
	CHECK_OK(uffd__serve_check_mappings(r, 1, 0x10000, why, sizeof(why)));
	r[0].offset = 0x10000;
	CHECK_EQ(uffd__serve_check_mappings(r, 1, 0x10000, why, sizeof(why)), -ERANGE);
	r[0].offset = UINT64_MAX - 0xfff;
	CHECK_EQ(uffd__serve_check_mappings(r, 1, UINT64_MAX, why, sizeof(why)), -ERANGE);
}

static void test_frames(void)
{
	uint8_t buf[SERVE_HDR + SERVE_EVENT_SIZE], buf2[SERVE_HDR + SERVE_EVENT2_SIZE];
	struct serve_event ev = { .type = SERVE_EV_REMAP, .a = 1, .b = 2, .c = 3 }, back;
	struct serve_frame f;
	size_t i;

	CHECK_EQ(uffd__serve_event_put(buf + SERVE_HDR, &ev, 1), SERVE_EVENT_SIZE);
	CHECK_EQ(uffd__serve_frame_put(buf, SF_EVENT, buf + SERVE_HDR, SERVE_EVENT_SIZE),
		 sizeof(buf));
	CHECK_EQ(uffd__serve_frame_parse(buf, sizeof(buf), &f), (int)sizeof(buf));
	CHECK_EQ(f.type, SF_EVENT);
	CHECK_OK(uffd__serve_event_get(&f, &back));
	CHECK(back.type == ev.type && back.a == 1 && back.b == 2 && back.c == 3);
	CHECK(back.mm == 0 && back.seq == 0);
	/* Version 2: the address space and the sequence number travel too. */
	ev.mm = 7;
	ev.seq = 42;
	CHECK_EQ(uffd__serve_event_put(buf2 + SERVE_HDR, &ev, 2), SERVE_EVENT2_SIZE);
	uffd__serve_frame_put(buf2, SF_EVENT, buf2 + SERVE_HDR, SERVE_EVENT2_SIZE);
	CHECK_EQ(uffd__serve_frame_parse(buf2, sizeof(buf2), &f), (int)sizeof(buf2));
	CHECK_OK(uffd__serve_event_get(&f, &back));
	CHECK(back.mm == 7 && back.seq == 42 && back.c == 3);
	/* A FORK names its child and a parent that is another address space. */
	ev = (struct serve_event){ .type = SERVE_EV_FORK, .mm = 2, .a = 0, .seq = 3 };
	uffd__serve_event_put(buf2 + SERVE_HDR, &ev, 2);
	uffd__serve_frame_put(buf2, SF_EVENT, buf2 + SERVE_HDR, SERVE_EVENT2_SIZE);
	CHECK_EQ(uffd__serve_frame_parse(buf2, sizeof(buf2), &f), (int)sizeof(buf2));
	CHECK_OK(uffd__serve_event_get(&f, &back));
	CHECK(back.type == SERVE_EV_FORK && back.mm == 2 && back.a == 0);
	ev.a = 2;						/* its own parent */
	uffd__serve_event_put(buf2 + SERVE_HDR, &ev, 2);
	uffd__serve_frame_put(buf2, SF_EVENT, buf2 + SERVE_HDR, SERVE_EVENT2_SIZE);
	CHECK_EQ(uffd__serve_frame_parse(buf2, sizeof(buf2), &f), (int)sizeof(buf2));
	CHECK_EQ(uffd__serve_event_get(&f, &back), -EBADMSG);
	ev.mm = 0;						/* the root, forked */
	ev.a = 1;
	uffd__serve_event_put(buf2 + SERVE_HDR, &ev, 2);
	uffd__serve_frame_put(buf2, SF_EVENT, buf2 + SERVE_HDR, SERVE_EVENT2_SIZE);
	CHECK_EQ(uffd__serve_frame_parse(buf2, sizeof(buf2), &f), (int)sizeof(buf2));
	CHECK_EQ(uffd__serve_event_get(&f, &back), -EBADMSG);
	/* A DONE is a child's; the root's end is the DONE frame. */
	ev = (struct serve_event){ .type = SERVE_EV_DONE, .mm = 3, .seq = 4 };
	uffd__serve_event_put(buf2 + SERVE_HDR, &ev, 2);
	uffd__serve_frame_put(buf2, SF_EVENT, buf2 + SERVE_HDR, SERVE_EVENT2_SIZE);
	CHECK_EQ(uffd__serve_frame_parse(buf2, sizeof(buf2), &f), (int)sizeof(buf2));
	CHECK_OK(uffd__serve_event_get(&f, &back));
	CHECK(back.type == SERVE_EV_DONE && back.mm == 3);
	ev.mm = 0;
	uffd__serve_event_put(buf2 + SERVE_HDR, &ev, 2);
	uffd__serve_frame_put(buf2, SF_EVENT, buf2 + SERVE_HDR, SERVE_EVENT2_SIZE);
	CHECK_EQ(uffd__serve_frame_parse(buf2, sizeof(buf2), &f), (int)sizeof(buf2));
	CHECK_EQ(uffd__serve_event_get(&f, &back), -EBADMSG);
	/* Version 1 frames know neither children nor forks. */
	ev = (struct serve_event){ .type = SERVE_EV_FORK, .mm = 2 };
	uffd__serve_event_put(buf2 + SERVE_HDR, &ev, 2);
	uffd__serve_frame_put(buf2, SF_EVENT, buf2 + SERVE_HDR, SERVE_EVENT_SIZE);
	CHECK_EQ(uffd__serve_frame_parse(buf2, SERVE_HDR + SERVE_EVENT_SIZE, &f),
		 SERVE_HDR + SERVE_EVENT_SIZE);
	CHECK_EQ(uffd__serve_event_get(&f, &back), -EBADMSG);
	for (i = 4; i < sizeof(buf); i++)
		CHECK_EQ(uffd__serve_frame_parse(buf, i, &f), 0);
	CHECK_EQ(uffd__serve_frame_parse((const uint8_t *)"X", 1, &f), -EBADMSG);
	buf[SERVE_HDR + 9] ^= 1;				/* payload: CRC */
	CHECK_EQ(uffd__serve_frame_parse(buf, sizeof(buf), &f), -EBADMSG);
	buf[SERVE_HDR + 9] ^= 1;
	put_le16(buf + 6, 2);					/* frame version */
	CHECK_EQ(uffd__serve_frame_parse(buf, sizeof(buf), &f), -EPROTO);
	put_le16(buf + 6, 1);
	put_le32(buf + 8, SERVE_MAX_PAYLOAD + 1);		/* length */
	CHECK_EQ(uffd__serve_frame_parse(buf, sizeof(buf), &f), -EMSGSIZE);
	uffd__serve_frame_put(buf, 200, buf + SERVE_HDR, SERVE_EVENT_SIZE);
	CHECK_EQ(uffd__serve_frame_parse(buf, sizeof(buf), &f), -EPROTO);
	/* A payload of the wrong size for its type. */
	uffd__serve_frame_put(buf, SF_EVENT, buf + SERVE_HDR, 8);
	CHECK_EQ(uffd__serve_frame_parse(buf, SERVE_HDR + 8, &f), SERVE_HDR + 8);
	CHECK_EQ(uffd__serve_event_get(&f, &back), -EBADMSG);
}

/* MAP's flags: SHARED travels, a flag nobody defined is refused. */
static void test_map_flags(void)
{
	struct serve_mapping one = { 0x567000000000ull, 1 << 20, 4096, 4096 }, back;
	uint8_t buf[SERVE_HDR + 8 + SERVE_MAPPING_SIZE];
	struct serve_frame f;
	uint32_t flags;

	uffd__serve_map_put(buf + SERVE_HDR, &one, 1, SERVE_MAP_SHARED);
	uffd__serve_frame_put(buf, SF_MAP, buf + SERVE_HDR, 8 + SERVE_MAPPING_SIZE);
	CHECK_EQ(uffd__serve_frame_parse(buf, sizeof(buf), &f), (int)sizeof(buf));
	CHECK_EQ(uffd__serve_map_get(&f, &back, 1, &flags), 1);
	CHECK_EQ(flags, SERVE_MAP_SHARED);
	CHECK(back.addr == one.addr && back.len == one.len && back.offset == 4096);
	uffd__serve_map_put(buf + SERVE_HDR, &one, 1, 0);
	uffd__serve_frame_put(buf, SF_MAP, buf + SERVE_HDR, 8 + SERVE_MAPPING_SIZE);
	uffd__serve_frame_parse(buf, sizeof(buf), &f);
	CHECK_EQ(uffd__serve_map_get(&f, &back, 1, &flags), 1);
	CHECK_EQ(flags, 0);
	uffd__serve_map_put(buf + SERVE_HDR, &one, 1, SERVE_MAP_SHARED << 1);
	uffd__serve_frame_put(buf, SF_MAP, buf + SERVE_HDR, 8 + SERVE_MAPPING_SIZE);
	uffd__serve_frame_parse(buf, sizeof(buf), &f);
	CHECK_EQ(uffd__serve_map_get(&f, &back, 1, &flags), -EBADMSG);
}

static void test_kernel_text(void)
{
	const char *fdinfo = "pos:\t0\nflags:\t02004000\nmnt_id:\t17\nino:\t1\npending:\t0\n"
			     "total:\t0\nAPI:\taa:80000008:80000000000001ff\n";
	const char *maps = "55d0c0000000-55d0c0002000 r--p 00000000 fe:01 1 /bin/x\n"
			   "7f0000000000-7f0000010000 rw-p 00000000 00:00 0\n"
			   "7f0000010000-7f0000020000 rw-p 00000000 00:00 0\n"
			   "7f0000030000-7f0000040000 rw-p 00000000 00:00 0\n"
			   "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]\n";
	uint64_t f;

	CHECK_OK(uffd__serve_fdinfo_features(fdinfo, strlen(fdinfo), &f));
	CHECK_EQ(f, 0x80000008);
	CHECK_EQ(uffd__serve_fdinfo_features("pos:\t0\n", 7, &f), -ENOENT);
	CHECK_EQ(uffd__serve_fdinfo_features("API:\taa:zz:1\n", 13, &f), -EBADMSG);
	CHECK_EQ(uffd__serve_fdinfo_features("API:\taa\n", 8, &f), -EBADMSG);
	CHECK_EQ(uffd__serve_maps_cover(maps, strlen(maps), 0x7f0000000000, 0x20000), 1);
	CHECK_EQ(uffd__serve_maps_cover(maps, strlen(maps), 0x7f0000008000, 0x8000), 1);
	CHECK_EQ(uffd__serve_maps_cover(maps, strlen(maps), 0x7f0000010000, 0x30000), 0);
	CHECK_EQ(uffd__serve_maps_cover(maps, strlen(maps), 0x7f0000040000, 0x1000), 0);
	CHECK_EQ(uffd__serve_maps_cover(maps, strlen(maps), 0x1000, 0x1000), 0);
	CHECK_EQ(uffd__serve_maps_cover("zz-1 x\n", 7, 0x1000, 0x1000), -EBADMSG);
}

static void test_wset(void)
{
	uint64_t count = 3, pages[3];
	uint8_t hdr[WS_HDR] = { 0 }, index[3 * 12 + 4];
	uint32_t crcs[3];
	struct ws_header h;
	int i;

	memcpy(hdr, WS_MAGIC, 8);
	put_le32(hdr + 8, 1);
	put_le32(hdr + 12, 4096);
	put_le64(hdr + 16, 77);
	put_le64(hdr + 24, 16 * 4096);
	put_le64(hdr + 32, count);
	put_le64(hdr + 40, uffd__ws_data_offset(count));
	put_le32(hdr + 60, crc32c(0, hdr, 60));
	CHECK_OK(uffd__ws_parse_header(hdr, sizeof(hdr), &h));
	CHECK(h.count == 3 && h.source_id == 77 && h.data_offset == 4096);
	CHECK_EQ(uffd__ws_parse_header(hdr, WS_HDR - 1, &h), -EBADMSG);
	for (i = 0; i < 3; i++) {
		put_le64(index + i * 8, 15 - i);
		put_le32(index + 24 + i * 4, 100 + i);
	}
	put_le32(index + 36, crc32c(0, index, 36));
	CHECK_OK(uffd__ws_parse_index(index, sizeof(index), &h, pages, crcs));
	CHECK(pages[0] == 15 && pages[2] == 13 && crcs[1] == 101);
	put_le64(index, 16);					/* past the source */
	put_le32(index + 36, crc32c(0, index, 36));
	CHECK_EQ(uffd__ws_parse_index(index, sizeof(index), &h, pages, crcs), -EBADMSG);
	index[0] = 15;						/* CRC no longer holds */
	CHECK_EQ(uffd__ws_parse_index(index, sizeof(index), &h, pages, crcs), -EBADMSG);
	put_le64(hdr + 32, 17);					/* more than the pages */
	put_le64(hdr + 40, uffd__ws_data_offset(17));
	put_le32(hdr + 60, crc32c(0, hdr, 60));
	CHECK_EQ(uffd__ws_parse_header(hdr, sizeof(hdr), &h), -EBADMSG);
	put_le32(hdr + 8, 2);
	put_le32(hdr + 60, crc32c(0, hdr, 60));
	CHECK_EQ(uffd__ws_parse_header(hdr, sizeof(hdr), &h), -EPROTO);
	hdr[0] ^= 1;
	CHECK_EQ(uffd__ws_parse_header(hdr, sizeof(hdr), &h), -EBADMSG);
}

int main(void)
{
	test_firecracker();
	test_checks();
	test_frames();
	test_map_flags();
	test_kernel_text();
	test_wset();
	return 0;
}
