/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum of
 * memory images.  The SSE4.2 crc32 instruction when the CPU has it, chosen
 * once at run time; otherwise a slicing-by-8 table (eight bytes per step).
 */
#ifndef LIBUFFD_UTIL_CRC32C_H
#define LIBUFFD_UTIL_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The CRC32C of buf continued from crc, the CRC32C of what came before (0
 * to start): crc32c(crc32c(0, a), b) is the CRC32C of a followed by b.
 * crc32c(0, "123456789", 9) == 0xE3069283.
 */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The same, always by the slicing-by-8 table (for tests and comparison). */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* Whether crc32c() uses the CPU's crc32 instruction. */
bool crc32c_hw_available(void);

#endif
