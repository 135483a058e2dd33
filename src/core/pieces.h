/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Large ranges a piece at a time, for the services' own use.
 *
 * UFFDIO_WRITEPROTECT holds the mm's lock for reading while it walks its
 * range, and UFFDIO_UNREGISTER (like the close of a userfaultfd) holds it
 * for writing while it clears the range's uffd-wp bits: about 25 and 30 ms
 * a GiB here.  A thread of the program that needs the lock meanwhile -
 * brk() when malloc grows the heap, mmap, a fault in a registered range -
 * waits for the whole walk, and so does every thread queued behind it.  In
 * pieces, the waiters get in between two of them (a 1 GiB unregister: the
 * longest piece held it 2.2 ms).
 */
#ifndef LIBUFFD_CORE_PIECES_H
#define LIBUFFD_CORE_PIECES_H

#include <stddef.h>
#include <stdint.h>

#define UFFD__PIECE	(64ULL << 20)

/* The length of the piece of a len-byte range that starts at off: whole
 * pages of page_size (a page larger than a piece is a piece). */
static inline uint64_t uffd__piece(uint64_t len, uint64_t off, size_t page_size)
{
	uint64_t piece = page_size > UFFD__PIECE ? page_size : UFFD__PIECE;

	return len - off < piece ? len - off : piece;
}

#endif
