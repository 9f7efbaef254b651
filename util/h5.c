#include "util/h5.h"
#include "util/fs.h"

#include <stdlib.h>
#include <string.h>

static hid_t open_attr(hid_t obj, const char *name, bool *missing) {
  bool absent = H5Aexists(obj, name) <= 0;
  if (missing) *missing = absent;
  return absent ? -1 : H5Aopen(obj, name, H5P_DEFAULT);
}

char *hy_h5_string_attr(hid_t obj, const char *name, bool *missing) {
  hid_t a = open_attr(obj, name, missing);
  if (a < 0) return NULL;
  hid_t type = H5Aget_type(a);
  char *out = NULL;
  if (H5Tget_class(type) == H5T_STRING) {
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mem, H5Tget_cset(type)); /* HDF5 will not convert between character sets */
    if (H5Tis_variable_str(type) > 0) {
      char *s = NULL;
      H5Tset_size(mem, H5T_VARIABLE);
      if (H5Aread(a, mem, &s) >= 0 && s) out = strdup(s);
      if (s) H5free_memory(s);
    } else {
      size_t size = H5Tget_size(type);
      H5Tset_size(mem, size);
      out = calloc(size + 1, 1);
      if (out && H5Aread(a, mem, out) < 0) {
        free(out);
        out = NULL;
      }
    }
    H5Tclose(mem);
  }
  H5Tclose(type);
  H5Aclose(a);
  return out;
}

int hy_h5_int_attr(hid_t obj, const char *name, int64_t *value, bool *missing) {
  hid_t a = open_attr(obj, name, missing);
  if (a < 0) return -1;
  hid_t type = H5Aget_type(a);
  herr_t st = H5Tget_class(type) == H5T_INTEGER ? H5Aread(a, H5T_NATIVE_INT64, value) : -1;
  H5Tclose(type);
  H5Aclose(a);
  return st < 0 ? -1 : 0;
}

herr_t hy_h5_write_string_attr(hid_t obj, const char *name, const char *value) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, strlen(value) + 1);
  H5Tset_cset(type, H5T_CSET_UTF8);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = a < 0 ? -1 : H5Awrite(a, type, value);
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
  return st;
}

herr_t hy_h5_write_int_attr(hid_t obj, const char *name, int64_t value) {
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_INT64, &value);
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  return st;
}

/* The core driver's memory comes from these callbacks, and when HDF5 closes the file it hands
 * the memory to hy_h5_memfile.image instead of freeing it. */
static void *image_malloc(size_t n, H5FD_file_image_op_t op, void *f) {
  (void)op, (void)f;
  return malloc(n);
}

static void *image_realloc(void *p, size_t n, H5FD_file_image_op_t op, void *f) {
  (void)op, (void)f;
  return realloc(p, n);
}

static herr_t image_free(void *p, H5FD_file_image_op_t op, void *f) {
  if (op == H5FD_FILE_IMAGE_OP_FILE_CLOSE)
    ((hy_h5_memfile *)f)->image = p;
  else
    free(p);
  return 0;
}

static void *same_file(void *f) { return f; } /* HDF5's copies of the callbacks share f */
static herr_t nothing_to_free(void *f) {
  (void)f;
  return 0;
}

int hy_h5_create_in_memory(hy_h5_memfile *f, size_t increment) {
  *f = (hy_h5_memfile){.id = -1};
  H5FD_file_image_callbacks_t keep = {image_malloc,    NULL, image_realloc, image_free, same_file,
                                      nothing_to_free, f};
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) return -1;
  if (H5Pset_fapl_core(fapl, increment, false) >= 0 &&
      H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110) >= 0 &&
      H5Pset_file_image_callbacks(fapl, &keep) >= 0)
    /* HDF5 first tries the name as an existing file: "/" opens as none (a directory) */
    f->id = H5Fcreate("/", H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  return f->id < 0 ? -1 : 0;
}

void hy_h5_discard(hy_h5_memfile *f) {
  if (f->id >= 0) H5Fclose(f->id);
  free(f->image);
  *f = (hy_h5_memfile){.id = -1};
}

int hy_h5_save(hy_h5_memfile *f, const char *path, bool replace, hy_error *err) {
  /* flushed, the file ends where its superblock says: the bytes to write */
  ssize_t size = H5Fflush(f->id, H5F_SCOPE_GLOBAL) < 0 ? -1 : H5Fget_file_image(f->id, NULL, 0);
  H5Fclose(f->id); /* in memory: nothing to write, nothing to fail */
  f->id = -1;
  int rc = size > 0 && f->image
               ? hy_write_bytes_atomic(path, f->image, (size_t)size, replace, err)
               : hy_fail(err, "%s: HDF5 could not finish the file in memory", path);
  hy_h5_discard(f);
  return rc;
}
