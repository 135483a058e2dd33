/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The page server's wire formats (see proto.h).  Each decoder checks the
 * size it is given before it reads a byte, and the JSON parser never reads
 * past len: it reports "need more" when it reaches the end of what it was
 * given, so the server can call it again on a longer prefix until the
 * array closes, the bytes go wrong, or the length bound is reached.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "util/crc32c.h"
#include "util/le.h"

/* ---- frames ------------------------------------------------------------ */

static uint32_t frame_crc(const uint8_t *hdr, const uint8_t *payload, uint32_t len)
{
	return crc32c(crc32c(0, hdr, 12), payload, len);
}

int uffd__serve_frame_parse(const uint8_t *buf, size_t len, struct serve_frame *f)
{
	uint32_t plen, type, version;

	/* A wrong magic is wrong from its first byte: say so early. */
	if (memcmp(buf, SERVE_MAGIC, len < 4 ? len : 4))
		return -EBADMSG;
	if (len < SERVE_HDR)
		return 0;
	type = get_le16(buf + 4);
	version = get_le16(buf + 6);
	plen = get_le32(buf + 8);
	if (version != SERVE_FRAME_VERSION)
		return -EPROTO;
	if (plen > SERVE_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (len - SERVE_HDR < plen)
		return 0;
	if (frame_crc(buf, buf + SERVE_HDR, plen) != get_le32(buf + 12))
		return -EBADMSG;
	if (type == 0 || type >= SF_TYPE_END)
		return -EPROTO;
	f->type = type;
	f->len = plen;
	f->payload = buf + SERVE_HDR;
	return SERVE_HDR + plen;
}

size_t uffd__serve_frame_put(uint8_t *out, uint16_t type, const void *payload, uint32_t len)
{
	memcpy(out, SERVE_MAGIC, 4);
	put_le16(out + 4, type);
	put_le16(out + 6, SERVE_FRAME_VERSION);
	put_le32(out + 8, len);
	if (len && out + SERVE_HDR != payload)
		memmove(out + SERVE_HDR, payload, len);
	put_le32(out + 12, frame_crc(out, out + SERVE_HDR, len));
	return SERVE_HDR + len;
}

void uffd__serve_hello_put(uint8_t *out, const struct serve_hello *h)
{
	put_le32(out, h->min_version);
	put_le32(out + 4, h->max_version);
	put_le32(out + 8, h->page_size);
	put_le32(out + 12, 0);
}

int uffd__serve_hello_get(const struct serve_frame *f, struct serve_hello *h)
{
	if (f->type != SF_HELLO || f->len != SERVE_HELLO_SIZE)
		return -EBADMSG;
	h->min_version = get_le32(f->payload);
	h->max_version = get_le32(f->payload + 4);
	h->page_size = get_le32(f->payload + 8);
	return 0;
}

static void mapping_put(uint8_t *p, const struct serve_mapping *m)
{
	put_le64(p, m->addr);
	put_le64(p + 8, m->len);
	put_le64(p + 16, m->offset);
	put_le32(p + 24, m->page_size);
	put_le32(p + 28, 0);
}

static void mapping_get(const uint8_t *p, struct serve_mapping *m)
{
	m->addr = get_le64(p);
	m->len = get_le64(p + 8);
	m->offset = get_le64(p + 16);
	m->page_size = get_le32(p + 24);
}

size_t uffd__serve_layout_size(uint32_t nextents)
{
	return SERVE_LAYOUT_FIXED + (size_t)nextents * SERVE_MAPPING_SIZE;
}

void uffd__serve_layout_put(uint8_t *out, const struct serve_layout *l,
			    const struct serve_mapping *ext)
{
	uint32_t i;

	put_le32(out, l->version);
	put_le32(out + 4, l->flags);
	put_le32(out + 8, l->nextents);
	put_le32(out + 12, 0);
	put_le64(out + 16, l->source_size);
	put_le64(out + 24, l->source_id);
	memset(out + 32, 0, SERVE_PATH_MAX);
	memcpy(out + 32, l->path, strnlen(l->path, SERVE_PATH_MAX - 1));
	for (i = 0; i < l->nextents; i++)
		mapping_put(out + SERVE_LAYOUT_FIXED + i * SERVE_MAPPING_SIZE, &ext[i]);
}

int uffd__serve_layout_get(const struct serve_frame *f, struct serve_layout *l,
			   struct serve_mapping *ext, int max)
{
	uint32_t i;

	if (f->type != SF_LAYOUT || f->len < SERVE_LAYOUT_FIXED)
		return -EBADMSG;
	l->version = get_le32(f->payload);
	l->flags = get_le32(f->payload + 4);
	l->nextents = get_le32(f->payload + 8);
	l->source_size = get_le64(f->payload + 16);
	l->source_id = get_le64(f->payload + 24);
	if (l->nextents == 0 || l->nextents > (uint32_t)max ||
	    f->len != uffd__serve_layout_size(l->nextents))
		return -EBADMSG;
	if (!memchr(f->payload + 32, 0, SERVE_PATH_MAX))
		return -EBADMSG;
	memcpy(l->path, f->payload + 32, SERVE_PATH_MAX);
	for (i = 0; i < l->nextents; i++)
		mapping_get(f->payload + SERVE_LAYOUT_FIXED + i * SERVE_MAPPING_SIZE, &ext[i]);
	return 0;
}

size_t uffd__serve_map_size(uint32_t n)
{
	return 8 + (size_t)n * SERVE_MAPPING_SIZE;
}

void uffd__serve_map_put(uint8_t *out, const struct serve_mapping *m, uint32_t n,
			 uint32_t flags)
{
	uint32_t i;

	put_le32(out, n);
	put_le32(out + 4, flags);
	for (i = 0; i < n; i++)
		mapping_put(out + 8 + i * SERVE_MAPPING_SIZE, &m[i]);
}

int uffd__serve_map_get(const struct serve_frame *f, struct serve_mapping *m, int max,
			uint32_t *flags)
{
	uint32_t i, n;

	if (f->type != SF_MAP || f->len < 8)
		return -EBADMSG;
	n = get_le32(f->payload);
	*flags = get_le32(f->payload + 4);
	if (*flags & ~SERVE_MAP_SHARED)
		return -EBADMSG;
	if (n == 0 || n > (uint32_t)max)
		return -E2BIG;
	if (f->len != uffd__serve_map_size(n))
		return -EBADMSG;
	for (i = 0; i < n; i++)
		mapping_get(f->payload + 8 + i * SERVE_MAPPING_SIZE, &m[i]);
	return n;
}

void uffd__serve_answer_put(uint8_t *out, const struct serve_answer *a)
{
	put_le32(out, (uint32_t)a->status);
	put_le32(out + 4, 0);
	put_le64(out + 8, a->features);
	memset(out + 16, 0, SERVE_REASON_MAX);
	memcpy(out + 16, a->reason, strnlen(a->reason, SERVE_REASON_MAX - 1));
}

int uffd__serve_answer_get(const struct serve_frame *f, struct serve_answer *a)
{
	if (f->type != SF_ANSWER || f->len != SERVE_ANSWER_SIZE)
		return -EBADMSG;
	a->status = (int32_t)get_le32(f->payload);
	/* 0, or an errno a C library knows: never a positive count. */
	if (a->status > 0 || a->status < -4095)
		return -EBADMSG;
	a->features = get_le64(f->payload + 8);
	memcpy(a->reason, f->payload + 16, SERVE_REASON_MAX);
	a->reason[SERVE_REASON_MAX - 1] = 0;
	return 0;
}

size_t uffd__serve_event_put(uint8_t *out, const struct serve_event *e, uint32_t version)
{
	put_le32(out, e->type);
	put_le32(out + 4, version >= 2 ? e->mm : 0);
	put_le64(out + 8, e->a);
	put_le64(out + 16, e->b);
	put_le64(out + 24, e->c);
	if (version < 2)
		return SERVE_EVENT_SIZE;
	put_le64(out + 32, e->seq);
	return SERVE_EVENT2_SIZE;
}

int uffd__serve_event_get(const struct serve_frame *f, struct serve_event *e)
{
	if (f->type != SF_EVENT || (f->len != SERVE_EVENT_SIZE && f->len != SERVE_EVENT2_SIZE))
		return -EBADMSG;
	e->type = get_le32(f->payload);
	e->mm = get_le32(f->payload + 4);
	e->a = get_le64(f->payload + 8);
	e->b = get_le64(f->payload + 16);
	e->c = get_le64(f->payload + 24);
	e->seq = f->len == SERVE_EVENT2_SIZE ? get_le64(f->payload + 32) : 0;
	if (e->type < SERVE_EV_REMAP || e->type > SERVE_EV_DONE)
		return -EBADMSG;
	/* Version 1 knows only the client's own address space. */
	if (f->len == SERVE_EVENT_SIZE && (e->mm || e->type >= SERVE_EV_FORK))
		return -EBADMSG;
	/* The root's end is the DONE frame. */
	if (e->type == SERVE_EV_DONE && !e->mm)
		return -EBADMSG;
	/* A child is born of another address space, never the first. */
	if (e->type == SERVE_EV_FORK && (!e->mm || e->a == e->mm || e->a > UINT32_MAX))
		return -EBADMSG;
	return 0;
}

void uffd__serve_counts_put(uint8_t *out, const struct serve_counts *c)
{
	memset(out, 0, SERVE_COUNTS_SIZE);
	put_le64(out, c->faults);
	put_le64(out + 8, c->prefetched);
	put_le64(out + 16, c->filled);
	put_le64(out + 24, c->zero);
	put_le64(out + 32, c->errors);
}

int uffd__serve_counts_get(const struct serve_frame *f, struct serve_counts *c)
{
	if ((f->type != SF_DONE && f->type != SF_STATS) || f->len != SERVE_COUNTS_SIZE)
		return -EBADMSG;
	c->faults = get_le64(f->payload);
	c->prefetched = get_le64(f->payload + 8);
	c->filled = get_le64(f->payload + 16);
	c->zero = get_le64(f->payload + 24);
	c->errors = get_le64(f->payload + 32);
	return 0;
}

/* ---- Firecracker's JSON ----------------------------------------------- */

enum { J_OK = 1, J_MORE = 0, J_BAD = -1 };

struct json {
	const char *buf, *p, *end;
	char *why;
	size_t whylen;
	const char *bad_at;
};

static int json_bad(struct json *j, const char *at, const char *fmt, ...)
{
	va_list ap;

	if (!j->bad_at) {
		j->bad_at = at;
		if (j->why && j->whylen) {
			va_start(ap, fmt);
			vsnprintf(j->why, j->whylen, fmt, ap);
			va_end(ap);
		}
	}
	return J_BAD;
}

static void json_ws(struct json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

/* The next byte after whitespace must be c. */
static int json_expect(struct json *j, char c, const char *what)
{
	json_ws(j);
	if (j->p == j->end)
		return J_MORE;
	if (*j->p != c)
		return json_bad(j, j->p, "expected %s", what);
	j->p++;
	return J_OK;
}

/*
 * A string: its characters (escapes decoded only to be skipped) into key
 * (truncated to keylen - 1, *long_key set if it did not fit).
 */
static int json_string(struct json *j, char *key, size_t keylen, bool *long_key)
{
	size_t n = 0;

	*long_key = false;
	if (j->p == j->end)
		return J_MORE;
	if (*j->p != '"')
		return json_bad(j, j->p, "expected a string");
	j->p++;
	for (;;) {
		unsigned char c;

		if (j->p == j->end)
			return J_MORE;
		c = *j->p;
		if (c == '"') {
			j->p++;
			break;
		}
		if (c < 0x20)
			return json_bad(j, j->p, "control character in a string");
		if (c == '\\') {
			int k;

			if (j->p + 1 >= j->end)
				return J_MORE;
			c = j->p[1];
			if (c == 'u') {
				for (k = 2; k < 6; k++) {
					if (j->p + k >= j->end)
						return J_MORE;
					if (!j->p[k] || !strchr("0123456789abcdefABCDEF", j->p[k]))
						return json_bad(j, j->p + k, "bad \\u escape");
				}
				j->p += 6;
			} else if (c && strchr("\"\\/bfnrt", c)) {
				j->p += 2;
			} else {
				return json_bad(j, j->p, "bad escape");
			}
			c = '?';	/* a key with an escape is no key we know */
		} else {
			j->p++;
		}
		if (n + 1 < keylen)
			key[n++] = c;
		else
			*long_key = true;
	}
	key[n] = 0;
	return J_OK;
}

/* An unsigned decimal integer, strictly. */
static int json_uint(struct json *j, uint64_t *v)
{
	const char *start = j->p;

	*v = 0;
	if (j->p == j->end)
		return J_MORE;
	if (*j->p < '0' || *j->p > '9')
		return json_bad(j, j->p, "expected an unsigned integer");
	if (*j->p == '0' && j->p + 1 < j->end && j->p[1] >= '0' && j->p[1] <= '9')
		return json_bad(j, j->p, "leading zero");
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
		unsigned d = *j->p - '0';

		if (*v > (UINT64_MAX - d) / 10)
			return json_bad(j, start, "integer above 2^64 - 1");
		*v = *v * 10 + d;
		j->p++;
	}
	if (j->p == j->end)
		return J_MORE;	/* more digits may follow */
	if (*j->p == '.' || *j->p == 'e' || *j->p == 'E')
		return json_bad(j, j->p, "not an integer");
	return J_OK;
}

/* A scalar value of a member we do not know: checked and skipped. */
static int json_skip_scalar(struct json *j)
{
	static const char *const words[] = { "true", "false", "null" };
	char scratch[2];
	bool long_key;
	size_t i, k;

	if (j->p == j->end)
		return J_MORE;
	if (*j->p == '"')
		return json_string(j, scratch, sizeof(scratch), &long_key);
	if (*j->p == '{' || *j->p == '[')
		return json_bad(j, j->p, "nested value in a member this server does not know");
	for (i = 0; i < 3; i++) {
		if (*j->p != words[i][0])
			continue;
		for (k = 0; words[i][k]; k++) {
			if (j->p + k >= j->end)
				return J_MORE;
			if (j->p[k] != words[i][k])
				return json_bad(j, j->p, "bad literal");
		}
		j->p += k;
		return J_OK;
	}
	/* A number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
	{
		const char *p = j->p;
		int digits;

		if (*p == '-' && ++p == j->end)
			return J_MORE;
		if (*p == '0') {
			p++;
		} else if (*p >= '1' && *p <= '9') {
			while (p < j->end && *p >= '0' && *p <= '9')
				p++;
		} else {
			return json_bad(j, p, "expected a value");
		}
		if (p < j->end && *p == '.') {
			for (p++, digits = 0; p < j->end && *p >= '0' && *p <= '9'; p++)
				digits++;
			if (p < j->end && !digits)
				return json_bad(j, p, "bad number");
		}
		if (p < j->end && (*p == 'e' || *p == 'E')) {
			p++;
			if (p < j->end && (*p == '+' || *p == '-'))
				p++;
			for (digits = 0; p < j->end && *p >= '0' && *p <= '9'; p++)
				digits++;
			if (p < j->end && !digits)
				return json_bad(j, p, "bad number");
		}
		if (p == j->end)
			return J_MORE;
		j->p = p;
		return J_OK;
	}
}

enum { F_ADDR, F_SIZE, F_OFFSET, F_PAGE_SIZE, F_PAGE_SIZE_KIB, F_COUNT };
static const char *const field_names[F_COUNT] = {
	"base_host_virt_addr", "size", "offset", "page_size", "page_size_kib",
};

/* One region object. */
static int json_region(struct json *j, struct serve_mapping *m, int index)
{
	uint64_t v[F_COUNT] = { 0 };
	bool seen[F_COUNT] = { false };
	int ret, f;

	ret = json_expect(j, '{', "'{' (a region object)");
	if (ret != J_OK)
		return ret;
	json_ws(j);
	if (j->p == j->end)
		return J_MORE;
	if (*j->p == '}')
		return json_bad(j, j->p, "region %d: empty object", index);
	for (;;) {
		const char *key_at;
		char key[32];
		bool long_key;

		json_ws(j);
		key_at = j->p;
		ret = json_string(j, key, sizeof(key), &long_key);
		if (ret != J_OK)
			return ret;
		ret = json_expect(j, ':', "':'");
		if (ret != J_OK)
			return ret;
		json_ws(j);
		for (f = 0; f < F_COUNT && (long_key || strcmp(key, field_names[f])); f++)
			;
		if (f < F_COUNT) {
			if (seen[f])
				return json_bad(j, key_at, "region %d: %s named twice", index,
						field_names[f]);
			seen[f] = true;
			ret = json_uint(j, &v[f]);
		} else {
			ret = json_skip_scalar(j);
		}
		if (ret != J_OK)
			return ret;
		json_ws(j);
		if (j->p == j->end)
			return J_MORE;
		if (*j->p == '}') {
			j->p++;
			break;
		}
		if (*j->p != ',')
			return json_bad(j, j->p, "expected ',' or '}'");
		j->p++;
	}
	for (f = F_ADDR; f <= F_OFFSET; f++)
		if (!seen[f])
			return json_bad(j, j->p - 1, "region %d: no %s", index, field_names[f]);
	if (!seen[F_PAGE_SIZE] && !seen[F_PAGE_SIZE_KIB])
		return json_bad(j, j->p - 1, "region %d: no page_size", index);
	if (seen[F_PAGE_SIZE] && seen[F_PAGE_SIZE_KIB] && v[F_PAGE_SIZE] != v[F_PAGE_SIZE_KIB])
		return json_bad(j, j->p - 1, "region %d: page_size %llu and page_size_kib %llu differ",
				index, (unsigned long long)v[F_PAGE_SIZE],
				(unsigned long long)v[F_PAGE_SIZE_KIB]);
	m->addr = v[F_ADDR];
	m->len = v[F_SIZE];
	m->offset = v[F_OFFSET];
	v[F_PAGE_SIZE] = seen[F_PAGE_SIZE] ? v[F_PAGE_SIZE] : v[F_PAGE_SIZE_KIB];
	/* Bigger than any page: keep the value checkable, never truncated. */
	m->page_size = v[F_PAGE_SIZE] > UINT32_MAX ? UINT32_MAX : (uint32_t)v[F_PAGE_SIZE];
	return J_OK;
}

int uffd__serve_fc_parse(const char *buf, size_t len, struct serve_mapping *out, int max,
			 size_t *where, char *why, size_t whylen)
{
	struct json j = { .buf = buf, .p = buf, .why = why, .whylen = whylen };
	int n = 0, ret;
	bool truncated = len > SERVE_FC_MAX_JSON;

	if (why && whylen)
		why[0] = 0;
	*where = 0;
	j.end = buf + (truncated ? SERVE_FC_MAX_JSON : len);
	ret = json_expect(&j, '[', "'[' (Firecracker's JSON array)");
	if (ret != J_OK)
		goto out;
	json_ws(&j);
	if (j.p == j.end) {
		ret = J_MORE;
		goto out;
	}
	if (*j.p == ']') {
		ret = json_bad(&j, j.p, "no regions");
		goto out;
	}
	for (;;) {
		struct serve_mapping m;

		ret = json_region(&j, &m, n);
		if (ret != J_OK)
			goto out;
		if (n == max) {
			*where = j.p - buf;
			if (why && whylen)
				snprintf(why, whylen, "more than %d regions", max);
			return -E2BIG;
		}
		out[n++] = m;
		json_ws(&j);
		if (j.p == j.end) {
			ret = J_MORE;
			goto out;
		}
		if (*j.p == ']') {
			j.p++;
			break;
		}
		if (*j.p != ',') {
			ret = json_bad(&j, j.p, "expected ',' or ']'");
			goto out;
		}
		j.p++;
	}
	json_ws(&j);
	if (j.p != j.end) {
		ret = json_bad(&j, j.p, "bytes after the array");
		goto out;
	}
	if (truncated) {
		ret = json_bad(&j, j.p, "bytes after the array");
		goto out;
	}
	*where = j.p - buf;
	return n;
out:
	if (ret == J_BAD) {
		*where = j.bad_at - buf;
		return -EBADMSG;
	}
	*where = j.p - buf;
	if (truncated) {
		if (why && whylen)
			snprintf(why, whylen, "no complete array in %d bytes", SERVE_FC_MAX_JSON);
		return -E2BIG;
	}
	return 0;
}

/* ---- checks -------------------------------------------------------------- */

static int cmp_addr(const void *a, const void *b)
{
	const struct serve_mapping *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static int refuse(char *why, size_t whylen, int err, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return err;
}

int uffd__serve_check_mappings(struct serve_mapping *m, int n, uint64_t source_size,
			       char *why, size_t whylen)
{
	int i;

	if (n < 1 || n > UFFD_SERVE_MAX_REGIONS)
		return refuse(why, whylen, -EINVAL, "%d regions (1 to %d)", n, UFFD_SERVE_MAX_REGIONS);
	for (i = 0; i < n; i++) {
		const struct serve_mapping *r = &m[i];

		if (r->page_size != SERVE_PAGE)
			return refuse(why, whylen, -EOPNOTSUPP,
				      "region %d: page size %u (only %u is served)", i,
				      r->page_size, SERVE_PAGE);
		if (!r->len)
			return refuse(why, whylen, -EINVAL, "region %d: empty", i);
		if ((r->addr | r->len | r->offset) & (SERVE_PAGE - 1))
			return refuse(why, whylen, -EINVAL,
				      "region %d: address 0x%llx, length %llu or offset %llu "
				      "not page-aligned", i, (unsigned long long)r->addr,
				      (unsigned long long)r->len, (unsigned long long)r->offset);
		if (r->addr + r->len < r->addr || r->addr + r->len > SERVE_ADDR_LIMIT)
			return refuse(why, whylen, -ERANGE,
				      "region %d: 0x%llx + %llu is beyond the address space", i,
				      (unsigned long long)r->addr, (unsigned long long)r->len);
		if (r->offset + r->len < r->offset || r->offset + r->len > source_size)
			return refuse(why, whylen, -ERANGE,
				      "region %d: bytes %llu + %llu are beyond the source (%llu)",
				      i, (unsigned long long)r->offset, (unsigned long long)r->len,
				      (unsigned long long)source_size);
	}
	qsort(m, n, sizeof(*m), cmp_addr);
	for (i = 1; i < n; i++)
		if (m[i - 1].addr + m[i - 1].len > m[i].addr)
			return refuse(why, whylen, -EINVAL,
				      "regions at 0x%llx and 0x%llx overlap",
				      (unsigned long long)m[i - 1].addr,
				      (unsigned long long)m[i].addr);
	return 0;
}

/* ---- fdinfo ----------------------------------------------------------------- */

int uffd__serve_fdinfo_features(const char *text, size_t len, uint64_t *features)
{
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *eol = memchr(p, '\n', end - p);
		const char *q;
		uint64_t v = 0;
		int digits = 0;

		if (!eol)
			eol = end;
		if (eol - p > 5 && !memcmp(p, "API:\t", 5)) {
			q = memchr(p + 5, ':', eol - (p + 5));
			if (!q)
				return -EBADMSG;
			for (q++; q < eol && *q != ':'; q++) {
				int d = *q >= '0' && *q <= '9' ? *q - '0' :
					*q >= 'a' && *q <= 'f' ? *q - 'a' + 10 :
					*q >= 'A' && *q <= 'F' ? *q - 'A' + 10 : -1;

				if (d < 0 || ++digits > 16)
					return -EBADMSG;
				v = v << 4 | d;
			}
			if (!digits || q == eol)
				return -EBADMSG;
			*features = v;
			return 0;
		}
		p = eol + 1;
	}
	return -ENOENT;
}

/* ---- /proc/PID/maps ------------------------------------------------------- */

static int parse_hex(const char **p, const char *end, uint64_t *v)
{
	int digits = 0;

	*v = 0;
	while (*p < end) {
		char c = **p;
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

		if (d < 0)
			break;
		if (++digits > 16)
			return -EBADMSG;
		*v = *v << 4 | d;
		(*p)++;
	}
	return digits ? 0 : -EBADMSG;
}

int uffd__serve_maps_cover(const char *text, size_t len, uint64_t addr, uint64_t size)
{
	const char *p = text, *end = text + len;
	uint64_t need = addr, last = addr + size;

	if (last < addr)
		return 0;
	while (p < end && need < last) {
		const char *eol = memchr(p, '\n', end - p);
		uint64_t lo, hi;

		if (!eol)
			eol = end;
		if (eol == p) {
			p++;
			continue;
		}
		if (parse_hex(&p, eol, &lo) || p == eol || *p++ != '-' || parse_hex(&p, eol, &hi) ||
		    hi < lo)
			return -EBADMSG;
		if (lo > need)
			return 0;	/* ascending: a gap before the rest */
		if (hi > need)
			need = hi;
		p = eol + 1;
	}
	return need >= last;
}
