/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* umap's Umap::StoreFile: in umap/store/Store.hpp (see there). */
#ifndef LIBUFFD_UMAP_STORE_FILE_H
#define LIBUFFD_UMAP_STORE_FILE_H

#include <umap/store/Store.hpp>

#endif
