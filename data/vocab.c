#include "data/vocab.h"
#include "util/h5.h"

#include <stdlib.h>
#include <string.h>

/* A damaged header must not make hyla allocate without bound: no tokenizer comes near this. */
static const uint64_t MAX_BYTES = (uint64_t)256 << 20;

const unsigned char *hy_vocab_token(const hy_vocab *v, int64_t id, size_t *len) {
  if (id < 0 || id >= v->n) {
    *len = 0;
    return v->bytes;
  }
  *len = (size_t)(v->offsets[id + 1] - v->offsets[id]);
  return v->bytes + v->offsets[id];
}

int hy_vocab_check(const hy_vocab *v, const char *path, hy_error *err) {
  if (v->n < 1 || v->n > HY_VOCAB_MAX)
    return hy_fail(err, "%s: /vocab has %lld tokens, expected 1 to %d", path, (long long)v->n,
                   HY_VOCAB_MAX);
  if (v->offsets[0] != 0)
    return hy_fail(err, "%s: /vocab/offsets starts at %llu, expected 0", path,
                   (unsigned long long)v->offsets[0]);
  for (int64_t i = 0; i < v->n; i++)
    if (v->offsets[i + 1] < v->offsets[i])
      return hy_fail(err, "%s: /vocab/offsets decreases at token %lld", path, (long long)i);
  return 0;
}

void hy_vocab_free(hy_vocab *v) {
  free(v->offsets);
  free(v->bytes);
  *v = (hy_vocab){0};
}

bool hy_vocab_equal(const hy_vocab *a, const hy_vocab *b) {
  if (a->n != b->n) return false;
  if (a->n == 0) return true;
  return !memcmp(a->offsets, b->offsets, (size_t)(a->n + 1) * sizeof *a->offsets) &&
         !memcmp(a->bytes, b->bytes, (size_t)a->offsets[a->n]);
}

int64_t hy_vocab_decode(const hy_vocab *v, const hy_token *ids, int64_t n, FILE *out) {
  int64_t bytes = 0;
  for (int64_t i = 0; i < n; i++) {
    unsigned char byte = (unsigned char)(ids[i] & 0xff);
    size_t len = 1;
    const unsigned char *b = v->n ? hy_vocab_token(v, ids[i], &len) : &byte;
    if (out) fwrite(b, 1, len, out);
    bytes += (int64_t)len;
  }
  return bytes;
}

/* ---- reading ---- */

/* The number of elements of 1-d unsigned integer dataset `name` (elements of at most `size`
 * bytes, at most `max` of them), all of them stored in the file. */
static int array_shape(hid_t set, const char *path, const char *name, size_t size, uint64_t max,
                       uint64_t *count, hy_error *err) {
  hid_t type = H5Dget_type(set), space = H5Dget_space(set);
  hsize_t dim = 0;
  int ndim = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
  bool ok = type >= 0 && H5Tget_class(type) == H5T_INTEGER && H5Tget_sign(type) == H5T_SGN_NONE &&
            H5Tget_size(type) <= size && ndim == 1 &&
            H5Sget_simple_extent_dims(space, &dim, NULL) == 1;
  if (type >= 0) H5Tclose(type);
  if (space >= 0) H5Sclose(space);
  if (!ok)
    return hy_fail(err, "%s: %s is not a 1-d array of unsigned integers of at most %zu bytes", path,
                   name, size);
  if (dim > max) /* before anything is allocated for it */
    return hy_fail(err, "%s: %s has %llu values, at most %llu expected", path, name,
                   (unsigned long long)dim, (unsigned long long)max);
  *count = dim;
  return hy_h5_check_stored(set, path, name, err);
}

