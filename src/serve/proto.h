/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The page server's wire formats, as pure functions over byte buffers:
 * libuffd's own frames, Firecracker's JSON handshake, the checks every
 * client's regions must pass, and the features line of a userfaultfd's
 * fdinfo.  Nothing here does I/O or keeps state, so each parser is a
 * libFuzzer target as it stands (fuzz/).  Every length is checked against
 * a stated maximum before it is used.
 *
 * A frame (all integers little-endian):
 *
 *   0   "UFSV"      magic
 *   4   u16 type    SF_*
 *   6   u16 version of the frame layout (1)
 *   8   u32 length  of the payload, at most SERVE_MAX_PAYLOAD
 *   12  u32 CRC32C  of bytes 0..11 and then the payload
 *   16  payload
 *
 * The handshake: the client sends HELLO (the protocol versions it speaks),
 * the server LAYOUT (the version chosen, what it serves: a source of
 * source_size bytes made of extents, each with the address it was
 * recorded at, and the source's path for a fallback), the client MAP with
 * its userfaultfd attached (where it mapped which bytes of the source: the
 * same four numbers as Firecracker's regions) and the server ANSWER
 * (status 0, or a negative errno and a reason).  A refusal can also come
 * at once, instead of LAYOUT (a uid that is not allowed, too many
 * clients, no common version).  After an accepted MAP the server sends
 * EVENT frames (the client's memory map changed: the client's fallback
 * needs to know), STATS when asked with STATS_REQ, and DONE when every
 * page is in.  A client that wants to finish the restore itself sends
 * BYE; the server finishes the client's forked children, stops serving
 * it, closes its copy of the userfaultfd and answers BYE.
 *
 * Protocol version 2 (the server speaks 1 and 2, and uses the highest
 * both sides speak) adds what a fallback needs to cover forked children:
 * an EVENT frame of version 2 names the address space it happened in (0
 * the client's own, n > 0 the n-th child the server saw forked, from any
 * address space of the client) and carries a sequence number (1, 2, ...
 * across EVENT frames of a connection), and a FORK event carries the
 * child's userfaultfd (SCM_RIGHTS) for the client to keep: if the server
 * dies, the client's fallback serves the child too.  A gap in the sequence
 * (a note the server could not send) tells the client that its picture of
 * the memory map is not exact: its fallback then poisons rather than
 * guesses.  A server with a shared page cache (LAYOUT flag SHARED) attaches
 * a read-only fd of it to LAYOUT; a client that maps its regions from it
 * says so in MAP's flags.  A DONE event says a child is complete (every page in: its
 * fd may go).  The DONE frame, in version 2, means the forked children
 * are complete too.
 */
#ifndef LIBUFFD_SERVE_PROTO_H
#define LIBUFFD_SERVE_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <uffd/serve.h>

#define SERVE_MAGIC		"UFSV"
#define SERVE_FRAME_VERSION	1
#define SERVE_HDR		16
#define SERVE_PATH_MAX		256
#define SERVE_LAYOUT_FIXED	(32 + SERVE_PATH_MAX)
#define SERVE_MAPPING_SIZE	32
#define SERVE_MAX_PAYLOAD	(SERVE_LAYOUT_FIXED + SERVE_MAPPING_SIZE * UFFD_SERVE_MAX_REGIONS)
#define SERVE_REASON_MAX	112
#define SERVE_ANSWER_SIZE	(16 + SERVE_REASON_MAX)
#define SERVE_EVENT_SIZE	32	/* version 1 */
#define SERVE_EVENT2_SIZE	40	/* version 2: + mm, seq */
#define SERVE_PROTO_MIN		1	/* the oldest version the server speaks */
#define SERVE_COUNTS_SIZE	64
#define SERVE_HELLO_SIZE	16
/* Firecracker's JSON: a few regions of ~110 bytes each; far more than any
 * VM sends, far less than a memory problem. */
#define SERVE_FC_MAX_JSON	65536
/* Only base pages are served (hugetlbfs regions are refused). */
#define SERVE_PAGE		4096u
/* Above any user-space address (57-bit with 5-level paging). */
#define SERVE_ADDR_LIMIT	(1ULL << 57)

enum serve_frame_type {
	SF_HELLO = 1,
	SF_LAYOUT,
	SF_MAP,
	SF_ANSWER,
	SF_EVENT,
	SF_DONE,
	SF_STATS_REQ,
	SF_STATS,
	SF_BYE,
	SF_TYPE_END,
};

/* LAYOUT flags: what the server does. */
#define SERVE_LAYOUT_RAW	(1u << 0)	/* a raw memory file, not an image */
#define SERVE_LAYOUT_PREFETCH	(1u << 1)
#define SERVE_LAYOUT_RECORD	(1u << 2)
#define SERVE_LAYOUT_DEMAND	(1u << 3)	/* no background fill */
#define SERVE_LAYOUT_SHARED	(1u << 4)	/* version 2: a shared page cache,
						   its fd (read-only) attached */

/* MAP flags (version 2). */
#define SERVE_MAP_SHARED	(1u << 0)	/* the regions are MAP_PRIVATE
						   mappings of the cache, at their
						   offsets, registered for MISSING
						   and MINOR faults */

/* EVENT types (the memory map changed). */
#define SERVE_EV_REMAP		1
#define SERVE_EV_REMOVE		2
#define SERVE_EV_UNMAP		3
#define SERVE_EV_FORK		4	/* version 2: mm is the child, a its
					   parent; the child's fd attached */
#define SERVE_EV_DONE		5	/* version 2: child mm is complete:
					   its fd is of no more use */

/* Where the client mapped which bytes of the source. */
struct serve_mapping {
	uint64_t addr, len, offset;
	uint32_t page_size;
};

struct serve_frame {
	uint16_t type;
	uint32_t len;
	const uint8_t *payload;
};

/*
 * A complete, valid frame at buf: its size (header and payload), with *f
 * describing it; 0 if more bytes are needed to tell; -EBADMSG (not a frame,
 * or its CRC is wrong), -EPROTO (another frame layout version, an unknown
 * type), -EMSGSIZE (a payload longer than SERVE_MAX_PAYLOAD).
 */
int uffd__serve_frame_parse(const uint8_t *buf, size_t len, struct serve_frame *f);
/* Write a frame (SERVE_HDR + len bytes) to out; returns its size. */
size_t uffd__serve_frame_put(uint8_t *out, uint16_t type, const void *payload, uint32_t len);

struct serve_hello {
	uint32_t min_version, max_version, page_size;
};
void uffd__serve_hello_put(uint8_t *out, const struct serve_hello *h);
/* 0, or -EBADMSG (wrong type or size). */
int uffd__serve_hello_get(const struct serve_frame *f, struct serve_hello *h);

struct serve_layout {
	uint32_t version, flags;
	uint32_t nextents;
	uint64_t source_size, source_id;
	char path[SERVE_PATH_MAX];		/* NUL-terminated */
};
size_t uffd__serve_layout_size(uint32_t nextents);
void uffd__serve_layout_put(uint8_t *out, const struct serve_layout *l,
			    const struct serve_mapping *ext);
/* 0, -EBADMSG (size, an unterminated path, more than max extents). */
int uffd__serve_layout_get(const struct serve_frame *f, struct serve_layout *l,
			   struct serve_mapping *ext, int max);

size_t uffd__serve_map_size(uint32_t n);
void uffd__serve_map_put(uint8_t *out, const struct serve_mapping *m, uint32_t n,
			 uint32_t flags);
/* The mappings of a MAP frame into m (at most max), its SERVE_MAP_* flags
 * into *flags: their number, or -EBADMSG (size, an unknown flag), -E2BIG
 * (none, or more than max). */
int uffd__serve_map_get(const struct serve_frame *f, struct serve_mapping *m, int max,
			uint32_t *flags);

struct serve_answer {
	int32_t status;				/* 0 or -errno */
	uint64_t features;			/* of the userfaultfd, as seen */
	char reason[SERVE_REASON_MAX];		/* NUL-terminated */
};
void uffd__serve_answer_put(uint8_t *out, const struct serve_answer *a);
int uffd__serve_answer_get(const struct serve_frame *f, struct serve_answer *a);

struct serve_event {
	uint32_t type;				/* SERVE_EV_* */
	uint32_t mm;				/* 0 the client's own address space,
						   n a forked child's */
	uint64_t a, b, c;			/* REMAP from, to, len; REMOVE and
						   UNMAP start, end; FORK parent */
	uint64_t seq;				/* version 2: 1, 2, ... (0 in 1) */
};
/* The payload of a version 1 (SERVE_EVENT_SIZE: no mm, seq, FORK) or 2
 * (SERVE_EVENT2_SIZE) EVENT frame; returns its size. */
size_t uffd__serve_event_put(uint8_t *out, const struct serve_event *e, uint32_t version);
/* 0, or -EBADMSG (wrong type or size, an unknown event, an mm in a
 * version 1 frame, a FORK of address space 0 or of itself, a DONE of
 * address space 0). */
int uffd__serve_event_get(const struct serve_frame *f, struct serve_event *e);

/* DONE and STATS: what the server did for this client. */
struct serve_counts {
	uint64_t faults, prefetched, filled, zero, errors;
};
void uffd__serve_counts_put(uint8_t *out, const struct serve_counts *c);
int uffd__serve_counts_get(const struct serve_frame *f, struct serve_counts *c);

/*
 * Firecracker's handshake: a JSON array of objects with the unsigned
 * integer members base_host_virt_addr, size, offset, and page_size and/or
 * page_size_kib (both are in bytes, Firecracker's note says; both present
 * must agree).  Strict: no leading zeros, signs, fractions or exponents in
 * those, each at most 2^64 - 1; a member named twice is refused; members
 * this parser does not know are skipped if their value is a string, a
 * number, true, false or null, refused if it is an object or array.
 * Whitespace is allowed between tokens and after the array, nothing else.
 *
 * Returns the number of regions (into out, at most max) once buf holds the
 * whole array, 0 if it is a valid beginning that needs more bytes, or
 * -EBADMSG (malformed: *where is the offset, why says what), -E2BIG (more
 * than max regions, or no complete array within SERVE_FC_MAX_JSON bytes).
 */
int uffd__serve_fc_parse(const char *buf, size_t len, struct serve_mapping *out, int max,
			 size_t *where, char *why, size_t whylen);

/*
 * The checks every client's regions pass before anything is served, on
 * both handshakes: at least one, each of SERVE_PAGE-byte pages, non-empty,
 * address, length and offset page-aligned, inside the address space and
 * the source (offset + len <= source_size, no overflow), no two
 * overlapping.  m is sorted by address in place.  0, or -EINVAL (bad),
 * -EOPNOTSUPP (another page size), -ERANGE (beyond the source or the
 * address space), with a one-line reason in why.
 */
int uffd__serve_check_mappings(struct serve_mapping *m, int n, uint64_t source_size,
			       char *why, size_t whylen);

/*
 * The features a userfaultfd negotiated, from the text of its
 * /proc/self/fdinfo/N: the middle field of the "API:\t<api>:<features>:
 * <ioctls>" line (hex).  0, or -ENOENT (no such line: not a userfaultfd),
 * -EBADMSG (a malformed one).
 */
int uffd__serve_fdinfo_features(const char *text, size_t len, uint64_t *features);

/*
 * Whether [addr, addr + size) lies wholly in the mappings listed by the
 * text of a /proc/PID/maps (lines "start-end perms ...", ascending): 1 yes,
 * 0 no, -EBADMSG for a line that does not start with two hex addresses.
 */
int uffd__serve_maps_cover(const char *text, size_t len, uint64_t addr, uint64_t size);

#endif
