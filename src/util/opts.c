/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Options structs that can grow: see opts.h. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "opts.h"

int uffd__opts_load(void *dst, size_t dst_sz, size_t known, const void *src, size_t min)
{
	const unsigned char *tail;
	size_t sz, i;

	memset(dst, 0, dst_sz);
	*(size_t *)dst = dst_sz;
	if (!src)
		return 0;
	sz = *(const size_t *)src;
	if (sz < min || sz > UFFD__OPTS_MAX)
		return -EINVAL;
	/* A newer caller: everything we do not know must be left zero. */
	tail = (const unsigned char *)src;
	for (i = known; i < sz; i++)
		if (tail[i])
			return -EINVAL;
	memcpy(dst, src, sz < known ? sz : known);
	*(size_t *)dst = dst_sz;
	return 0;
}
