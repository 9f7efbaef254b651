#include "util/h5.h"
#include "util/fs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* ---- reading ---- */

static herr_t find_checksum(unsigned n, const H5E_error2_t *e, void *found) {
  (void)n;
  if (e->desc && strstr(e->desc, "checksum")) *(bool *)found = true;
  return 0;
}

bool hy_h5_checksum_failed(void) {
  bool found = false;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, find_checksum, &found);
  return found;
}

int hy_h5_damaged(const char *path, const char *what, hy_error *err) {
  return hy_fail(err, "%s is damaged: %s does not match its checksum; the file was not loaded",
                 path, what);
}

/* The superblock's version follows HDF5's signature, which HDF5 looks for at the start of the
 * file, then at 512, 1024, 2048, ... bytes (after a user block). */
int hy_h5_superblock_version(const char *path) {
  static const unsigned char SIGNATURE[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  FILE *f = fopen(path, "rb");
  unsigned char head[9];
  int version = -1;
  for (off_t at = 0; f && version < 0; at = at ? 2 * at : 512) {
    if (fseeko(f, at, SEEK_SET) || fread(head, 1, sizeof head, f) != sizeof head) break;
    if (!memcmp(head, SIGNATURE, sizeof SIGNATURE)) version = head[8];
  }
  if (f) fclose(f);
  return version;
}

hid_t hy_h5_open(const char *path, hy_error *err) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors come back as messages, not HDF5's own dumps */
  int version = hy_h5_superblock_version(path);
  if (version < 0) return hy_fail(err, "%s: not an HDF5 file (or truncated, or unreadable)", path);
  if (version < 2)
    return hy_fail(err,
                   "%s: an HDF5 file in the old layout (superblock version %d), whose metadata has "
                   "no checksums, so damage to it could not be detected; hyla reads only the "
                   "checksummed layout. Convert it with `h5repack -L -f FLET %s NEW.h5` (Debian's "
                   "hdf5-tools), or write it again in that layout (`hyla data prepare`, h5py's "
                   "libver=\"latest\", a checkpoint of this hyla)",
                   path, version, path);
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0 && hy_h5_checksum_failed()) return hy_h5_damaged(path, "the superblock", err);
  if (file < 0) return hy_fail(err, "%s: not a readable HDF5 file (truncated or corrupt?)", path);
  return file;
}

/* The failure of the HDF5 call just made on attribute `name` of obj: its checksum, or `why`. */
static int attr_fail(hid_t obj, const char *path, const char *name, const char *why,
                     hy_error *err) {
  if (!hy_h5_checksum_failed()) return hy_fail(err, "%s: attribute '%s' %s", path, name, why);
  char where[256] = "?", what[600];
  H5Iget_name(obj, where, sizeof where);
  snprintf(what, sizeof what, "the header of %s, which holds attribute '%s',", where, name);
  return hy_h5_damaged(path, what, err);
}

/* Attribute `name` of obj, opened if its type is of class `want` (no more than 8 bytes for a
 * number: a damaged size would have HDF5 convert through buffers of it) and it holds one value
 * (a scalar; cap 0) or at most cap values; *n gets how many. */
static hid_t open_attr(hid_t obj, const char *path, const char *name, H5T_class_t want, int cap,
                       hssize_t *n, hy_error *err) {
  htri_t exists = H5Aexists(obj, name);
  if (exists == 0) return hy_fail(err, "%s: missing attribute '%s'", path, name);
  hid_t a = exists < 0 ? -1 : H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return attr_fail(obj, path, name, "cannot be read", err);
  hid_t type = H5Aget_type(a), space = H5Aget_space(a);
  H5T_class_t have = type < 0 ? H5T_NO_CLASS : H5Tget_class(type);
  size_t size = type < 0 ? 0 : H5Tget_size(type);
  H5S_class_t shape = space < 0 ? H5S_NO_CLASS : H5Sget_simple_extent_type(space);
  *n = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
  if (type >= 0) H5Tclose(type);
  if (space >= 0) H5Sclose(space);
  int rc = 0;
  if (have != want || size == 0 || (want != H5T_STRING && size > 8))
    rc = hy_fail(err, "%s: attribute '%s' is not %s", path, name,
                 want == H5T_STRING ? "a string" : "an integer");
  else if (!cap && shape == H5S_NULL)
    rc = hy_fail(err, "%s: attribute '%s' holds no value", path, name);
  else if (!cap && shape != H5S_SCALAR)
    rc = hy_fail(err, "%s: attribute '%s' is an array (of %lld), expected a single value", path,
                 name, (long long)*n);
  else if (cap && (*n < 0 || *n > cap))
    rc = hy_fail(err, "%s: attribute '%s' holds %lld values, expected at most %d", path, name,
                 (long long)*n, cap);
  if (rc) H5Aclose(a);
  return rc ? -1 : a;
}

