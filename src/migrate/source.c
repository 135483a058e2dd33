/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The source of a migration: precopy rounds while the program runs, the
 * switchover in a pause, then urgent answers and a background stream.
 *
 * Two threads.  The stream thread does the handshake, the rounds, the
 * pause and the background stream; the urgent thread, started just before
 * the switchover message leaves, answers page requests on the urgent
 * connection and does nothing else, so an answer never waits behind the
 * stream (and with one_channel the stream thread answers requests between
 * two batches, behind whatever is queued in the socket - QEMU's vanilla
 * shape, kept for comparison).
 *
 * One bitmap carries the precopy: `stale`, the pages whose current
 * contents the destination may lack.  Every page starts stale; sending a
 * page clears its bit before reading it, and the tracker's collect (which
 * re-arms the pages it reports in the same pass) sets the bits of the
 * pages written since, so a write racing a send makes the page stale again
 * and it is sent in the next round.  In precopy a page is copied to a
 * staging buffer and checksummed there, so the CRC always matches the
 * bytes sent even while the program writes; after the pause the memory
 * cannot change and pages go from memory to the socket without a copy.
 *
 * Before the pause a SYNC goes around the stream (see sync_stream()), so
 * that the switchover message never queues behind precopy pages.  The
 * pause then sends only `stale` (as the switchover's bitmap) and the blob.
 * In postcopy a copy of the bitmap is `todo`: the urgent thread and the
 * background loop take pages from it with an atomic test-and-clear, so a
 * page is streamed at most once, and the background loop jumps to the page
 * after the latest request (a program that faults at p is likely to touch
 * p+1 next).  While an urgent answer is being built the background loop
 * yields its CPU: with two vCPUs for both processes, the urgent path must
 * not wait for a 256 KiB send to finish.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uffd/track.h>

#include "mig.h"
#include "util/bitmap.h"
#include "util/clock.h"
#include "util/crc32c.h"
#include "util/opts.h"
#include "util/pagecopy.h"
#include "util/sock.h"
#include "util/stats.h"

/* Pages per background message: 256 KiB of 4 KiB pages. */
#define BG_BATCH		MIG_MAX_BATCH
/* How long the background loop gives way to an urgent answer. */
#define URGENT_YIELD_NS		(200 * 1000)

struct uffd_mig_source {
	struct uffd_mig_source_opts o;
	struct mig_region *r;
	struct mig_layout_region *lr;
	struct mig_layout lay;
	uint64_t npages;
	uint64_t session;

	struct uffd_tracker *t;
	uint64_t *trk;			/* a collect: bit per 4 KiB of the regions */
	size_t trk_bits;
	bool trk_is_pages;		/* all regions have 4 KiB pages */
	struct bitmap stale;
	struct bitmap todo;
	uint64_t todo_left;		/* atomic */
	size_t cursor;
	uint64_t hint;			/* atomic: 1 + page to stream next, 0 none */
	int urgent_busy;		/* atomic */

	struct mig_conn stream, urgent;
	int stop_efd;
	int stopping;			/* atomic */
	int switch_now;			/* atomic */
	pthread_t stream_thread, urgent_thread;
	bool stream_started, urgent_started;
	bool paused, switched, resuming;

	uint8_t *stage;			/* MIG_MAX_DATA */
	uint8_t *rx, *urx;		/* received messages, per thread */
	size_t rx_cap;
	uint8_t *blob;

	struct mig_status st;
	uint64_t c_round, c_sent, c_zero, c_dirty, c_switch_pages, c_requested;
	uint64_t c_background, c_out, c_in, c_resumes;
	uint64_t t0, t_pause, t_paused, t_resumed, t_end;
};

static uint64_t deadline(const struct uffd_mig_source *s)
{
	return uffd__deadline_ms(s->o.timeout_ms);
}

static bool stopping(const struct uffd_mig_source *s)
{
	return __atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE);
}

/* The region of global page g. */
static const struct mig_region *region_of(const struct uffd_mig_source *s, uint64_t g)
{
	int lo = 0, hi = s->lay.nregions - 1;

	while (lo < hi) {
		int mid = (lo + hi + 1) / 2;

		if (s->r[mid].first <= g)
			lo = mid;
		else
			hi = mid - 1;
	}
	return &s->r[lo];
}

/* ---- sending pages ------------------------------------------------------ */

/*
 * One PAGES message of the n global pages g[] (consecutive or not).
 * stage: copy each page to the staging buffer first (the program may be
 * writing it); else send from memory.  flags: MIG_PAGE_ANSWER or 0.
 */
