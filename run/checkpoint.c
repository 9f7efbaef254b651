#include "run/checkpoint.h"
#include "tensor/device.h"
#include "util/h5.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *FORMAT = "hyla-checkpoint";
enum { VERSION = 1 };

static hid_t h5_type(hy_dtype dtype) {
  return dtype == HY_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
}

/* ---- writing ---- */

enum { CHUNK_BYTES = 1 << 20 };

/* Fletcher32 checksums need chunked storage, which a scalar or an empty tensor cannot have. */
static bool checksummable(int ndim, int64_t numel) { return ndim > 0 && numel > 0; }

/* Chunks of about CHUNK_BYTES along the first dimension, each with its Fletcher32 checksum, which
 * HDF5 checks on every read (h5py's too). */
static hid_t checksummed_layout(const hy_tensor *t, const hsize_t *dims) {
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (dcpl < 0 || !checksummable(t->ndim, hy_numel(t))) return dcpl;
  hsize_t chunk[HY_MAX_DIMS], row = hy_dtype_size(t->dtype);
  for (int i = 1; i < t->ndim; i++) row *= (chunk[i] = dims[i]);
  chunk[0] = CHUNK_BYTES / row ? CHUNK_BYTES / row : 1;
  if (chunk[0] > dims[0]) chunk[0] = dims[0];
  if (H5Pset_chunk(dcpl, t->ndim, chunk) < 0 || H5Pset_fletcher32(dcpl) < 0) {
    H5Pclose(dcpl);
    return -1;
  }
  return dcpl;
}

static int write_tensor(hid_t file, const char *name, const hy_tensor *t) {
  hsize_t dims[HY_MAX_DIMS];
  for (int i = 0; i < t->ndim; i++) dims[i] = (hsize_t)t->shape[i];
  hid_t space = H5Screate_simple(t->ndim, dims, NULL);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t dcpl = checksummed_layout(t, dims);
  hid_t set =
      dcpl < 0 ? -1 : H5Dcreate2(file, name, h5_type(t->dtype), space, lcpl, dcpl, H5P_DEFAULT);
  size_t bytes = (size_t)hy_numel(t) * hy_dtype_size(t->dtype);
  void *host = t->data;
  if (t->device != HY_CPU) { /* written from a host copy */
    host = hy_device_malloc(HY_CPU, bytes);
    hy_device_copy(HY_CPU, host, t->device, t->data, bytes);
  }
  herr_t st = set < 0 ? -1 : H5Dwrite(set, h5_type(t->dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, host);
  if (host != t->data) hy_device_free(HY_CPU, host);
  if (set >= 0 && H5Dclose(set) < 0) st = -1;
  if (dcpl >= 0) H5Pclose(dcpl);
  H5Pclose(lcpl);
  H5Sclose(space);
  return st < 0 ? -1 : 0;
}

static herr_t attr_ints(hid_t obj, const char *name, const int64_t *v, int n) {
  hsize_t dim = (hsize_t)n;
  hid_t space = n ? H5Screate_simple(1, &dim, NULL) : H5Screate(H5S_NULL);
  hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = a < 0 ? -1 : n ? H5Awrite(a, H5T_NATIVE_INT64, v) : 0;
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  return st;
}

/* The file's size, about: the tensors, their chunks' checksums and metadata, the recipe. */
static size_t expected_size(const hy_params *ps, const hy_optimizer *opt,
                            const hy_ckpt_meta *meta) {
  size_t n = (1 << 20) + (meta->recipe ? strlen(meta->recipe) : 0);
  if (meta->vocab && meta->vocab->n)
    n += (size_t)meta->vocab->offsets[meta->vocab->n] + 8 * (size_t)meta->vocab->n;
  for (int i = 0; i < ps->n; i++) {
    const hy_tensor *t = ps->items[i].t;
    size_t copies = 1 + (size_t)(opt ? opt->n_state : 0);
    n += copies * ((size_t)hy_numel(t) * hy_dtype_size(t->dtype) + 8192);
  }
  return n;
}

int hy_checkpoint_write(const char *path, const hy_params *ps, const hy_optimizer *opt,
                        const hy_ckpt_meta *meta, hy_error *err) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hy_h5_memfile mem;
  if (hy_h5_create_in_memory(&mem, expected_size(ps, opt, meta)))
    return hy_fail(err, "%s: HDF5 cannot create the checkpoint in memory", path);
  hid_t file = mem.id;
  char name[512];
  int bad = 0;
  for (int i = 0; i < ps->n && !bad; i++) {
    snprintf(name, sizeof name, "/params/%s", ps->items[i].name);
    bad = write_tensor(file, name, ps->items[i].t);
    for (int k = 0; opt && k < opt->n_state && !bad; k++) {
      snprintf(name, sizeof name, "/optim/%s/%s", opt->state_names[k], ps->items[i].name);
      bad = write_tensor(file, name, opt->state[k][i]);
    }
  }
  const char *kind = !opt ? "none" : opt->cfg.kind == HY_ADAMW ? "adamw" : "sgd";
  bad = bad || hy_h5_write_string_attr(file, "format", FORMAT) < 0 ||
        hy_h5_write_int_attr(file, "version", VERSION) < 0 ||
        hy_h5_write_int_attr(file, "step", meta->step) < 0 ||
        hy_h5_write_string_attr(file, "optimizer", kind) < 0 ||
        hy_h5_write_int_attr(file, "optimizer_step", opt ? opt->step : 0) < 0 ||
        attr_ints(file, "loader_state", meta->loader, meta->n_loader) < 0 ||
        hy_h5_write_string_attr(file, "recipe", meta->recipe ? meta->recipe : "") < 0 ||
        (meta->vocab && meta->vocab->n && hy_vocab_write(file, meta->vocab, true) < 0);
  if (bad) {
    hy_h5_discard(&mem);
    return hy_fail(err, "%s: cannot assemble the checkpoint in memory (out of memory?)", path);
  }
  hy_error why;
  if (hy_h5_save(&mem, path, true, &why))
    return hy_fail(err, "%s; the checkpoint was not saved, earlier ones are untouched", why.msg);
  return 0;
}

