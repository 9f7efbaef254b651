/* Small HDF5 helpers shared by datasets and checkpoints. */
#ifndef HYLA_H5_H
#define HYLA_H5_H

#include <hdf5.h>
#include <stdbool.h>
#include <stdint.h>

/* A string attribute of obj, fixed- or variable-length, ASCII or UTF-8 (as C or h5py write it),
 * malloc'd; NULL when it is missing or not a string (*missing tells which). */
char *hy_h5_string_attr(hid_t obj, const char *name, bool *missing);
/* An integer attribute; -1 when missing (*missing set) or not an integer. */
int hy_h5_int_attr(hid_t obj, const char *name, int64_t *value, bool *missing);
/* Write a UTF-8 string attribute / an int64 attribute. */
herr_t hy_h5_write_string_attr(hid_t obj, const char *name, const char *value);
herr_t hy_h5_write_int_attr(hid_t obj, const char *name, int64_t value);

#endif