static int send_pages(struct uffd_mig_source *s, struct mig_conn *c, const uint64_t *g, int n,
		      bool stage, uint32_t flags, uint8_t *stagebuf)
{
	uint8_t ent[MIG_MAX_BATCH * MIG_PAGE_ENTRY];
	struct iovec iov[2 + MIG_MAX_BATCH];
	uint8_t *sp = stagebuf;
	int i, niov = 2, zeros = 0, ret;

	iov[1].iov_base = ent;
	iov[1].iov_len = (size_t)n * MIG_PAGE_ENTRY;
	for (i = 0; i < n; i++) {
		const struct mig_region *r = region_of(s, g[i]);
		uint64_t page = g[i] - r->first;
		const uint8_t *src = (const uint8_t *)(uintptr_t)(r->addr + page * r->page_size);
		uint8_t *e = ent + (size_t)i * MIG_PAGE_ENTRY;
		uint32_t crc;
		bool zero;

		if (stage) {
			/* The program may be writing it: a torn copy is dirty,
			 * and sent again (see the top of the file). */
			copy_live_page(sp, src, r->page_size);
			src = sp;
		}
		crc = crc32c(0, src, r->page_size);
		zero = crc == mig_zero_crc(r->page_size) && mig_page_is_zero(src, r->page_size);
		put_le32(e, (uint32_t)(r - s->r));
		put_le32(e + 4, flags | (zero ? MIG_PAGE_ZERO : 0));
		put_le64(e + 8, page);
		put_le32(e + 16, zero ? 0 : crc);
		put_le32(e + 20, 0);
		if (zero) {
			zeros++;
			continue;
		}
		if (stage)
			sp += r->page_size;
		/* Consecutive pages are one iovec. */
		if (niov > 2 && (const uint8_t *)iov[niov - 1].iov_base + iov[niov - 1].iov_len == src) {
			iov[niov - 1].iov_len += r->page_size;
		} else {
			iov[niov].iov_base = (void *)src;
			iov[niov].iov_len = r->page_size;
			niov++;
		}
	}
	ret = mig_sendv(c, MIG_PAGES, n, iov, niov, deadline(s));
	if (!ret) {
		STAT_ADD(s, c_sent, n);
		STAT_ADD(s, c_zero, zeros);
	}
	return ret;
}

/* Up to max pages of bitmap b from *pos on, each taken (its bit cleared,
 * atomically when another thread takes pages too), fitting one message.
 * Returns how many; *pos moves past them. */
static int take_pages(struct uffd_mig_source *s, struct bitmap *b, size_t *pos, size_t end,
		      uint64_t *g, int max, bool atomic)
{
	uint64_t data = 0;
	size_t rs, re;
	int n = 0;

	while (n < max && bitmap_next_run(b, pos, end, &rs, &re)) {
		for (; rs < re && n < max; rs++) {
			uint32_t ps = region_of(s, rs)->page_size;
			uint64_t bit = 1ULL << (rs % 64), old;

			if (data + ps > MIG_MAX_DATA)
				break;
			if (atomic) {
				old = __atomic_fetch_and(&b->words[rs / 64], ~bit, __ATOMIC_ACQ_REL);
				if (!(old & bit))
					continue;	/* the urgent thread took it */
			} else {
				b->words[rs / 64] &= ~bit;
			}
			g[n++] = rs;
			data += ps;
		}
		*pos = rs;
		if (rs < re)
			break;		/* the message is full */
	}
	return n;
}

/* ---- incoming messages -------------------------------------------------- */

static void peer_error(struct uffd_mig_source *s, const struct mig_msg *m);

/* Shut both connections down: every thread of ours blocked on them returns. */
static void shut_links(struct uffd_mig_source *s)
{
	mig_conn_shutdown(&s->stream, SHUT_RDWR);
	if (!s->o.one_channel)
		mig_conn_shutdown(&s->urgent, SHUT_RDWR);
}

/*
 * The migration fails: the destination is told (best effort), the
 * connections end, and a program paused but not yet handed over runs on
 * here again.
 */
static void fail(struct uffd_mig_source *s, int err, const char *what)
{
	if (mig_set_error(&s->st, UFFD_MIG_FAILED, err, "%s: %s", what, strerror(-err)))
		mig_send_error(&s->stream, err, 0, s->st.message);
	shut_links(s);
	if (s->paused && !s->switched && s->o.resume) {
		s->o.resume(s->o.arg);
		s->paused = false;
	}
}

/*
 * A connection broke or a peer misbehaved.  Before the switchover the
 * migration fails; after it, it is broken and can be resumed: both
 * sockets are shut down so that both threads stop.
 */
/*
 * A peer that fails sends ERROR and then ends the connection, which the
 * stream thread may notice first, in a send: the reason is read if it is
 * there.  True if it was.
 */
static bool read_peer_error(struct uffd_mig_source *s)
{
	struct mig_msg m;
	int i;

	for (i = 0; i < 64 && mig_readable(mig_conn_fd(&s->stream)) > 0; i++) {
		if (mig_recv(&s->stream, &s->lay, s->rx, s->rx_cap, &m, NULL,
			     uffd__deadline_ms(100), -1))
			return false;
		if (m.h.type == MIG_ERROR) {
			peer_error(s, &m);
			return true;
		}
	}
	return false;
}

static void link_failed(struct uffd_mig_source *s, int err, const char *what)
{
	if (mig_link_error(err) && pthread_equal(pthread_self(), s->stream_thread) &&
	    read_peer_error(s))
		return;
	if (!__atomic_load_n(&s->switched, __ATOMIC_ACQUIRE) || !mig_link_error(err)) {
		fail(s, err, what);
		return;
	}
	if (mig_set_error(&s->st, UFFD_MIG_BROKEN, err, "%s: %s", what, strerror(-err)))
		shut_links(s);
}

/*
 * An ERROR from the destination ends the migration with its code.  If it
 * says the program was not started there, the program runs on here, even
 * after the switchover message left.
 */
static void peer_error(struct uffd_mig_source *s, const struct mig_msg *m)
{
	int err = m->error.code ? -(int)m->error.code : -EIO;
	bool started_there = m->error.flags & MIG_ERR_RESUMED || s->t_resumed;

	if (mig_set_error(&s->st, UFFD_MIG_FAILED, err, "destination: %.*s", (int)m->error.len,
			  m->error.text) && s->paused && !started_there && s->o.resume &&
	    pthread_equal(pthread_self(), s->stream_thread)) {
		s->o.resume(s->o.arg);
		s->paused = false;
		s->switched = false;
	}
	shut_links(s);
}

