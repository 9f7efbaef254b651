#include "data/builtin.h"
#include "data/prepare.h"
#include "data/text.h"
#include "util/fs.h"
#include "util/h5.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const double VAL_FRACTION = 0.05;

/* The source tree holds the corpus: found from where this file was compiled, so any build
 * directory (and a binary run from anywhere) finds it. */
static void data_dir(char *out, size_t n) {
  snprintf(out, n, "%s", __FILE__);
  char *slash = strrchr(out, '/');
  if (slash)
    *slash = 0; /* .../data */
  else
    snprintf(out, n, "data");
}

const char *hy_builtin_names(void) { return "shakespeare"; }

/* The CRC-32 of the uncompressed text, from the gzip trailer (CRC-32, then the size, both little
 * endian): it names the prepared file without reading the whole corpus. */
static int corpus_crc(const char *gz, uint32_t *crc, hy_error *err) {
  FILE *f = fopen(gz, "rb");
  if (!f) return hy_fail(err, "%s: cannot open the shipped corpus: %s", gz, strerror(errno));
  unsigned char t[8];
  bool ok = fseek(f, -8, SEEK_END) == 0 && fread(t, 1, 8, f) == 8;
  fclose(f);
  if (!ok) return hy_fail(err, "%s: too short for a gzip file", gz);
  *crc = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
  return 0;
}

static int prepare(const char *gz, const char *h5_path, hy_error *err) {
  size_t len = 0;
  char *text = hy_read_text(gz, &len, NULL, err);
  if (!text) return -1;
  /* replacing: ranks that prepare it at once write the same file */
  int rc =
      hy_data_prepare_bytes((const unsigned char *)text, len, gz, h5_path, VAL_FRACTION, true, err);
  free(text);
  return rc;
}

int hy_dataset_resolve(const char *name, char *h5_path, size_t n, hy_error *err) {
  if (strcmp(name, "shakespeare") != 0) {
    if (access(name, F_OK) != 0)
      return hy_fail(err, "dataset '%s' is neither a file nor a built-in dataset (%s)", name,
                     hy_builtin_names());
    if (snprintf(h5_path, n, "%s", name) >= (int)n) return hy_fail(err, "%s: path too long", name);
    return 0;
  }
  char dir[4096], cache[4096], gz[4096];
  data_dir(dir, sizeof dir);
  const char *env = getenv("HYLA_DATA_DIR");
  int len = env && *env ? snprintf(cache, sizeof cache, "%s", env)
                        : snprintf(cache, sizeof cache, "%s/cache", dir);
  if (len < 0 || (size_t)len >= sizeof cache) return hy_fail(err, "%s: path too long", cache);
  len = snprintf(gz, sizeof gz, "%s/corpus/shakespeare.txt.gz", dir);
  if (len < 0 || (size_t)len >= sizeof gz) return hy_fail(err, "%s: path too long", dir);
  uint32_t crc = 0;
  if (corpus_crc(gz, &crc, err)) return -1;
  if (snprintf(h5_path, n, "%s/shakespeare-%08x.h5", cache, (unsigned)crc) >= (int)n)
    return hy_fail(err, "%s: path too long", cache);
  /* prepared by an older hyla in HDF5's old layout, which is no longer read: prepared afresh */
  if (access(h5_path, R_OK) == 0 && hy_h5_superblock_version(h5_path) >= 2) return 0;
  if (hy_mkdirs(cache, err)) return -1;
  return prepare(gz, h5_path, err);
}

int hy_dataset_peek(const char *name, int64_t *vocab, bool *table) {
  if (!strcmp(name, "shakespeare")) {
    *vocab = 256, *table = false;
    return 0;
  }
  hy_error ignored; /* opening it as a run's dataset says what is wrong */
  hid_t file = access(name, R_OK) == 0 ? hy_h5_open(name, &ignored) : -1;
  if (file < 0) return -1;
  int rc = hy_h5_int_attr(file, name, "vocab", vocab, &ignored);
  *table = H5Lexists(file, "/vocab", H5P_DEFAULT) > 0;
  H5Fclose(file);
  return rc;
}