/* ---- reading ---- */

static hid_t open_checkpoint(const char *path, hy_error *err) {
  if (access(path, R_OK) != 0)
    return hy_fail(err, "%s: no such checkpoint (or not readable)", path);
  return hy_h5_open(path, err);
}

int hy_checkpoint_read_meta(const char *path, hy_ckpt_meta *meta, hy_error *err) {
  memset(meta, 0, sizeof *meta);
  hid_t file = open_checkpoint(path, err);
  if (file < 0) return -1;
  int rc = -1;
  int64_t version = 0;
  char *format = hy_h5_string_attr(file, path, "format", err);
  if (!format) goto done;
  if (strcmp(format, FORMAT) != 0) {
    hy_fail(err, "%s: format is '%s', expected '%s'", path, format, FORMAT);
    goto done;
  }
  if (hy_h5_int_attr(file, path, "version", &version, err)) goto done;
  if (version != VERSION) {
    hy_fail(err, "%s: checkpoint version %lld, this hyla reads version %d", path,
            (long long)version, VERSION);
    goto done;
  }
  if (hy_h5_int_attr(file, path, "step", &meta->step, err)) goto done;
  if (meta->step < 0) { /* callers take a negative step for a failure of their own */
    hy_fail(err, "%s: step %lld, expected 0 or more (a damaged checkpoint?)", path,
            (long long)meta->step);
    goto done;
  }
  if (hy_h5_ints_attr(file, path, "loader_state", meta->loader, HY_CKPT_STATE_MAX, &meta->n_loader,
                      err))
    goto done;
  meta->recipe = hy_h5_string_attr(file, path, "recipe", err);
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

int hy_checkpoint_read_vocab(const char *path, hy_vocab *v, hy_error *err) {
  *v = (hy_vocab){0};
  hid_t file = open_checkpoint(path, err);
  if (file < 0) return -1;
  int rc = hy_vocab_read(file, path, v, err);
  H5Fclose(file);
  return rc;
}

/* "[2, 3]" in buf (n >= 8), ending "...]" where the rest does not fit; "unreadable" for a rank
 * HDF5 could not give (ndim < 0). */
static const char *shape_str(int ndim, const hsize_t *d, char *buf, size_t n) {
  if (ndim < 0) return snprintf(buf, n, "unreadable"), buf;
  size_t k = 1;
  buf[0] = '[';
  for (int i = 0; i < ndim; i++) {
    char dim[32];
    size_t len =
        (size_t)snprintf(dim, sizeof dim, "%s%llu", i ? ", " : "", (unsigned long long)d[i]);
    if (k + len + sizeof ", ...]" > n) { /* room kept for the ending */
      snprintf(buf + k, n - k, "%s...]", i ? ", " : "");
      return buf;
    }
    memcpy(buf + k, dim, len);
    k += len;
  }
  snprintf(buf + k, n - k, "]");
  return buf;
}

static bool has_checksum(hid_t set) {
  hid_t dcpl = H5Dget_create_plist(set);
  unsigned flags, conf;
  size_t n = 0;
  bool yes = dcpl >= 0 && H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &n, NULL, 0,
                                               NULL, &conf) >= 0;
  if (dcpl >= 0) H5Pclose(dcpl);
  return yes;
}