/* Answer a REQUEST on connection c. */
static int answer(struct uffd_mig_source *s, struct mig_conn *c, const struct mig_msg *m)
{
	uint64_t g[MIG_MAX_BATCH];
	int i, ret;

	__atomic_fetch_add(&s->urgent_busy, 1, __ATOMIC_ACQ_REL);
	for (i = 0; i < m->req.n; i++) {
		uint64_t page = s->lay.r[m->req.r[i].region].first + m->req.r[i].page, bit;

		g[i] = page;
		bit = 1ULL << (page % 64);
		if (s->todo.words &&
		    __atomic_fetch_and(&s->todo.words[page / 64], ~bit, __ATOMIC_ACQ_REL) & bit)
			__atomic_fetch_sub(&s->todo_left, 1, __ATOMIC_RELAXED);
	}
	/* Several pages of one request are sent in one message only if they
	 * fit (hugetlb pages may not). */
	for (i = 0, ret = 0; i < m->req.n && !ret; ) {
		uint64_t data = 0;
		int n = 0;

		while (i + n < m->req.n && n < MIG_MAX_BATCH &&
		       data + region_of(s, g[i + n])->page_size <= MIG_MAX_DATA)
			data += region_of(s, g[i + n++])->page_size;
		ret = send_pages(s, c, g + i, n, false, MIG_PAGE_ANSWER, NULL);
		i += n;
	}
	__atomic_store_n(&s->hint, g[m->req.n - 1] + 2, __ATOMIC_RELEASE);
	__atomic_fetch_sub(&s->urgent_busy, 1, __ATOMIC_ACQ_REL);
	if (!ret)
		STAT_ADD(s, c_requested, m->req.n);
	return ret;
}

/*
 * Handle what the destination sent on the stream.  want: the type being
 * waited for (returns 1 when it came), or 0.  Requests (one channel) are
 * answered here.  0, 1, or -errno (already reported).
 */
static int stream_message(struct uffd_mig_source *s, enum mig_type want, uint64_t dl)
{
	struct mig_msg m;
	int ret = mig_recv(&s->stream, &s->lay, s->rx, s->rx_cap, &m, NULL, dl, s->stop_efd);

	if (ret == -EINTR && stopping(s))
		return ret;
	if (ret) {
		link_failed(s, ret, "stream");
		return ret;
	}
	switch (m.h.type) {
	case MIG_REQUEST:
		if (!s->o.one_channel || !s->switched)
			break;
		ret = answer(s, &s->stream, &m);
		if (ret)
			link_failed(s, ret, "stream: sending an answer");
		return ret;
	case MIG_ERROR:
		peer_error(s, &m);
		return -EIO;
	case MIG_SYNC:
		return 0;	/* the answer to a sync that timed out */
	default:
		if (m.h.type == want)
			return 1;
		break;
	}
	link_failed(s, -EPROTO, "stream: an unexpected message");
	return -EPROTO;
}

/* Handle whatever is waiting on the stream without blocking. */
static int poll_stream(struct uffd_mig_source *s)
{
	int ret;

	while ((ret = mig_readable(mig_conn_fd(&s->stream))) > 0) {
		ret = stream_message(s, 0, deadline(s));
		if (ret)
			return ret < 0 ? ret : 0;
	}
	if (ret < 0)
		link_failed(s, ret, "stream");
	return ret;
}

/* ---- handshake ---------------------------------------------------------- */

static int handshake(struct uffd_mig_source *s, struct mig_conn *c, uint32_t channel,
		     bool resume, uint32_t *welcome_flags)
{
	size_t len = MIG_HELLO_BASE + 16ull * s->lay.nregions;
	uint8_t *p = calloc(1, len);
	struct mig_msg m;
	int i, ret;

	if (!p)
		return -ENOMEM;
	put_le32(p, MIG_VERSION);
	put_le32(p + 4, MIG_VERSION);
	put_le32(p + 8, channel);
	put_le32(p + 12, (s->o.one_channel ? MIG_HELLO_ONE_CHANNEL : 0) |
			  (resume ? MIG_HELLO_RESUME : 0));
	put_le32(p + 16, s->o.mode);
	put_le32(p + 20, s->lay.nregions);
	put_le64(p + 24, s->session);
	for (i = 0; i < s->lay.nregions; i++) {
		put_le64(p + MIG_HELLO_BASE + 16 * i, s->r[i].len);
		put_le32(p + MIG_HELLO_BASE + 16 * i + 8, s->r[i].page_size);
	}
	ret = mig_send(c, MIG_HELLO, 0, p, len, deadline(s));
	free(p);
	if (ret)
		return ret;
	ret = mig_recv(c, &s->lay, s->rx, s->rx_cap, &m, NULL, deadline(s), s->stop_efd);
	if (ret)
		return ret;
	if (m.h.type == MIG_ERROR) {
		peer_error(s, &m);
		return -EIO;
	}
	if (m.h.type != MIG_WELCOME)
		return -EPROTO;
	if (m.welcome.status)
		return -(int)m.welcome.status;
	if (m.welcome.version != MIG_VERSION || m.welcome.session != s->session)
		return -EPROTO;
	if (welcome_flags)
		*welcome_flags = m.welcome.flags;
	return 0;
}

