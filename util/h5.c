#include "util/h5.h"

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