/* The index of the first NaN or infinity of n values of dtype, or -1. */
static int64_t first_nonfinite(const void *data, int64_t n, hy_dtype dtype, double *value) {
  for (int64_t i = 0; i < n; i++) {
    double v = dtype == HY_F64 ? ((const double *)data)[i] : ((const float *)data)[i];
    if (!isfinite(v)) {
      *value = v;
      return i;
    }
  }
  return -1;
}

/* Read dataset `name` into t: the shape must match, the data their checksum (*unchecked counts
 * the datasets of old files, which have none), every value finite. */
static int read_tensor(hid_t file, const char *path, const char *name, hy_tensor *t, int *unchecked,
                       hy_error *err) {
  hid_t set = H5Dopen2(file, name, H5P_DEFAULT);
  if (set < 0)
    return hy_h5_checksum_failed() ? hy_h5_damaged(path, name, err)
                                   : hy_fail(err, "%s: no dataset %s", path, name);
  hid_t space = H5Dget_space(set);
  int ndim = H5Sget_simple_extent_ndims(space); /* at most H5S_MAX_RANK, or < 0 */
  hsize_t have[H5S_MAX_RANK] = {0}, need[HY_MAX_DIMS];
  if (ndim < 0 || ndim > H5S_MAX_RANK || H5Sget_simple_extent_dims(space, have, NULL) < 0)
    ndim = -1;
  H5Sclose(space);
  bool same = ndim == t->ndim;
  for (int i = 0; i < t->ndim; i++) {
    need[i] = (hsize_t)t->shape[i];
    same = same && have[i] == need[i];
  }
  /* A damaged type (a float of 2 GB) would have HDF5 convert through buffers of its size. */
  hid_t type = H5Dget_type(set);
  bool floats = type >= 0 && H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) <= 8;
  if (type >= 0) H5Tclose(type);
  int rc = 0;
  if (!same) {
    char a[128], b[128];
    rc = hy_fail(err, "%s: %s has shape %s, the recipe's model needs %s", path, name,
                 shape_str(ndim, have, a, sizeof a), shape_str(t->ndim, need, b, sizeof b));
  } else if (!floats) {
    rc = hy_fail(err, "%s: %s is not a float32 or float64 dataset (damaged file?)", path, name);
  } else {
    rc = hy_h5_check_stored(set, path, name, err);
  }
  if (!rc) {
    int64_t n = hy_numel(t), at;
    size_t bytes = (size_t)n * hy_dtype_size(t->dtype);
    void *host = t->device == HY_CPU ? t->data : hy_device_malloc(HY_CPU, bytes);
    double v;
    if (H5Dread(set, h5_type(t->dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, host) < 0)
      rc = hy_h5_checksum_failed()
               ? hy_h5_damaged(path, name, err)
               : hy_fail(err, "%s: cannot read %s (truncated file or not a float dataset?)", path,
                         name);
    else if ((at = first_nonfinite(host, n, t->dtype, &v)) >= 0)
      rc = hy_fail(err, "%s: %s holds %g at index %lld; a non-finite value is not loaded", path,
                   name, v, (long long)at);
    else if (host != t->data) /* read into a host copy, then moved to the device */
      hy_device_copy(t->device, t->data, HY_CPU, host, bytes);
    if (host != t->data) hy_device_free(HY_CPU, host);
    *unchecked += checksummable(t->ndim, n) && !has_checksum(set);
  }
  H5Dclose(set);
  return rc;
}