/* ---- precopy ------------------------------------------------------------ */

/* Fold a collect (bits per 4 KiB) into stale: *pages and *bytes set. */
static void fold_dirty(struct uffd_mig_source *s, uint64_t *pages, uint64_t *bytes)
{
	uint64_t n = 0, b = 0, bit = 0;
	size_t w, words = BITMAP_WORDS(s->trk_bits);
	int i;

	if (s->trk_is_pages) {
		for (w = 0; w < words; w++) {
			n += __builtin_popcountll(s->trk[w]);
			s->stale.words[w] |= s->trk[w];
		}
		*pages = n;
		*bytes = n * 4096;
		return;
	}
	/* A larger page is dirty when any of its 4 KiB is. */
	for (i = 0; i < s->lay.nregions; i++) {
		const struct mig_region *r = &s->r[i];
		uint64_t per = r->page_size / 4096, p, k;

		for (p = 0; p < r->npages; p++, bit += per) {
			for (k = 0; k < per; k++)
				if (s->trk[(bit + k) / 64] & (1ULL << ((bit + k) % 64)))
					break;
			if (k < per) {
				s->stale.words[(r->first + p) / 64] |= 1ULL << ((r->first + p) % 64);
				n++;
				b += r->page_size;
			}
		}
	}
	*pages = n;
	*bytes = b;
}

static int collect(struct uffd_mig_source *s, bool rearm, uint64_t *dirty, uint64_t *bytes)
{
	int ret = uffd_track_collect_bitmap(s->t, rearm ? UFFD_TRACK_REARM : 0, s->trk,
					    s->trk_bits, NULL);

	if (!ret)
		fold_dirty(s, dirty, bytes);
	return ret;
}

/* One round: every stale page once.  1 if cut short by a switch, 0, or
 * -errno (reported). */
static int precopy_round(struct uffd_mig_source *s, uint64_t *bytes)
{
	uint64_t g[MIG_MAX_BATCH];
	size_t pos = 0;
	uint8_t rd[16];
	int n, ret;

	put_le32(rd, (uint32_t)s->c_round);
	put_le32(rd + 4, 0);
	put_le64(rd + 8, s->c_dirty);
	ret = mig_send(&s->stream, MIG_ROUND, 0, rd, sizeof(rd), deadline(s));
	while (!ret) {
		if (stopping(s))
			return -ECANCELED;
		if (__atomic_load_n(&s->switch_now, __ATOMIC_ACQUIRE))
			return 1;
		ret = poll_stream(s);
		if (ret)
			return ret;
		n = take_pages(s, &s->stale, &pos, s->npages, g, BG_BATCH, false);
		if (!n)
			return 0;
		ret = send_pages(s, &s->stream, g, n, true, 0, s->stage);
		for (int i = 0; i < n; i++)
			*bytes += region_of(s, g[i])->page_size;
	}
	link_failed(s, ret, "stream: precopy");
	return ret;
}

/* Round by round until the policy says switch; 0 or -errno (reported). */
static int precopy(struct uffd_mig_source *s)
{
	uint64_t budget_ns = (uint64_t)s->o.downtime_ms * 1000000;
	int ret;

	while (!stopping(s)) {
		uint64_t t0 = mono_ns(), bytes = 0, dirty, dirty_bytes, secs_ns;

		STAT_ADD(s, c_round, 1);
		ret = precopy_round(s, &bytes);
		if (ret < 0)
			return ret;
		if (ret == 1)
			return 0;
		ret = collect(s, true, &dirty, &dirty_bytes);
		if (ret) {
			fail(s, ret, "dirty tracking");
			return ret;
		}
		__atomic_store_n(&s->c_dirty, dirty, __ATOMIC_RELAXED);
		secs_ns = mono_ns() - t0;
		/* Converged: the dirty set could be sent within the budget at
		 * the rate this round achieved. */
		if (bytes && (double)dirty_bytes * secs_ns / bytes <= budget_ns)
			return 0;
		if ((int)s->c_round >= s->o.max_rounds)
			return 0;
		if (__atomic_load_n(&s->switch_now, __ATOMIC_ACQUIRE))
			return 0;
	}
	return -ECANCELED;
}

/* ---- switchover and postcopy ---------------------------------------------- */

static void *urgent_main(void *arg);

static int start_urgent(struct uffd_mig_source *s)
{
	int ret;

	if (s->o.one_channel || s->urgent_started)
		return 0;
	ret = -pthread_create(&s->urgent_thread, NULL, urgent_main, s);
	if (!ret)
		s->urgent_started = true;
	return ret;
}

/* Send every stale page now (stop-and-copy, the program paused). */
static int send_all_stale(struct uffd_mig_source *s)
{
	uint64_t g[MIG_MAX_BATCH];
	size_t pos = 0;
	int n, ret = 0;

	while (!ret && (n = take_pages(s, &s->stale, &pos, s->npages, g, BG_BATCH, false)))
		ret = send_pages(s, &s->stream, g, n, false, 0, NULL);
	return ret;
}

/*
 * Before the pause, while the program still runs: make sure nothing of
 * the precopy is still on its way, so the switchover message does not
 * wait behind pages queued anywhere between here and the destination's
 * memory - the kernels' buffers, a relay, a proxy (on a 1 Gbit/s link
 * each MiB queued would add 8 ms to the downtime).  A SYNC goes out and
 * the destination sends it back once it has placed everything before it.
 * Bounded: after SYNC_MAX_NS the pause goes ahead anyway.  0, or -errno
 * when the connection failed (reported).
 */
