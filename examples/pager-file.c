/*
 * Read a file larger than you want to hold in memory through the pager:
 * at most 4 MiB of it is resident at a time, whatever its size.
 *   build/examples/pager-file FILE   (sums its 64-bit words)
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <uffd/pager.h>

int main(int argc, char **argv)
{
	UFFD_OPTS(uffd_pager_opts, o, .buffer_bytes = 4 << 20);
	struct uffd_pager_stats st;
	struct uffd_pager *p;
	struct stat sb;
	uint64_t sum = 0, i;
	const uint64_t *words;

	if (argc != 2 || stat(argv[1], &sb) || sb.st_size < 4096) {
		fprintf(stderr, "usage: %s FILE (at least 4 KiB)\n", argv[0]);
		return 2;
	}
	p = uffd_pager_new(&o);
	if (!p) {
		perror("uffd_pager_new");
		return 1;
	}
	/* Whole pages; a partial last page reads as zeros past the end. */
	words = uffd_pager_map(p, uffd_store_file(argv[1], O_RDONLY, UFFD_STORE_DIRECT), 0,
			       (sb.st_size + 4095) / 4096 * 4096, PROT_READ,
			       UFFD_PAGER_OWN_STORE, 0);
	if (!words) {
		perror("uffd_pager_map");
		return 1;
	}
	for (i = 0; i < (uint64_t)sb.st_size / 8; i++)
		sum += words[i];
	uffd_pager_stats(p, &st);
	printf("sum %llu: %llu faults, %llu MiB read, at most %llu KiB resident\n",
	       (unsigned long long)sum, (unsigned long long)st.faults,
	       (unsigned long long)st.bytes_read >> 20,
	       (unsigned long long)st.resident_peak_bytes >> 10);
	return uffd_pager_free(p) ? 1 : 0;
}