int hy_checkpoint_load(const char *path, hy_params *ps, hy_optimizer *opt, hy_error *err) {
  hid_t file = open_checkpoint(path, err);
  if (file < 0) return -1;
  char name[512];
  int rc = 0, unchecked = 0;
  for (int i = 0; i < ps->n && !rc; i++) {
    snprintf(name, sizeof name, "/params/%s", ps->items[i].name);
    rc = read_tensor(file, path, name, ps->items[i].t, &unchecked, err);
    for (int k = 0; opt && k < opt->n_state && !rc; k++) {
      snprintf(name, sizeof name, "/optim/%s/%s", opt->state_names[k], ps->items[i].name);
      rc = read_tensor(file, path, name, opt->state[k][i], &unchecked, err);
    }
  }
  if (!rc && opt) {
    char *kind = hy_h5_string_attr(file, path, "optimizer", err);
    const char *want = opt->cfg.kind == HY_ADAMW ? "adamw" : "sgd";
    if (!kind)
      rc = -1;
    else if (strcmp(kind, want) != 0)
      rc =
          hy_fail(err, "%s: saved with optimizer '%s', the recipe asks for '%s'", path, kind, want);
    free(kind);
    if (!rc) rc = hy_h5_int_attr(file, path, "optimizer_step", &opt->step, err);
  }
  H5Fclose(file);
  if (!rc && unchecked)
    fprintf(stderr,
            "hyla: warning: %s: %d datasets without a checksum (a checkpoint of an older hyla): "
            "damage to them would go unnoticed; `h5repack -L -f FLET` adds checksums\n",
            path, unchecked);
  return rc;
}

/* ---- the run directory ---- */

void hy_checkpoint_path(char *out, size_t n, const char *dir, int64_t step) {
  snprintf(out, n, "%s/ckpt-%08lld.h5", dir, (long long)step);
}

/* The step in a checkpoint's file name as hy_checkpoint_path writes it, or -1 for other names. */
static int64_t step_of(const char *name) {
  long long s;
  char canonical[64];
  if (sscanf(name, "ckpt-%lld", &s) != 1 || s < 0) return -1;
  snprintf(canonical, sizeof canonical, "ckpt-%08lld.h5", s);
  return strcmp(name, canonical) ? -1 : s;
}

/* Steps of the checkpoints in dir, ascending; returns how many (at most cap). */
static int list_steps(const char *dir, int64_t *steps, int cap) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < cap)
    if ((steps[n] = step_of(e->d_name)) >= 0) n++;
  closedir(d);
  for (int i = 1; i < n; i++) /* insertion sort: a run keeps a handful */
    for (int j = i; j > 0 && steps[j - 1] > steps[j]; j--) {
      int64_t t = steps[j];
      steps[j] = steps[j - 1];
      steps[j - 1] = t;
    }
  return n;
}

int64_t hy_checkpoint_newest(const char *dir) {
  int64_t steps[4096];
  int k = list_steps(dir, steps, 4096);
  return k ? steps[k - 1] : -1;
}

int hy_checkpoint_latest(const char *dir, char *out, size_t n, hy_error *err) {
  int64_t step = hy_checkpoint_newest(dir);
  if (step < 0) return hy_fail(err, "%s: no checkpoint (ckpt-*.h5) to resume from", dir);
  hy_checkpoint_path(out, n, dir, step);
  return 0;
}

/* The temporary files of checkpoint writes that never finished (a killed run's). */
static void remove_temporaries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  char path[4096];
  for (struct dirent *e; (e = readdir(d));) {
    if (strncmp(e->d_name, "ckpt-", 5) || !strstr(e->d_name, ".h5.tmp.")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
}

void hy_checkpoint_prune(const char *dir, int64_t keep, int64_t step) {
  int64_t steps[4096];
  int k = list_steps(dir, steps, 4096);
  while (k > 0 && steps[k - 1] > step) k--; /* not this run's: left alone */
  char path[4096];
  for (int i = 0; i + keep < k; i++) {
    hy_checkpoint_path(path, sizeof path, dir, steps[i]);
    unlink(path);
  }
  remove_temporaries(dir);
}

int hy_checkpoint_set_aside(const char *dir, const char *const *also, char *moved, size_t n,
                            hy_error *err) {
  for (int k = 1;; k++) {
    snprintf(moved, n, "%s/previous-%d", dir, k);
    if (mkdir(moved, 0777) == 0) break;
    if (errno != EEXIST) return hy_fail(err, "%s: cannot create: %s", moved, strerror(errno));
  }
  int64_t steps[4096];
  int k = list_steps(dir, steps, 4096);
  char from[4096], to[4096];
  for (int i = 0; i < k; i++) {
    hy_checkpoint_path(from, sizeof from, dir, steps[i]);
    hy_checkpoint_path(to, sizeof to, moved, steps[i]);
    if (rename(from, to))
      return hy_fail(err, "%s: cannot move it into %s: %s", from, moved, strerror(errno));
  }
  for (int i = 0; also && also[i]; i++) {
    snprintf(from, sizeof from, "%s/%s", dir, also[i]);
    snprintf(to, sizeof to, "%s/%s", moved, also[i]);
    if (rename(from, to) && errno != ENOENT)
      return hy_fail(err, "%s: cannot move it into %s: %s", from, moved, strerror(errno));
  }
  return 0;
}