#define SYNC_MAX_NS		(1000 * 1000 * 1000ull)

static int sync_stream(struct uffd_mig_source *s)
{
	uint64_t token = mono_ns(), dl = uffd__deadline_ms((int)(SYNC_MAX_NS / 1000000));
	uint8_t b[8];
	struct mig_msg m;
	int ret;

	put_le64(b, token);
	ret = mig_send(&s->stream, MIG_SYNC, 0, b, sizeof(b), deadline(s));
	if (ret) {
		link_failed(s, ret, "stream: sync");
		return ret;
	}
	for (;;) {
		ret = mig_recv(&s->stream, &s->lay, s->rx, s->rx_cap, &m, NULL, dl, s->stop_efd);
		if (ret == -ETIMEDOUT)
			return 0;	/* slow: pause anyway, the answer is dropped */
		if (ret) {
			link_failed(s, ret, "stream: sync");
			return ret;
		}
		if (m.h.type == MIG_SYNC && m.sync.token == token)
			return 0;
		if (m.h.type == MIG_ERROR) {
			peer_error(s, &m);
			return -EIO;
		}
		if (m.h.type != MIG_SYNC) {
			link_failed(s, -EPROTO, "stream: an unexpected message");
			return -EPROTO;
		}
	}
}

static int switchover(struct uffd_mig_source *s)
{
	uint64_t bytes = mig_bitmap_bytes(&s->lay), dirty = 0, dirty_bytes, need;
	bool postcopy = s->o.mode != UFFD_MIG_PRECOPY_ONLY;
	struct iovec iov[4];
	uint8_t head[MIG_SWITCHOVER_BASE];
	int blob = 0, ret;

	ret = sync_stream(s);
	if (ret)
		return ret;
	mig_set_phase(&s->st, UFFD_MIG_SWITCHOVER);
	s->t_pause = mono_ns();
	if (s->o.pause)
		s->o.pause(s->o.arg);
	s->t_paused = mono_ns();	/* the program is stopped */
	s->paused = true;
	if (s->t) {
		ret = collect(s, false, &dirty, &dirty_bytes);
		if (ret) {
			fail(s, ret, "dirty tracking");
			return ret;
		}
		__atomic_store_n(&s->c_dirty, dirty, __ATOMIC_RELAXED);
	}
	if (!postcopy) {
		ret = send_all_stale(s);
		if (ret) {
			link_failed(s, ret, "stream: stop-and-copy");
			return ret;
		}
	}
	if (s->o.save) {
		blob = s->o.save(s->o.arg, s->blob, MIG_BLOB_MAX);
		if (blob < 0 || blob > (int)MIG_BLOB_MAX) {
			fail(s, blob < 0 ? blob : -EOVERFLOW, "the application's blob");
			return blob < 0 ? blob : -EOVERFLOW;
		}
	}
	need = bitmap_count(&s->stale);
	__atomic_store_n(&s->c_switch_pages, need, __ATOMIC_RELAXED);
	put_le32(head, postcopy ? MIG_SW_POSTCOPY : 0);
	put_le32(head + 4, (uint32_t)blob);
	put_le64(head + 8, need);
	put_le64(head + 16, bytes);
	iov[1] = (struct iovec){ head, sizeof(head) };
	iov[2] = (struct iovec){ s->stale.words, bytes };	/* little-endian words */
	iov[3] = (struct iovec){ s->blob, (size_t)blob };
	/* The answers' thread is ready before a fault can happen (and it
	 * exchanges the urgent connection's last words in any mode). */
	ret = start_urgent(s);
	if (ret) {
		fail(s, ret, "starting the urgent thread");
		return ret;
	}
	if (postcopy && need) {
		/* The urgent thread edits todo; the message carries stale. */
		if (bitmap_resize(&s->todo, s->npages)) {
			fail(s, -ENOMEM, "the postcopy bitmap");
			return -ENOMEM;
		}
		memcpy(s->todo.words, s->stale.words, bytes);
		s->todo_left = need;
	}
	ret = mig_sendv(&s->stream, MIG_SWITCHOVER, 0, iov, 4, deadline(s));
	if (ret) {
		link_failed(s, ret, "stream: the switchover");
		return ret;
	}
	/* From here on the program belongs to the destination. */
	__atomic_store_n(&s->switched, true, __ATOMIC_RELEASE);
	do
		ret = stream_message(s, MIG_RESUMED, deadline(s));
	while (ret == 0);
	if (ret < 0)
		return ret;
	s->t_resumed = mono_ns();
	mig_set_phase(&s->st, UFFD_MIG_POSTCOPY);
	return 0;
}

/* The next background batch, from the latest request's neighbourhood. */
static int background_batch(struct uffd_mig_source *s, uint64_t *g)
{
	uint64_t h = __atomic_exchange_n(&s->hint, 0, __ATOMIC_ACQ_REL);
	int n;

	if (h)
		s->cursor = h - 1 < s->npages ? h - 1 : 0;
	n = take_pages(s, &s->todo, &s->cursor, s->npages, g, BG_BATCH, true);
	if (!n) {
		s->cursor = 0;
		n = take_pages(s, &s->todo, &s->cursor, s->npages, g, BG_BATCH, true);
	}
	return n;
}

