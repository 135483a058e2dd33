/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Little-endian integers in byte arrays: every file and wire format of
 * libuffd (images, working sets, the page server's frames) encodes its
 * structures field by field through these, never by casting a struct, so
 * the bytes are the same whatever the compiler's padding and the
 * machine's byte order.
 */
#ifndef LIBUFFD_UTIL_LE_H
#define LIBUFFD_UTIL_LE_H

#include <stdint.h>

static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	put_le16(p, v);
	put_le16(p + 2, v >> 16);
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, v);
	put_le32(p + 4, v >> 32);
}

static inline uint16_t get_le16(const uint8_t *p)
{
	return p[0] | (uint16_t)p[1] << 8;
}

static inline uint32_t get_le32(const uint8_t *p)
{
	return get_le16(p) | (uint32_t)get_le16(p + 2) << 16;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	return get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

#endif
