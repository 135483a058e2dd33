/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A map longer than its file behaves like mmap's: the last page that holds
 * file data reads as the data and then zeros; a page wholly past the end
 * of the file raises SIGBUS (LLNL umap asks for whole pages of a file and
 * leaves this undefined).  A length that is not a whole number of pages
 * is rounded up.
 */
#include <fcntl.h>
#include <unistd.h>
#include <umap/umap.h>

#include "lib/sigbus.h"
#include "lib/umap-test.h"

#define FILE_BYTES	(PAGE + 1000)

int main(void)
{
	static unsigned char file[FILE_BYTES];
	struct t_sigbus bus;
	unsigned char *map;
	char value = 0;
	int fd;

	t_fill(file, FILE_BYTES, 13);
	fd = t_umap_file(file, FILE_BYTES, NULL);
	t_sigbus_catch();

	/* Two pages and a bit: three pages, the third past the end. */
	map = t_umap(2 * PAGE + 10, PROT_READ, UMAP_PRIVATE, fd, 0);

	CHECK(memcmp(map, file, FILE_BYTES) == 0);
	CHECK(t_is_zero(map + FILE_BYTES, 2 * PAGE - FILE_BYTES));
	CHECK(t_access_catching_sigbus((volatile char *)map + 2 * PAGE, false,
				       &value, &bus));
	CHECK(bus.addr == map + 2 * PAGE);
	/* The pages before it are still there. */
	CHECK(memcmp(map, file, FILE_BYTES) == 0);

	CHECK_EQ(uunmap(map, 2 * PAGE + 10), 0);
	close(fd);
	return T_EXIT_PASS;
}
