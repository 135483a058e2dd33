/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: Firecracker's JSON handshake as the page server reads
 * it (uffd__serve_fc_parse).  Besides not crashing or reading past the
 * input, the parser must keep its promises: at most max regions; an
 * offset inside the input; a complete array never becomes incomplete when
 * more bytes follow unless they are not whitespace (then it is malformed);
 * and what is accepted passes or fails the region checks without harm.
 */
#include <stdlib.h>
#include <string.h>

#include "serve/proto.h"

#define MAXR 16

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct serve_mapping m[MAXR];
	char why[SERVE_REASON_MAX];
	size_t where;
	int n, again;

	n = uffd__serve_fc_parse((const char *)data, size, m, MAXR, &where, why, sizeof(why));
	if (n > MAXR || where > size || strnlen(why, sizeof(why)) == sizeof(why))
		abort();
	if (n > 0) {
		/* Complete: one byte less is still complete only if that
		 * byte was trailing whitespace. */
		again = uffd__serve_fc_parse((const char *)data, size ? size - 1 : 0, m, MAXR,
					     &where, why, sizeof(why));
		if (again > 0 && data[size - 1] != ' ' && data[size - 1] != '\n' &&
		    data[size - 1] != '\t' && data[size - 1] != '\r')
			abort();
		uffd__serve_check_mappings(m, n, 1ull << 40, why, sizeof(why));
	}
	return 0;
}
