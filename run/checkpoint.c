#include "run/checkpoint.h"
#include "tensor/device.h"
#include "util/h5.h"

#include <dirent.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *FORMAT = "hyla-checkpoint";
enum { VERSION = 1 };

static hid_t h5_type(hy_dtype dtype) {
  return dtype == HY_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
}

/* ---- writing ---- */

static int write_tensor(hid_t file, const char *name, const hy_tensor *t) {
  hsize_t dims[HY_MAX_DIMS];
  for (int i = 0; i < t->ndim; i++) dims[i] = (hsize_t)t->shape[i];
  hid_t space = H5Screate_simple(t->ndim, dims, NULL);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t set = H5Dcreate2(file, name, h5_type(t->dtype), space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  size_t bytes = (size_t)hy_numel(t) * hy_dtype_size(t->dtype);
  void *host = t->data;
  if (t->device != HY_CPU) { /* written from a host copy */
    host = hy_device_malloc(HY_CPU, bytes);
    hy_device_copy(HY_CPU, host, t->device, t->data, bytes);
  }
  herr_t st = set < 0 ? -1 : H5Dwrite(set, h5_type(t->dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, host);
  if (host != t->data) hy_device_free(HY_CPU, host);
  if (set >= 0) H5Dclose(set);
  H5Pclose(lcpl);
  H5Sclose(space);
  return st < 0 ? -1 : 0;
}

static void attr_ints(hid_t obj, const char *name, const int64_t *v, int n) {
  hsize_t dim = (hsize_t)n;
  hid_t space = n ? H5Screate_simple(1, &dim, NULL) : H5Screate(H5S_NULL);
  hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  if (n) H5Awrite(a, H5T_NATIVE_INT64, v);
  H5Aclose(a);
  H5Sclose(space);
}

int hy_checkpoint_write(const char *path, const hy_params *ps, const hy_optimizer *opt,
                        const hy_ckpt_meta *meta, hy_error *err) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  char tmp[4096], name[512];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) return hy_fail(err, "%s: cannot create the checkpoint file", tmp);
  int bad = 0;
  for (int i = 0; i < ps->n && !bad; i++) {
    snprintf(name, sizeof name, "/params/%s", ps->items[i].name);
    bad = write_tensor(file, name, ps->items[i].t);
    for (int k = 0; opt && k < opt->n_state && !bad; k++) {
      snprintf(name, sizeof name, "/optim/%s/%s", opt->state_names[k], ps->items[i].name);
      bad = write_tensor(file, name, opt->state[k][i]);
    }
  }
  hy_h5_write_string_attr(file, "format", FORMAT);
  hy_h5_write_int_attr(file, "version", VERSION);
  hy_h5_write_int_attr(file, "step", meta->step);
  hy_h5_write_string_attr(file, "optimizer",
                          !opt                        ? "none"
                          : opt->cfg.kind == HY_ADAMW ? "adamw"
                                                      : "sgd");
  hy_h5_write_int_attr(file, "optimizer_step", opt ? opt->step : 0);
  attr_ints(file, "loader_state", meta->loader, meta->n_loader);
  hy_h5_write_string_attr(file, "recipe", meta->recipe ? meta->recipe : "");
  if (H5Fclose(file) < 0 || bad) {
    unlink(tmp);
    return hy_fail(err, "%s: writing the checkpoint failed (disk full?)", tmp);
  }
  if (rename(tmp, path) != 0) {
    unlink(tmp);
    return hy_fail(err, "%s: cannot rename %s into place", path, tmp);
  }
  return 0;
}

/* ---- reading ---- */

static hid_t open_checkpoint(const char *path, hy_error *err) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (access(path, R_OK) != 0)
    return hy_fail(err, "%s: no such checkpoint (or not readable)", path);
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) return hy_fail(err, "%s: not a readable HDF5 file (truncated or corrupt?)", path);
  return file;
}

