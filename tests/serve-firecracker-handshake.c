/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Firecracker's handshake, byte for byte as Firecracker sends it: this
 * test plays the VMM, in a child process of its own - anonymous guest
 * regions, a non-blocking userfaultfd with EVENT_REMOVE registered on
 * them, then one sendmsg of serde_json's compact array
 * {base_host_virt_addr, size, offset, page_size, page_size_kib} with the
 * fd attached, and the socket closed at once (Firecracker's
 * send_uffd_handshake() drops it: the connection's end says nothing, the
 * VMM's exit does).  The server serves the regions from a raw memory file
 * at their offsets, exactly; a balloon's MADV_DONTNEED makes pages zero
 * from then on (untouched ones too); the older form with page_size_kib
 * alone is accepted; the same JSON restores from an image - a server
 * with a shared page cache, which a Firecracker VM does not use: nothing
 * goes into it - completely without a touch, and the server then
 * unregisters the regions.
 * Malformed, truncated, fd-less and huge-page handshakes are closed
 * without an answer (Firecracker reads none) and the server goes on.
 */
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/pserve.h"
#include "util/sock.h"

#define NPAGES 64
#define R0 24			/* region 0: pages 0..23 of the file */
#define R1 (NPAGES - R0)	/* region 1: the rest */

static struct t_ps_image im;

/* What Firecracker's send_uffd_handshake() writes: serde_json::to_string
 * of its Vec<GuestRegionUffdMapping>, fields in declaration order. */
static int fc_json(char *buf, size_t len, char *r0, char *r1, bool kib_only)
{
	if (kib_only)
		return snprintf(buf, len,
				"[{\"base_host_virt_addr\":%llu,\"size\":%lu,\"offset\":0,"
				"\"page_size_kib\":4096},{\"base_host_virt_addr\":%llu,"
				"\"size\":%lu,\"offset\":%lu,\"page_size_kib\":4096}]",
				(unsigned long long)(uintptr_t)r0, R0 * PAGE,
				(unsigned long long)(uintptr_t)r1, R1 * PAGE, R0 * PAGE);
	return snprintf(buf, len,
			"[{\"base_host_virt_addr\":%llu,\"size\":%lu,\"offset\":0,"
			"\"page_size\":4096,\"page_size_kib\":4096},{\"base_host_virt_addr\":%llu,"
			"\"size\":%lu,\"offset\":%lu,\"page_size\":4096,\"page_size_kib\":4096}]",
			(unsigned long long)(uintptr_t)r0, R0 * PAGE,
			(unsigned long long)(uintptr_t)r1, R1 * PAGE, R0 * PAGE);
}

struct vm {
	struct uffd u;
	char *r0, *r1;
};

/* The VMM's side: map, register, connect, one sendmsg, close. */
static void vm_start(struct vm *vm, bool kib_only)
{
	char json[1024];
	int n, sock;

	t_open(&vm->u, UFFD_F(UFFD_FEAT_EVENT_REMOVE), 0);
	vm->r0 = t_map_anon(R0 * PAGE);
	vm->r1 = t_map_anon(R1 * PAGE);
	CHECK_OK(uffd_register(&vm->u, vm->r0, R0 * PAGE, UFFD_REG_MISSING, NULL));
	CHECK_OK(uffd_register(&vm->u, vm->r1, R1 * PAGE, UFFD_REG_MISSING, NULL));
	n = fc_json(json, sizeof(json), vm->r0, vm->r1, kib_only);
	sock = t_ps_connect(&im);
	CHECK_OK(uffd__send_with_fd(sock, json, n, vm->u.fd));
	close(sock);
}

/* A handshake that must be closed, with nothing sent back. */
static void expect_closed(const void *msg, size_t len, int pass_fd)
{
	int fd = t_ps_connect(&im);
	char c;

	if (pass_fd >= 0)
		CHECK_OK(uffd__send_with_fd(fd, msg, len, pass_fd));
	else
		CHECK_EQ(send(fd, msg, len, 0), (ssize_t)len);
	CHECK_EQ(uffd__wait_readable(fd, -1, uffd__deadline_ms(5000)), 1);
	CHECK_EQ(recv(fd, &c, 1, 0), 0);
	close(fd);
}

/* A VM on a raw memory file: served on demand, a balloon, then gone. */
static int vm_balloon(void *arg)
{
	char zero[PAGE] = { 0 };
	struct vm vm;
	int n;

	(void)arg;
	vm_start(&vm, false);
	/* The guest touches region 1 first, then half of region 0. */
	t_ps_check("region 1", vm.r1, R0, R1, im.seed);
	t_ps_check("region 0, first half", vm.r0, 0, R0 / 2, im.seed);
	/* The balloon takes pages back: 4 touched and 4 never touched. */
	CHECK_OK(madvise(vm.r1 + 8 * PAGE, 4 * PAGE, MADV_DONTNEED));
	CHECK_OK(madvise(vm.r0 + 16 * PAGE, 4 * PAGE, MADV_DONTNEED));
	for (n = 0; n < 4; n++) {
		t_check_bytes("removed touched page", vm.r1 + (8 + n) * PAGE, zero, PAGE);
		t_check_bytes("removed untouched page", vm.r0 + (16 + n) * PAGE, zero, PAGE);
	}
	t_ps_check("region 0, the rest", vm.r0 + 12 * PAGE, 12, 4, im.seed);
	t_ps_check("region 0, the end", vm.r0 + 20 * PAGE, 20, 4, im.seed);
	/* A removed page takes writes like any other. */
	vm.r1[9 * PAGE] = 42;
	CHECK_EQ(vm.r1[9 * PAGE], 42);
	return 0;
}

/* Firecracker before page_size: page_size_kib alone (in bytes). */
static int vm_kib_only(void *arg)
{
	struct vm vm;

	(void)arg;
	vm_start(&vm, true);
	t_ps_check("kib-only region 0", vm.r0, 0, R0, im.seed);
	t_ps_check("kib-only region 1", vm.r1, R0, R1, im.seed);
	return 0;
}

/* Refused handshakes, each closed without an answer, while a good
 * session goes on being served; the number refused is the exit code. */
static int vm_refusals(void *arg)
{
	char json[1024];
	struct vm vm;
	int n, refused = 0;

	(void)arg;
	vm_start(&vm, false);		/* for its fd; its own session is fine */
	n = snprintf(json, sizeof(json), "[{\"base_host_virt_addr\":%llu,\"size\":-4096,"
		     "\"offset\":0,\"page_size\":4096}]", (unsigned long long)(uintptr_t)vm.r0);
	expect_closed(json, n, vm.u.fd), refused++;
	n = snprintf(json, sizeof(json), "[{\"base_host_virt_addr\":%llu,\"size\":4096,",
		     (unsigned long long)(uintptr_t)vm.r0);
	expect_closed(json, n, vm.u.fd), refused++;	/* truncated: the deadline */
	n = fc_json(json, sizeof(json), vm.r0, vm.r1, false);
	expect_closed(json, n, -1), refused++;		/* no fd */
	n = snprintf(json, sizeof(json), "[{\"base_host_virt_addr\":%llu,\"size\":%lu,"
		     "\"offset\":0,\"page_size\":2097152,\"page_size_kib\":2097152}]",
		     (unsigned long long)(uintptr_t)vm.r0, R0 * PAGE);
	expect_closed(json, n, vm.u.fd), refused++;	/* hugetlbfs */
	n = snprintf(json, sizeof(json), "[{\"base_host_virt_addr\":%llu,\"size\":%lu,"
		     "\"offset\":0,\"page_size\":4096}] trailing",
		     (unsigned long long)(uintptr_t)vm.r0, R0 * PAGE);
	expect_closed(json, n, vm.u.fd), refused++;
	/* The good session, still served after all that. */
	t_ps_check("after refusals", vm.r1, R0, R1, im.seed);
	return 100 + refused;
}

/* From an image with the background fill: complete without a touch -
 * the server unregisters the regions once every page is in. */
static int vm_filled(void *arg)
{
	struct vm vm;
	int i;

	(void)arg;
	vm_start(&vm, false);
	for (i = 0; i < 10000 && (t_ps_registered(vm.r0) || t_ps_registered(vm.r1)); i++)
		usleep(1000);
	CHECK(!t_ps_registered(vm.r0) && !t_ps_registered(vm.r1));
	t_ps_check("image region 0", vm.r0, 0, R0, im.seed);
	t_ps_check("image region 1", vm.r1, R0, R1, im.seed);
	return 0;
}

int main(void)
{
	UFFD_OPTS(uffd_serve_opts, so, .demand_only = true, .handshake_ms = 700);
	struct uffd_serve_stats st;
	pid_t server;
	int refused;

	t_ps_make_image(&im, NPAGES, 11);
	so.socket_path = im.sock;
	so.mem_file = im.raw;
	server = t_ps_server_start(&so);
	CHECK_EQ(t_ps_join(t_ps_spawn(vm_balloon, NULL), 20000), 0);
	CHECK_EQ(t_ps_join(t_ps_spawn(vm_kib_only, NULL), 20000), 0);
	refused = t_ps_join(t_ps_spawn(vm_refusals, NULL), 20000) - 100;
	CHECK(refused > 0);
	t_ps_server_stop(server, &st);
	CHECK_EQ(st.accepted, 3);
	CHECK_EQ(st.refused, refused);
	CHECK_EQ(st.gone, 3);			/* the VMs exited, then ended */
	CHECK_EQ(st.events[2], 2);		/* the two REMOVEs */
	CHECK_EQ(st.errors, 0);

	/* A server with a shared page cache serves Firecracker as before:
	 * by copy into the VM's own memory, nothing put in the cache. */
	so.mem_file = NULL;
	so.image = im.path;
	so.demand_only = false;
	so.shared_cache = true;
	server = t_ps_server_start(&so);
	CHECK_EQ(t_ps_join(t_ps_spawn(vm_filled, NULL), 20000), 0);
	t_ps_server_stop(server, &st);
	CHECK_EQ(st.accepted, 1);
	CHECK_EQ(st.done, 1);
	CHECK_EQ(st.faults + st.filled, NPAGES);
	CHECK_EQ(st.cached, 0);
	return 0;
}
