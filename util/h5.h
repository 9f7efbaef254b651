/* Small HDF5 helpers shared by datasets and checkpoints. */
#ifndef HYLA_H5_H
#define HYLA_H5_H

#include "util/error.h"

#include <hdf5.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- reading the files hyla reads (datasets, checkpoints) ---- */

/* Open path read-only, only if its metadata carries checksums: superblock version 2 or later (HDF5
 * 1.8's layout and later ones; hyla writes 1.10's), whose superblock, object headers and chunk
 * indexes HDF5 checks before it decodes them, so damage is an error rather than input to decoders
 * that trust it. The signature and version are read here, before HDF5 sees the file; an older
 * layout is refused, naming the file and how to convert it (h5repack -L). */
hid_t hy_h5_open(const char *path, hy_error *err);
/* The superblock version of the HDF5 file at path (0 and 1: no checksums), or -1 when it cannot be
 * read or holds no HDF5 signature. */
int hy_h5_superblock_version(const char *path);
/* Whether the HDF5 call just made failed on a checksum that does not match. */
bool hy_h5_checksum_failed(void);
/* "PATH is damaged: WHAT does not match its checksum; the file was not loaded" */
int hy_h5_damaged(const char *path, const char *what, hy_error *err);

/* Attributes of obj (in file `path`, for messages). A missing one, another type, more values than
 * asked for (a single value must be a scalar) or a checksum that does not match is an error naming
 * it. A string, fixed- or variable-length, ASCII or UTF-8 (as C or h5py write it), malloc'd, or
 * NULL; one integer; an array of at most cap integers (*n gets how many; none for a null space). */
char *hy_h5_string_attr(hid_t obj, const char *path, const char *name, hy_error *err);
int hy_h5_int_attr(hid_t obj, const char *path, const char *name, int64_t *value, hy_error *err);
int hy_h5_ints_attr(hid_t obj, const char *path, const char *name, int64_t *values, int cap, int *n,
                    hy_error *err);

/* A dataset's elements must all be stored in the file: storage never written reads back as zeros
 * without an error. An error names the dataset: unwritten storage or chunks, or data kept in other
 * files (external or virtual storage). */
int hy_h5_check_stored(hid_t set, const char *path, const char *name, hy_error *err);

/* ---- writing ---- */

/* Write a UTF-8 string attribute / an int64 attribute. */
herr_t hy_h5_write_string_attr(hid_t obj, const char *name, const char *value);
herr_t hy_h5_write_int_attr(hid_t obj, const char *name, int64_t value);

/* Files hyla writes are built in memory (HDF5's core driver, growing `increment` bytes at a time)
 * and written to disk by hy_h5_save, never by HDF5 itself: so the file is created exclusively
 * under a random name and fsync'd like every atomic write (util/fs.h), and a full disk is an
 * error of hyla's own write. (HDF5 1.10 frees a file whose close failed to write but keeps its
 * id, then crashes at exit closing it again.) The layout is HDF5 1.10's (h5py reads it), whose
 * superblock, object headers and chunk indexes carry checksums. One such file at a time; f must
 * stay where it is until it is saved or discarded. */
typedef struct {
  hid_t id;    /* the file, for HDF5's calls */
  void *image; /* its bytes, which HDF5 hands over as it closes the file */
} hy_h5_memfile;

int hy_h5_create_in_memory(hy_h5_memfile *f, size_t increment);
/* Write the file to path (hy_write_bytes_atomic) and release it, in every case. */
int hy_h5_save(hy_h5_memfile *f, const char *path, bool replace, hy_error *err);
/* Release it unwritten. */
void hy_h5_discard(hy_h5_memfile *f);

#endif