static int read_attr_int(hid_t file, const char *path, const char *name, int64_t *v,
                         hy_error *err) {
  bool missing;
  if (hy_h5_int_attr(file, name, v, &missing))
    return hy_fail(err, "%s: %s attribute '%s'", path,
                   missing ? "missing" : "not an integer:", name);
  return 0;
}

static char *read_attr_str(hid_t file, const char *path, const char *name, hy_error *err) {
  bool missing;
  char *s = hy_h5_string_attr(file, name, &missing);
  if (!s) hy_fail(err, "%s: %s attribute '%s'", path, missing ? "missing" : "not a string:", name);
  return s;
}

int hy_checkpoint_read_meta(const char *path, hy_ckpt_meta *meta, hy_error *err) {
  memset(meta, 0, sizeof *meta);
  hid_t file = open_checkpoint(path, err);
  if (file < 0) return -1;
  int rc = -1;
  int64_t version = 0;
  char *format = read_attr_str(file, path, "format", err);
  if (!format) goto done;
  if (strcmp(format, FORMAT) != 0) {
    hy_fail(err, "%s: format is '%s', expected '%s'", path, format, FORMAT);
    goto done;
  }
  if (read_attr_int(file, path, "version", &version, err)) goto done;
  if (version != VERSION) {
    hy_fail(err, "%s: checkpoint version %lld, this hyla reads version %d", path,
            (long long)version, VERSION);
    goto done;
  }
  if (read_attr_int(file, path, "step", &meta->step, err)) goto done;
  if (meta->step < 0) { /* callers take a negative step for a failure of their own */
    hy_fail(err, "%s: step %lld, expected 0 or more (a damaged checkpoint?)", path,
            (long long)meta->step);
    goto done;
  }
  hid_t a = H5Aexists(file, "loader_state") > 0 ? H5Aopen(file, "loader_state", H5P_DEFAULT) : -1;
  if (a < 0) {
    hy_fail(err, "%s: missing attribute 'loader_state'", path);
    goto done;
  }
  hid_t space = H5Aget_space(a);
  hssize_t n = H5Sget_simple_extent_npoints(space);
  if (n < 0 || n > HY_CKPT_STATE_MAX) {
    hy_fail(err, "%s: loader_state has %lld values, at most %d expected", path, (long long)n,
            HY_CKPT_STATE_MAX);
  } else {
    meta->n_loader = (int)n;
    if (n > 0) H5Aread(a, H5T_NATIVE_INT64, meta->loader);
  }
  H5Sclose(space);
  H5Aclose(a);
  if (meta->n_loader != (int)n) goto done;
  meta->recipe = read_attr_str(file, path, "recipe", err);
  if (meta->recipe) rc = 0;
done:
  free(format);
  H5Fclose(file);
  return rc;
}

void hy_ckpt_meta_free(hy_ckpt_meta *meta) {
  free(meta->recipe);
  meta->recipe = NULL;
}

static const char *shape_str(int ndim, const int64_t *d, char *buf, size_t n) {
  int k = snprintf(buf, n, "[");
  for (int i = 0; i < ndim; i++)
    k += snprintf(buf + k, n - (size_t)k, "%s%lld", i ? ", " : "", (long long)d[i]);
  snprintf(buf + k, n - (size_t)k, "]");
  return buf;
}

