/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Loading the caller's options structs (libbpf's OPTS pattern).
 *
 * Every public options struct begins with `size_t sz`, which the caller's
 * UFFD_OPTS() sets to the size of the struct in the header it was compiled
 * against.  The library copies what the caller has into its own full-size
 * struct and reads missing fields as zero, so an old program keeps working
 * when fields are added; a newer program that sets a field this library does
 * not know gets -EINVAL instead of having it silently ignored.
 */
#ifndef LIBUFFD_UTIL_OPTS_H
#define LIBUFFD_UTIL_OPTS_H

#include <stddef.h>

/* No options struct will ever be this large: a bigger sz is garbage, and
 * checking its tail would read far past the caller's struct. */
#define UFFD__OPTS_MAX 4096

/* The end of a field: what a struct "knows" stops there, not at its padding. */
#define uffd__offsetofend(type, field) \
	(offsetof(type, field) + sizeof(((type *)0)->field))

/*
 * Copy the caller's options src (NULL: all defaults) into dst, a struct of
 * dst_sz bytes that this library knows up to byte known: dst is zeroed, then
 * gets the caller's first min(src->sz, known) bytes, and dst->sz (its first
 * field) is set to dst_sz.  min is the smallest size ever released (the end
 * of the last field of the struct's first version).  0, or -EINVAL: sz below
 * min or above UFFD__OPTS_MAX, or non-zero bytes past known (a field this library does not have).
 */
int uffd__opts_load(void *dst, size_t dst_sz, size_t known, const void *src, size_t min);

/*
 * uffd__load_opts(&mine, caller, type, last_field, first_last_field):
 * last_field is the struct's last field today, first_last_field the last
 * field of its first released version.
 */
#define uffd__load_opts(dst, src, type, last_field, first_last_field)		\
	uffd__opts_load((dst), sizeof(type), uffd__offsetofend(type, last_field),	\
			(src), uffd__offsetofend(type, first_last_field))

#endif