/* Dataset `name` whole into a new buffer of `count` values of mem_type (*out). */
static int read_array(hid_t file, const char *path, const char *name, hid_t mem_type, size_t size,
                      uint64_t max, void **out, uint64_t *count, hy_error *err) {
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return hy_fail(err, "%s: no dataset %s", path, name);
  hid_t set = H5Dopen2(file, name, H5P_DEFAULT);
  if (set < 0) return hy_fail(err, "%s: %s is not a dataset", path, name);
  int rc = array_shape(set, path, name, size, max, count, err);
  if (!rc && !(*out = malloc(*count ? (size_t)*count * size : 1)))
    rc = hy_fail(err, "%s: %s: out of memory", path, name);
  if (!rc && *count && H5Dread(set, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
    rc = hy_h5_checksum_failed()
             ? hy_h5_damaged(path, name, err)
             : hy_fail(err, "%s: cannot read %s (truncated or damaged file?)", path, name);
  H5Dclose(set);
  return rc;
}

int hy_vocab_read(hid_t file, const char *path, hy_vocab *v, hy_error *err) {
  *v = (hy_vocab){0};
  if (H5Lexists(file, "/vocab", H5P_DEFAULT) <= 0) return 0;
  uint64_t n_offsets = 0, n_bytes = 0;
  void *offsets = NULL, *bytes = NULL;
  int rc = read_array(file, path, "/vocab/offsets", H5T_NATIVE_UINT64, sizeof(uint64_t),
                      HY_VOCAB_MAX + 1, &offsets, &n_offsets, err);
  if (!rc)
    rc = read_array(file, path, "/vocab/bytes", H5T_NATIVE_UCHAR, 1, MAX_BYTES, &bytes, &n_bytes,
                    err);
  *v = (hy_vocab){n_offsets ? (int64_t)n_offsets - 1 : 0, offsets, bytes};
  if (!rc) rc = hy_vocab_check(v, path, err);
  if (!rc && v->offsets[v->n] != n_bytes)
    rc = hy_fail(err, "%s: /vocab/offsets ends at %llu, but /vocab/bytes holds %llu bytes", path,
                 (unsigned long long)v->offsets[v->n], (unsigned long long)n_bytes);
  if (rc) hy_vocab_free(v);
  return rc;
}

/* ---- writing ---- */

static int write_array(hid_t group, const char *name, hid_t file_type, hid_t mem_type,
                       const void *data, uint64_t count, size_t size, bool checksums) {
  hsize_t dim = count,
          chunk = count < ((hsize_t)1 << 20) / size ? count : ((hsize_t)1 << 20) / size;
  hid_t space = H5Screate_simple(1, &dim, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  bool ok = space >= 0 && dcpl >= 0;
  if (ok && checksums && count > 0) /* Fletcher32 needs chunks, which an empty array cannot have */
    ok = H5Pset_chunk(dcpl, 1, &chunk) >= 0 && H5Pset_fletcher32(dcpl) >= 0;
  hid_t set = ok ? H5Dcreate2(group, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT) : -1;
  ok = set >= 0 && (!count || H5Dwrite(set, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
  if (set >= 0 && H5Dclose(set) < 0) ok = false;
  if (dcpl >= 0) H5Pclose(dcpl);
  if (space >= 0) H5Sclose(space);
  return ok ? 0 : -1;
}

int hy_vocab_write(hid_t file, const hy_vocab *v, bool checksums) {
  hid_t group = H5Gcreate2(file, "/vocab", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (group < 0) return -1;
  int rc = write_array(group, "offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, v->offsets,
                       (uint64_t)v->n + 1, sizeof(uint64_t), checksums);
  if (!rc)
    rc = write_array(group, "bytes", H5T_STD_U8LE, H5T_NATIVE_UCHAR, v->bytes, v->offsets[v->n], 1,
                     checksums);
  if (H5Gclose(group) < 0) rc = -1;
  return rc;
}

/* ---- encoding ---- */

/* Token ids by their bytes: open addressing over a power-of-two table of ids (-1: empty). */
typedef struct {
  int32_t *slots;
  uint64_t mask;
} token_index;

static uint64_t hash_step(uint64_t h, unsigned char c) { return (h ^ c) * 0x100000001b3ULL; }
static const uint64_t HASH_START = 0xcbf29ce484222325ULL; /* FNV-1a */

static uint64_t hash_of(const unsigned char *s, size_t n) {
  uint64_t h = HASH_START;
  for (size_t i = 0; i < n; i++) h = hash_step(h, s[i]);
  return h;
}

/* The lowest id whose bytes are s[0:n], or -1. */
static int32_t find(const token_index *ix, const hy_vocab *v, uint64_t h, const unsigned char *s,
                    size_t n) {
  for (uint64_t at = h & ix->mask;; at = (at + 1) & ix->mask) {
    int32_t id = ix->slots[at];
    if (id < 0) return -1;
    size_t len;
    const unsigned char *t = hy_vocab_token(v, id, &len);
    if (len == n && !memcmp(t, s, n)) return id;
  }
}

static int index_build(token_index *ix, const hy_vocab *v) {
  uint64_t cap = 1;
  while (cap < 2 * (uint64_t)v->n) cap *= 2;
  ix->mask = cap - 1;
  if (!(ix->slots = malloc(cap * sizeof *ix->slots))) return -1;
  memset(ix->slots, 0xff, cap * sizeof *ix->slots);
  for (int32_t id = 0; id < v->n; id++) {
    size_t len;
    const unsigned char *t = hy_vocab_token(v, id, &len);
    uint64_t h = hash_of(t, len);
    if (len == 0 || find(ix, v, h, t, len) >= 0) continue; /* the lowest id keeps its bytes */
    uint64_t at = h & ix->mask;
    while (ix->slots[at] >= 0) at = (at + 1) & ix->mask;
    ix->slots[at] = id;
  }
  return 0;
}

int64_t hy_vocab_encode(const hy_vocab *v, const unsigned char *text, size_t n, int32_t *out,
                        hy_error *err) {
  size_t longest = 0;
  for (int64_t id = 0; id < v->n; id++) {
    size_t len;
    hy_vocab_token(v, id, &len);
    longest = len > longest ? len : longest;
  }
  token_index ix;
  if (index_build(&ix, v)) return hy_fail(err, "out of memory for a vocabulary's index");
  int64_t k = 0;
  for (size_t at = 0; at < n;) {
    int32_t best = -1;
    size_t best_len = 0;
    uint64_t h = HASH_START;
    for (size_t len = 1; len <= longest && at + len <= n; len++) {
      h = hash_step(h, text[at + len - 1]);
      int32_t id = find(&ix, v, h, text + at, len);
      if (id >= 0) best = id, best_len = len;
    }
    if (best < 0) {
      free(ix.slots);
      return hy_fail(err, "byte %zu of the text (0x%02x) begins no token of the vocabulary", at,
                     text[at]);
    }
    out[k++] = best;
    at += best_len;
  }
  free(ix.slots);
  return k;
}
