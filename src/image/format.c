/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers of the image format shared by writer and reader (format.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "format.h"
#include "util/crc32c.h"

uint32_t img_header_crc(const uint8_t *hdr_and_parent)
{
	uint32_t crc = crc32c(0, hdr_and_parent, IMG_HDR_CRC);

	return crc32c(crc, hdr_and_parent + IMG_PARENT_OFF, IMG_PARENT_SIZE);
}

static int not_regular(const struct stat *st)
{
	return S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL;
}

int uffd__image_open_regular(const char *path, struct stat *st)
{
	struct stat before;
	int fd;

	if (stat(path, &before))
		return -errno;
	if (!S_ISREG(before.st_mode))
		return not_regular(&before);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st)) {
		int err = -errno;

		close(fd);
		return err;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return not_regular(st);
	}
	return fd;
}

bool img_regions_equal(const struct uffd_image_region *a, int na,
		       const struct uffd_image_region *b, int nb)
{
	int i;

	if (na != nb)
		return false;
	for (i = 0; i < na; i++)
		if (a[i].addr != b[i].addr || a[i].len != b[i].len ||
		    a[i].page_size != b[i].page_size || a[i].flags != b[i].flags)
			return false;
	return true;
}

char *img_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, slash - path);
}

const char *img_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

char *img_join(const char *dir, const char *name)
{
	char *s;

	if (asprintf(&s, "%s/%s", dir, name) < 0)
		return NULL;
	return s;
}
