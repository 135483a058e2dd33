/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CRC32C, the checksum of memory images, is the Castagnoli CRC: the check
 * value of "123456789" is 0xE3069283 and the iSCSI vectors (RFC 3720
 * B.4) come out; the slicing-by-8 table, the crc32 instruction (when the
 * CPU has it) and a bit-at-a-time reference agree on every length from 0
 * to 1100 at every alignment, and on longer ones to 5000 (the instruction
 * runs three chains over 768-byte rounds and joins them: one round, many,
 * and every tail); and a CRC continued over pieces equals the CRC of the
 * whole.
 */
#include "lib/harness.h"
#include "util/crc32c.h"

/* One bit at a time, straight from the definition. */
static uint32_t crc32c_bitwise(uint32_t crc, const uint8_t *p, size_t len)
{
	int k;

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return ~crc;
}

int main(void)
{
	static uint8_t buf[5000 + 8], zeros[32], ones[32], inc[32], dec[32];
	size_t len, align, cut;
	uint32_t want;
	int i;

	for (i = 0; i < 32; i++) {
		ones[i] = 0xff;
		inc[i] = i;
		dec[i] = 31 - i;
	}
	CHECK_EQ(crc32c(0, "123456789", 9), 0xE3069283);
	CHECK_EQ(crc32c_sw(0, "123456789", 9), 0xE3069283);
	CHECK_EQ(crc32c(0, zeros, 32), 0x8A9136AA);
	CHECK_EQ(crc32c(0, ones, 32), 0x62A8AB43);
	CHECK_EQ(crc32c(0, inc, 32), 0x46DD794E);
	CHECK_EQ(crc32c(0, dec, 32), 0x113FDB5C);
	CHECK_EQ(crc32c_sw(0, dec, 32), 0x113FDB5C);
	CHECK_EQ(crc32c(0, NULL, 0), 0);
	CHECK_EQ(crc32c(0x12345678, "", 0), 0x12345678);

	for (i = 0; i < (int)sizeof(buf); i++)
		buf[i] = i * 131 + (i >> 3) * 7 + 1;
	for (align = 0; align < 8; align++) {
		for (len = 0; len <= 1100; len++) {
			want = crc32c_bitwise(0, buf + align, len);
			if (crc32c_sw(0, buf + align, len) != want)
				FAIL("table: len %zu align %zu", len, align);
			if (crc32c(0, buf + align, len) != want)
				FAIL("%s: len %zu align %zu",
				     crc32c_hw_available() ? "crc32 instruction" : "table",
				     len, align);
		}
	}
	for (align = 0; align < 8; align += 3) {
		for (len = 1101; len <= 5000; len += len % 768 < 16 ? 1 : 29) {
			want = crc32c_bitwise(0, buf + align, len);
			if (crc32c_sw(0, buf + align, len) != want ||
			    crc32c(0, buf + align, len) != want)
				FAIL("len %zu align %zu", len, align);
		}
	}
	CHECK_EQ(crc32c(0x9e3779b9, buf, 4096), crc32c_bitwise(0x9e3779b9, buf, 4096));
	want = crc32c_bitwise(0, buf, 1100);
	for (cut = 0; cut <= 1100; cut += 37) {
		CHECK_EQ(crc32c(crc32c(0, buf, cut), buf + cut, 1100 - cut), want);
		CHECK_EQ(crc32c_sw(crc32c(0, buf, cut), buf + cut, 1100 - cut), want);
	}
	fprintf(stderr, "crc32 instruction: %s\n", crc32c_hw_available() ? "used" : "not available");
	return T_EXIT_PASS;
}