static int postcopy(struct uffd_mig_source *s)
{
	uint64_t g[MIG_MAX_BATCH];
	int n, ret = 0;

	mig_background_priority(s->o.one_channel);
	while (__atomic_load_n(&s->todo_left, __ATOMIC_ACQUIRE) && !stopping(s)) {
		uint64_t t_yield = 0;

		ret = poll_stream(s);
		if (ret)
			return ret;
		/* Give way to an answer being built (bounded). */
		while (__atomic_load_n(&s->urgent_busy, __ATOMIC_ACQUIRE)) {
			if (!t_yield)
				t_yield = mono_ns();
			else if (mono_ns() - t_yield > URGENT_YIELD_NS)
				break;
			sched_yield();
		}
		n = background_batch(s, g);
		if (!n)
			break;
		__atomic_fetch_sub(&s->todo_left, n, __ATOMIC_RELAXED);
		ret = send_pages(s, &s->stream, g, n, false, 0, NULL);
		if (ret) {
			link_failed(s, ret, "stream: postcopy");
			return ret;
		}
		STAT_ADD(s, c_background, n);
	}
	if (stopping(s))
		return -ECANCELED;
	ret = mig_send(&s->stream, MIG_DONE, 0, NULL, 0, deadline(s));
	if (ret) {
		link_failed(s, ret, "stream: done");
		return ret;
	}
	/* Until the destination has every page (answering requests that come
	 * meanwhile on a single channel). */
	do
		ret = stream_message(s, MIG_COMPLETE, 0);
	while (ret == 0);
	if (ret < 0)
		return ret;
	ret = mig_send(&s->stream, MIG_END, 0, NULL, 0, deadline(s));
	if (ret)
		link_failed(s, ret, "stream: end");
	return ret;
}

static void finish(struct uffd_mig_source *s)
{
	if (s->urgent_started) {
		pthread_join(s->urgent_thread, NULL);
		s->urgent_started = false;
	}
	if (mig_phase(&s->st) == UFFD_MIG_FAILED || mig_phase(&s->st) == UFFD_MIG_BROKEN)
		return;
	s->t_end = mono_ns();
	mig_set_phase(&s->st, UFFD_MIG_COMPLETE);
}

/* After a resume's WELCOME: the pages the destination still needs. */
static int resume_need(struct uffd_mig_source *s)
{
	struct mig_msg m;
	int ret = mig_recv(&s->stream, &s->lay, s->rx, s->rx_cap, &m, NULL, deadline(s),
			   s->stop_efd);

	if (ret)
		return ret;
	if (m.h.type != MIG_NEED)
		return -EPROTO;
	if (!s->todo.words && bitmap_resize(&s->todo, s->npages))
		return -ENOMEM;
	memcpy(s->todo.words, m.need.bitmap, mig_bitmap_bytes(&s->lay));
	__atomic_store_n(&s->todo_left, m.need.pages, __ATOMIC_RELEASE);
	s->cursor = 0;
	return 0;
}

static int run_resume(struct uffd_mig_source *s)
{
	uint32_t flags = 0;
	int ret;

	ret = handshake(s, &s->stream, MIG_CHAN_STREAM, true, &flags);
	if (!ret && !(flags & MIG_WELCOME_SWITCHED))
		ret = -EPROTO;
	if (!ret)
		ret = resume_need(s);
	if (!ret && !s->o.one_channel)
		ret = handshake(s, &s->urgent, MIG_CHAN_URGENT, true, NULL);
	if (ret) {
		link_failed(s, ret, "resuming");
		return ret;
	}
	STAT_ADD(s, c_resumes, 1);
	if (!s->t_resumed)		/* broken before the destination's word */
		s->t_resumed = mono_ns();
	mig_set_phase(&s->st, UFFD_MIG_POSTCOPY);
	ret = start_urgent(s);
	if (ret)
		link_failed(s, ret, "resuming: the urgent thread");
	return ret;
}

static void *stream_main(void *arg)
{
	struct uffd_mig_source *s = arg;
	int ret;

	if (s->resuming) {
		ret = run_resume(s);
		if (!ret)
			ret = postcopy(s);
		finish(s);
		return NULL;
	}
	ret = handshake(s, &s->stream, MIG_CHAN_STREAM, false, NULL);
	if (!ret && !s->o.one_channel)
		ret = handshake(s, &s->urgent, MIG_CHAN_URGENT, false, NULL);
	if (ret) {
		if (mig_phase(&s->st) != UFFD_MIG_FAILED)
			fail(s, ret, "handshake");
		return NULL;
	}
	if (s->o.mode != UFFD_MIG_POSTCOPY_ONLY) {
		mig_set_phase(&s->st, UFFD_MIG_PRECOPY);
		if (precopy(s))
			return NULL;
	}
	if (switchover(s))
		goto out;
	if (s->todo.words) {
		postcopy(s);
	} else {
		/* Nothing left for after: wait for the destination's word. */
		do
			ret = stream_message(s, MIG_COMPLETE, deadline(s));
		while (ret == 0);
		if (ret > 0) {
			ret = mig_send(&s->stream, MIG_END, 0, NULL, 0, deadline(s));
			if (ret)
				link_failed(s, ret, "stream: end");
		}
	}
out:
	finish(s);
	return NULL;
}

/* ---- the urgent thread ---------------------------------------------------- */

