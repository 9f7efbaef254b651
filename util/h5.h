/* Small HDF5 helpers shared by datasets and checkpoints. */
#ifndef HYLA_H5_H
#define HYLA_H5_H

#include "util/error.h"

#include <hdf5.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A string attribute of obj, fixed- or variable-length, ASCII or UTF-8 (as C or h5py write it),
 * malloc'd; NULL when it is missing or not a string (*missing tells which). */
char *hy_h5_string_attr(hid_t obj, const char *name, bool *missing);
/* An integer attribute; -1 when missing (*missing set) or not an integer. */
int hy_h5_int_attr(hid_t obj, const char *name, int64_t *value, bool *missing);
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