static int read_tensor(hid_t file, const char *path, const char *name, hy_tensor *t,
                       hy_error *err) {
  hid_t set = H5Dopen2(file, name, H5P_DEFAULT);
  if (set < 0) return hy_fail(err, "%s: no dataset %s", path, name);
  hid_t space = H5Dget_space(set);
  int ndim = H5Sget_simple_extent_ndims(space);
  hsize_t dims[8] = {0};
  int64_t have[8] = {0};
  bool same = ndim == t->ndim;
  if (ndim >= 0 && ndim <= 8) {
    H5Sget_simple_extent_dims(space, dims, NULL);
    for (int i = 0; i < ndim; i++) {
      have[i] = (int64_t)dims[i];
      same = same && have[i] == t->shape[i];
    }
  }
  H5Sclose(space);
  int rc = 0;
  if (!same) {
    char a[128], b[128];
    rc = hy_fail(err, "%s: %s has shape %s, the recipe's model needs %s", path, name,
                 shape_str(ndim, have, a, sizeof a), shape_str(t->ndim, t->shape, b, sizeof b));
  } else {
    size_t bytes = (size_t)hy_numel(t) * hy_dtype_size(t->dtype);
    void *host = t->device == HY_CPU ? t->data : hy_device_malloc(HY_CPU, bytes);
    if (H5Dread(set, h5_type(t->dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, host) < 0)
      rc = hy_fail(err, "%s: cannot read %s (truncated file or not a float dataset?)", path, name);
    else if (host != t->data) /* read into a host copy, then moved to the device */
      hy_device_copy(t->device, t->data, HY_CPU, host, bytes);
    if (host != t->data) hy_device_free(HY_CPU, host);
  }
  H5Dclose(set);
  return rc;
}

int hy_checkpoint_load(const char *path, hy_params *ps, hy_optimizer *opt, hy_error *err) {
  hid_t file = open_checkpoint(path, err);
  if (file < 0) return -1;
  char name[512];
  int rc = 0;
  for (int i = 0; i < ps->n && !rc; i++) {
    snprintf(name, sizeof name, "/params/%s", ps->items[i].name);
    rc = read_tensor(file, path, name, ps->items[i].t, err);
    for (int k = 0; opt && k < opt->n_state && !rc; k++) {
      snprintf(name, sizeof name, "/optim/%s/%s", opt->state_names[k], ps->items[i].name);
      rc = read_tensor(file, path, name, opt->state[k][i], err);
    }
  }
  if (!rc && opt) {
    char *kind = read_attr_str(file, path, "optimizer", err);
    const char *want = opt->cfg.kind == HY_ADAMW ? "adamw" : "sgd";
    if (!kind)
      rc = -1;
    else if (strcmp(kind, want) != 0)
      rc =
          hy_fail(err, "%s: saved with optimizer '%s', the recipe asks for '%s'", path, kind, want);
    free(kind);
    if (!rc) rc = read_attr_int(file, path, "optimizer_step", &opt->step, err);
  }
  H5Fclose(file);
  return rc;
}

/* ---- the run directory ---- */

void hy_checkpoint_path(char *out, size_t n, const char *dir, int64_t step) {
  snprintf(out, n, "%s/ckpt-%08lld.h5", dir, (long long)step);
}

/* Steps of the checkpoints in dir, ascending; returns how many (at most cap). */
static int list_steps(const char *dir, int64_t *steps, int cap) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < cap) {
    long long s;
    char tail[8];
    if (sscanf(e->d_name, "ckpt-%lld.h%7s", &s, tail) == 2 && !strcmp(tail, "5")) steps[n++] = s;
  }
  closedir(d);
  for (int i = 1; i < n; i++) /* insertion sort: a run keeps a handful */
    for (int j = i; j > 0 && steps[j - 1] > steps[j]; j--) {
      int64_t t = steps[j];
      steps[j] = steps[j - 1];
      steps[j - 1] = t;
    }
  return n;
}

int hy_checkpoint_latest(const char *dir, char *out, size_t n, hy_error *err) {
  int64_t steps[4096];
  int k = list_steps(dir, steps, 4096);
  if (k == 0) return hy_fail(err, "%s: no checkpoint (ckpt-*.h5) to resume from", dir);
  hy_checkpoint_path(out, n, dir, steps[k - 1]);
  return 0;
}

void hy_checkpoint_prune(const char *dir, int64_t keep) {
  int64_t steps[4096];
  int k = list_steps(dir, steps, 4096);
  char path[4096];
  for (int i = 0; i + keep < k; i++) {
    hy_checkpoint_path(path, sizeof path, dir, steps[i]);
    unlink(path);
  }
}
