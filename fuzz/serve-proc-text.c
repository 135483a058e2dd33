/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the kernel's text the page server reads about a
 * client - a userfaultfd's fdinfo (uffd__serve_fdinfo_features: the whole
 * input) and a /proc/PID/maps (uffd__serve_maps_cover: the input after its
 * first 16 bytes, which give the range asked about).  Neither trusts the
 * text: a malformed line is an error, never a read past the end; a range
 * is covered or not, and an empty range always is.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/proto.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	uint64_t features, addr = 0, len = 0;
	int ret;

	uffd__serve_fdinfo_features((const char *)data, size, &features);
	if (size < 16)
		return 0;
	memcpy(&addr, data, 8);
	memcpy(&len, data + 8, 8);
	ret = uffd__serve_maps_cover((const char *)data + 16, size - 16, addr, len);
	if (ret < -EBADMSG || ret > 1 || (len == 0 && ret == 0))
		abort();
	return 0;
}