/* Wait for a request: poll without sleeping for spin_us, then sleep. */
static int urgent_wait(struct uffd_mig_source *s, uint64_t *last)
{
	uint64_t spin_ns = (uint64_t)s->o.spin_us * 1000;
	int ret;

	for (;;) {
		ret = mig_readable(mig_conn_fd(&s->urgent));
		if (ret)
			return ret;
		if (stopping(s))
			return -ECANCELED;
		if (mono_ns() - *last < spin_ns) {
			sched_yield();
			continue;
		}
		ret = uffd__wait_readable(mig_conn_fd(&s->urgent), s->stop_efd, 0);
		if (ret)
			return ret;
	}
}

static void *urgent_main(void *arg)
{
	struct uffd_mig_source *s = arg;
	uint64_t last = mono_ns();
	struct mig_msg m;
	int ret;

	mig_urgent_priority();
	for (;;) {
		ret = urgent_wait(s, &last);
		if (ret < 0) {
			if (ret != -ECANCELED && ret != -EINTR)
				link_failed(s, ret, "urgent");
			return NULL;
		}
		ret = mig_recv(&s->urgent, &s->lay, s->urx, s->rx_cap, &m, NULL, deadline(s),
			       s->stop_efd);
		if (ret) {
			if (!stopping(s))
				link_failed(s, ret, "urgent");
			return NULL;
		}
		switch (m.h.type) {
		case MIG_REQUEST:
			ret = answer(s, &s->urgent, &m);
			if (ret) {
				link_failed(s, ret, "urgent: sending an answer");
				return NULL;
			}
			last = mono_ns();
			break;
		case MIG_END:
			/* The destination has everything: the last word. */
			ret = mig_send(&s->urgent, MIG_END, 0, NULL, 0, deadline(s));
			if (ret)
				link_failed(s, ret, "urgent: end");
			return NULL;
		case MIG_ERROR:
			peer_error(s, &m);
			return NULL;
		default:
			link_failed(s, -EPROTO, "urgent: an unexpected message");
			return NULL;
		}
	}
}

/* ---- the API ------------------------------------------------------------ */

static int load_opts(struct uffd_mig_source_opts *o, const struct uffd_mig_source_opts *in)
{
	int ret = uffd__load_opts(o, in, struct uffd_mig_source_opts, spin_us, spin_us);

	if (ret)
		return ret;
	if (!in || o->stream_fd < 0 || (!o->one_channel && o->urgent_fd < 0) ||
	    (unsigned)o->mode > UFFD_MIG_PRECOPY_ONLY || o->max_rounds < 0 || o->timeout_ms < 0 ||
	    !o->pause != !o->resume)
		return -EINVAL;
	if (!o->max_rounds)
		o->max_rounds = o->mode == UFFD_MIG_PRECOPY_ONLY ? MIG_ROUNDS_PRECOPY :
								   MIG_ROUNDS_HYBRID;
	if (!o->downtime_ms)
		o->downtime_ms = MIG_DEFAULT_DOWNTIME_MS;
	if (!o->timeout_ms)
		o->timeout_ms = MIG_DEFAULT_TIMEOUT_MS;
	if (!o->spin_us)
		o->spin_us = MIG_DEFAULT_SPIN_US;
	return 0;
}

static int setup_tracker(struct uffd_mig_source *s)
{
	UFFD_OPTS(uffd_track_opts, to, .backend = UFFD_TRACK_AUTO);
	int i, ret;

	s->trk_is_pages = true;
	for (i = 0; i < s->lay.nregions; i++)
		if (s->r[i].page_size != 4096)
			s->trk_is_pages = false;
	s->t = uffd_track_new(&to);
	if (!s->t)
		return -errno;
	for (i = 0; i < s->lay.nregions; i++) {
		ret = uffd_track_add(s->t, (void *)(uintptr_t)s->r[i].addr, s->r[i].len);
		if (ret)
			return ret;
	}
	s->trk_bits = uffd_track_pages(s->t);
	s->trk = calloc(BITMAP_WORDS(s->trk_bits), sizeof(uint64_t));
	return s->trk ? 0 : -ENOMEM;
}

static void destroy(struct uffd_mig_source *s)
{
	if (s->t)
		uffd_track_free(s->t);
	free(s->trk);
	bitmap_free(&s->stale);
	bitmap_free(&s->todo);
	if (s->stop_efd >= 0)
		close(s->stop_efd);
	free(s->stage);
	free(s->rx);
	free(s->urx);
	free(s->blob);
	free(s->r);
	free(s->lr);
	mig_conn_destroy(&s->stream);
	mig_conn_destroy(&s->urgent);
	mig_status_destroy(&s->st);
	free(s);
}

struct uffd_mig_source *uffd_mig_source_start(const struct uffd_mig_source_opts *o)
{
	struct uffd_mig_source *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return NULL;
	s->stop_efd = -1;
	mig_status_init(&s->st);
	mig_conn_init(&s->stream, -1, &s->c_out, &s->c_in);
	mig_conn_init(&s->urgent, -1, &s->c_out, &s->c_in);
	ret = load_opts(&s->o, o);
	if (!ret)
		ret = mig_layout_init(s->o.regions, s->o.nregions, &s->r, &s->lr, &s->lay);
	if (ret)
		goto out_err;
	s->npages = s->lay.total_pages;
	s->session = mig_session_id();
	s->stream.fd = s->o.stream_fd;
	s->urgent.fd = s->o.one_channel ? -1 : s->o.urgent_fd;
	mig_nodelay(s->stream.fd);
	mig_stream_buffer(s->stream.fd, SO_SNDBUF);
	if (!s->o.one_channel) {
		mig_nodelay(s->urgent.fd);
		mig_urgent_marks(s->urgent.fd);
	}
	s->rx_cap = mig_max_payload(&s->lay);
	s->stage = malloc(MIG_MAX_DATA);
	s->rx = malloc(s->rx_cap);
	s->urx = malloc(s->rx_cap);
	s->blob = malloc(MIG_BLOB_MAX);
	s->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!s->stage || !s->rx || !s->urx || !s->blob || s->stop_efd < 0 ||
	    bitmap_resize(&s->stale, s->npages)) {
		ret = -ENOMEM;
		goto out_err;
	}
	bitmap_set_range(&s->stale, 0, s->npages);
	if (s->o.mode != UFFD_MIG_POSTCOPY_ONLY) {
		ret = setup_tracker(s);
		if (ret)
			goto out_err;
	}
	s->t0 = mono_ns();
	ret = -pthread_create(&s->stream_thread, NULL, stream_main, s);
	if (ret)
		goto out_err;
	s->stream_started = true;
	return s;