char *hy_h5_string_attr(hid_t obj, const char *path, const char *name, hy_error *err) {
  hssize_t n;
  hid_t a = open_attr(obj, path, name, H5T_STRING, 0, &n, err);
  if (a < 0) return NULL;
  hid_t type = H5Aget_type(a), mem = H5Tcopy(H5T_C_S1);
  H5Tset_cset(mem, H5Tget_cset(type)); /* HDF5 will not convert between character sets */
  bool variable = H5Tis_variable_str(type) > 0;
  size_t size = variable ? H5T_VARIABLE : H5Tget_size(type);
  H5Tset_size(mem, size);
  char *out = NULL, *s = NULL;
  if (variable) {
    if (H5Aread(a, mem, &s) < 0)
      attr_fail(obj, path, name, "cannot be read", err);
    else if (!(out = strdup(s ? s : "")))
      hy_fail(err, "%s: attribute '%s': out of memory", path, name);
    if (s) H5free_memory(s);
  } else if (!(out = calloc(size + 1, 1))) {
    hy_fail(err, "%s: attribute '%s': out of memory for %zu bytes", path, name, size);
  } else if (H5Aread(a, mem, out) < 0) {
    attr_fail(obj, path, name, "cannot be read", err);
    free(out);
    out = NULL;
  }
  H5Tclose(mem);
  H5Tclose(type);
  H5Aclose(a);
  return out;
}

int hy_h5_ints_attr(hid_t obj, const char *path, const char *name, int64_t *values, int cap, int *n,
                    hy_error *err) {
  hssize_t have;
  hid_t a = open_attr(obj, path, name, H5T_INTEGER, cap, &have, err);
  if (a < 0) return -1;
  int rc = have && H5Aread(a, H5T_NATIVE_INT64, values) < 0
               ? attr_fail(obj, path, name, "cannot be read", err)
               : 0;
  H5Aclose(a);
  if (n) *n = (int)have;
  return rc;
}

int hy_h5_int_attr(hid_t obj, const char *path, const char *name, int64_t *value, hy_error *err) {
  hssize_t n;
  hid_t a = open_attr(obj, path, name, H5T_INTEGER, 0, &n, err);
  if (a < 0) return -1;
  int rc = H5Aread(a, H5T_NATIVE_INT64, value) < 0
               ? attr_fail(obj, path, name, "cannot be read", err)
               : 0;
  H5Aclose(a);
  return rc;
}

/* Whether every element of a dataset has storage in the file; what was never written reads back
 * as the fill value (zeros) without an error. */
int hy_h5_check_stored(hid_t set, const char *path, const char *name, hy_error *err) {
  hid_t dcpl = H5Dget_create_plist(set), space = H5Dget_space(set);
  H5D_layout_t layout = dcpl < 0 ? H5D_LAYOUT_ERROR : H5Pget_layout(dcpl);
  int external = dcpl < 0 ? -1 : H5Pget_external_count(dcpl);
  int ndim = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
  hssize_t n = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
  hsize_t dims[H5S_MAX_RANK], chunk[H5S_MAX_RANK], want = 1, have = 0;
  H5D_space_status_t status = H5D_SPACE_STATUS_ERROR;
  int rc = 0;
  if (layout == H5D_LAYOUT_ERROR || external < 0 || ndim < 0 || n < 0) {
    rc = hy_fail(err, "%s: cannot read the layout of %s (damaged file?)", path, name);
  } else if (external > 0 || layout == H5D_VIRTUAL) {
    rc = hy_fail(err, "%s: %s keeps its data in other files, which hyla does not read", path, name);
  } else if (n > 0 && layout == H5D_CONTIGUOUS) {
    if (H5Dget_space_status(set, &status) < 0 || status != H5D_SPACE_STATUS_ALLOCATED)
      rc = hy_fail(err, "%s: %s was never written (it would read as zeros)", path, name);
  } else if (n > 0 && layout == H5D_CHUNKED) {
    bool known = H5Sget_simple_extent_dims(space, dims, NULL) == ndim &&
                 H5Pget_chunk(dcpl, ndim, chunk) == ndim;
    for (int i = 0; known && i < ndim; i++)
      known = chunk[i] > 0 &&
              !__builtin_mul_overflow(want, dims[i] / chunk[i] + (dims[i] % chunk[i] != 0), &want);
    if (!known || H5Dget_num_chunks(set, space, &have) < 0)
      rc = hy_fail(err, "%s: cannot read the chunks of %s (damaged file?)", path, name);
    else if (have < want)
      rc = hy_fail(err,
                   "%s: %s: %llu of its %llu chunks were never written (they would read as "
                   "zeros; a truncated or damaged file?)",
                   path, name, (unsigned long long)(want - have), (unsigned long long)want);
  }
  if (dcpl >= 0) H5Pclose(dcpl);
  if (space >= 0) H5Sclose(space);
  return rc;
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
