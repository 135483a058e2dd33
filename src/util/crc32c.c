/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CRC32C, two ways (see crc32c.h).  Slicing-by-8: table[k][b] is the CRC of
 * byte b followed by k zero bytes, so eight input bytes fold into the CRC
 * with eight independent lookups XORed together instead of eight dependent
 * ones.  On x86-64 with SSE4.2 the crc32 instruction does eight bytes per
 * instruction; which one runs is decided once, on first use.
 *
 * The instruction takes three cycles but can start one per cycle, so one
 * chain of them runs at a third of its speed.  Three chains run at once
 * over three consecutive STREAM-byte blocks, the second and third from a
 * zero state, and are joined: without the pre- and post-inversion the CRC
 * state is linear, so the state after A then B is shift(state after A)
 * XOR (state after B alone), shift being the state after STREAM zero
 * bytes - itself linear, so four tables of 256 give it for any state.
 */
#include <pthread.h>
#include <string.h>

#include "crc32c.h"

#define CRC32C_POLY 0x82F63B78u	/* Castagnoli, bit-reversed */
#define STREAM 256		/* bytes per chain in a three-chain round */

static uint32_t table[8][256];
static uint32_t shift_table[4][256];	/* byte k of a state -> STREAM zeros later */
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

/* The state after STREAM zero bytes, from state c (no inversion). */
static uint32_t zeros_after(uint32_t c)
{
	int i;

	for (i = 0; i < STREAM; i++)
		c = (c >> 8) ^ table[0][c & 0xff];
	return c;
}

/* shift_table from the 32 single-bit states: the map is linear. */
static void shift_init(void)
{
	uint32_t bit[32];
	int i, k, b;

	for (i = 0; i < 32; i++)
		bit[i] = zeros_after(1u << i);
	for (k = 0; k < 4; k++)
		for (b = 0; b < 256; b++) {
			uint32_t c = 0;

			for (i = 0; i < 8; i++)
				if (b >> i & 1)
					c ^= bit[8 * k + i];
			shift_table[k][b] = c;
		}
}

static inline uint32_t shift_stream(uint32_t c)
{
	return shift_table[0][c & 0xff] ^ shift_table[1][(c >> 8) & 0xff] ^
	       shift_table[2][(c >> 16) & 0xff] ^ shift_table[3][c >> 24];
}

static void table_init(void)
{
	uint32_t c;
	int b, k;

	for (b = 0; b < 256; b++) {
		c = b;
		for (k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		table[0][b] = c;
	}
	for (b = 0; b < 256; b++)
		for (k = 1; k < 8; k++)
			table[k][b] = (table[k - 1][b] >> 8) ^
				      table[0][table[k - 1][b] & 0xff];
	shift_init();
}

static inline uint64_t load_le64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t v;

	pthread_once(&table_once, table_init);
	crc = ~crc;
	for (; len && ((uintptr_t)p & 7); len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	for (; len >= 8; len -= 8, p += 8) {
		v = load_le64(p) ^ crc;
		crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^
		      table[5][(v >> 16) & 0xff] ^ table[4][(v >> 24) & 0xff] ^
		      table[3][(v >> 32) & 0xff] ^ table[2][(v >> 40) & 0xff] ^
		      table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
	}
	while (len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t c = ~crc, v;

	size_t i;

	for (; len && ((uintptr_t)p & 7); len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	for (; len >= 3 * STREAM; len -= 3 * STREAM, p += 3 * STREAM) {
		uint64_t a = c, b = 0, d = 0;

		for (i = 0; i < STREAM; i += 8) {
			memcpy(&v, p + i, 8);
			a = _mm_crc32_u64(a, v);
			memcpy(&v, p + STREAM + i, 8);
			b = _mm_crc32_u64(b, v);
			memcpy(&v, p + 2 * STREAM + i, 8);
			d = _mm_crc32_u64(d, v);
		}
		c = shift_stream(shift_stream((uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)d;
	}
	for (; len >= 8; len -= 8, p += 8) {
		memcpy(&v, p, 8);
		c = _mm_crc32_u64(c, v);
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}

bool crc32c_hw_available(void)
{
	static int have = -1;
	int h = __atomic_load_n(&have, __ATOMIC_RELAXED);

	if (h < 0) {
		__builtin_cpu_init();
		h = __builtin_cpu_supports("sse4.2") ? 1 : 0;
		__atomic_store_n(&have, h, __ATOMIC_RELAXED);
	}
	return h;
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	if (crc32c_hw_available()) {
		pthread_once(&table_once, table_init);	/* shift_table */
		return crc32c_sse42(crc, buf, len);
	}
	return crc32c_sw(crc, buf, len);
}
#else
bool crc32c_hw_available(void)
{
	return false;
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	return crc32c_sw(crc, buf, len);
}
#endif