out_err:
	destroy(s);
	errno = -ret;
	return NULL;
}

int uffd_mig_source_switchover(struct uffd_mig_source *s)
{
	if (!s)
		return -EINVAL;
	if (__atomic_exchange_n(&s->switch_now, 1, __ATOMIC_ACQ_REL) ||
	    __atomic_load_n(&s->switched, __ATOMIC_ACQUIRE))
		return -EALREADY;
	return 0;
}

int uffd_mig_source_wait(struct uffd_mig_source *s, int timeout_ms)
{
	if (!s)
		return -EINVAL;
	return mig_status_wait(&s->st, timeout_ms);
}

static void join_threads(struct uffd_mig_source *s)
{
	if (s->stream_started) {
		pthread_join(s->stream_thread, NULL);
		s->stream_started = false;
	}
	if (s->urgent_started) {
		pthread_join(s->urgent_thread, NULL);
		s->urgent_started = false;
	}
}

int uffd_mig_source_resume(struct uffd_mig_source *s, int stream_fd, int urgent_fd)
{
	int ret;

	if (!s || stream_fd < 0 || (!s->o.one_channel && urgent_fd < 0))
		return -EINVAL;
	if (mig_phase(&s->st) != UFFD_MIG_BROKEN)
		return -EINVAL;
	join_threads(s);
	mig_conn_set_fd(&s->stream, stream_fd);
	mig_nodelay(stream_fd);
	mig_stream_buffer(stream_fd, SO_SNDBUF);
	if (!s->o.one_channel) {
		mig_conn_set_fd(&s->urgent, urgent_fd);
		mig_nodelay(urgent_fd);
		mig_urgent_marks(urgent_fd);
	}
	mig_set_phase(&s->st, UFFD_MIG_CONNECTING);
	s->resuming = true;
	ret = -pthread_create(&s->stream_thread, NULL, stream_main, s);
	if (ret) {
		mig_set_error(&s->st, UFFD_MIG_BROKEN, ret, "resuming: %s", strerror(-ret));
		return ret;
	}
	s->stream_started = true;
	return 0;
}

int uffd_mig_source_stats(struct uffd_mig_source *s, struct uffd_mig_stats *st)
{
	uint64_t now;

	if (!s || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	mig_status_fill(&s->st, st);
	now = mono_ns();
	st->round = __atomic_load_n(&s->c_round, __ATOMIC_RELAXED);
	st->resumes = __atomic_load_n(&s->c_resumes, __ATOMIC_RELAXED);
	st->pages = s->npages;
	st->pages_sent = __atomic_load_n(&s->c_sent, __ATOMIC_RELAXED);
	st->zero_pages = __atomic_load_n(&s->c_zero, __ATOMIC_RELAXED);
	st->dirty_pages = __atomic_load_n(&s->c_dirty, __ATOMIC_RELAXED);
	st->switchover_pages = __atomic_load_n(&s->c_switch_pages, __ATOMIC_RELAXED);
	st->pages_requested = __atomic_load_n(&s->c_requested, __ATOMIC_RELAXED);
	st->pages_background = __atomic_load_n(&s->c_background, __ATOMIC_RELAXED);
	st->bytes_sent = __atomic_load_n(&s->c_out, __ATOMIC_RELAXED);
	st->bytes_received = __atomic_load_n(&s->c_in, __ATOMIC_RELAXED);
	if (s->t_paused) {
		st->precopy_ns = s->t_pause - s->t0;
		st->downtime_ns = (s->t_resumed ? s->t_resumed : now) - s->t_paused;
	} else {
		st->precopy_ns = now - s->t0;
	}
	if (s->t_resumed)
		st->postcopy_ns = (s->t_end ? s->t_end : now) - s->t_resumed;
	st->total_ns = (s->t_end ? s->t_end : now) - s->t0;
	return 0;
}

void uffd_mig_source_free(struct uffd_mig_source *s)
{
	uint64_t one = 1;

	if (!s)
		return;
	__atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
	if (write(s->stop_efd, &one, sizeof(one)) < 0) {
		/* cannot happen with a fresh eventfd; the shutdowns below suffice */
	}
	if (mig_phase(&s->st) != UFFD_MIG_COMPLETE) {
		/* Threads blocked in a send or a receive: end the connections. */
		mig_conn_shutdown(&s->stream, SHUT_RDWR);
		if (!s->o.one_channel)
			mig_conn_shutdown(&s->urgent, SHUT_RDWR);
	}
	join_threads(s);
	if (s->paused && !s->switched && s->o.resume)
		s->o.resume(s->o.arg);
	destroy(s);
}
