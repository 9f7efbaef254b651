/* Checkpoint files: a checksum on every dataset, checked at load (a flipped bit is reported and
 * nothing is loaded), non-finite values refused, files of older hyla without checksums, a failed
 * write that leaves the earlier file, symlinks planted in the directory, pruning next to another
 * run's checkpoints, and setting a run's files aside. */
#include "run/checkpoint.h"
#include "tests/support.h"
#include "util/fs.h"
#include "util/h5.h"

#include <dirent.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(checkpoint, .init = t_temp_init, .fini = t_temp_fini);

/* A model's worth of parameters: a matrix, a gain, one of two chunks (1.2 MiB), one in f64;
 * filled with values from `seed`, or zeros. */
static void params(hy_params *ps, uint64_t seed) {
  *ps = (hy_params){0};
  hy_params_add(ps, "embed", "weight", HY_F32, HY_SHAPE(64, 16), false);
  hy_params_add(ps, "blocks/0/norm", "weight", HY_F32, HY_SHAPE(16), false);
  hy_params_add(ps, "head", "weight", HY_F32, HY_SHAPE(600, 512), true);
  hy_params_add(ps, "wide", "weight", HY_F64, HY_SHAPE(8, 4), true);
  hy_rng rng = hy_rng_new(seed);
  for (int i = 0; seed && i < ps->n; i++) hy_fill_normal(ps->items[i].t, &rng, 0.0, 1.0);
}

static const hy_ckpt_meta META = {.step = 5, .n_loader = 2, .loader = {3, 4}, .recipe = "x = 1\n"};

static void write_ckpt(const char *path, hy_params *ps) {
  hy_error err;
  cr_assert_eq(hy_checkpoint_write(path, ps, NULL, &META, &err), 0, "%s", err.msg);
}

static void expect_load_error(const char *path, const char *want) {
  hy_params ps;
  params(&ps, 0);
  hy_error err;
  cr_assert_neq(hy_checkpoint_load(path, &ps, NULL, &err), 0, "%s loaded", path);
  cr_assert(strstr(err.msg, want), "'%s' lacks '%s'", err.msg, want);
  hy_params_free(&ps);
}

static int files_with(const char *part) {
  DIR *d = opendir(t_temp_path());
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, part) != NULL;
  closedir(d);
  return n;
}

static bool has_fletcher32(hid_t file, const char *name) {
  hid_t set = H5Dopen2(file, name, H5P_DEFAULT), dcpl = H5Dget_create_plist(set);
  unsigned flags, conf;
  size_t n = 0;
  bool yes =
      H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &n, NULL, 0, NULL, &conf) >= 0;
  H5Pclose(dcpl);
  H5Dclose(set);
  return yes;
}

Test(checkpoint, round_trip_with_a_checksum_on_every_dataset) {
  hy_params ps, back;
  params(&ps, 1);
  params(&back, 0);
  const char *path = t_in_temp("ckpt-00000005.h5");
  write_ckpt(path, &ps);
  hy_error err;
  cr_assert_eq(hy_checkpoint_load(path, &back, NULL, &err), 0, "%s", err.msg);
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  char name[128];
  for (int i = 0; i < ps.n; i++) {
    t_expect_same_bits(back.items[i].t, ps.items[i].t, ps.items[i].name);
    snprintf(name, sizeof name, "/params/%s", ps.items[i].name);
    cr_assert(has_fletcher32(file, name), "%s has no checksum", name);
  }
  H5Fclose(file);
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  mode_t mask = umask(0);
  umask(mask);
  cr_assert_eq(st.st_mode & 0777, 0666 & ~mask, "mode %o", st.st_mode & 0777);
  cr_assert_eq(files_with(".tmp"), 0, "a temporary file was left behind");
  hy_params_free(&ps);
  hy_params_free(&back);
}

/* Flip one bit of chunk `chunk` of dataset `name`, in the file's bytes. */
static void flip_bit(const char *path, const char *name, hsize_t chunk, hsize_t at) {
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), set = H5Dopen2(file, name, H5P_DEFAULT);
  hid_t space = H5Dget_space(set);
  haddr_t addr = 0;
  hsize_t offset[2], size = 0;
  unsigned mask;
  cr_assert(H5Dget_chunk_info(set, space, chunk, offset, &mask, &addr, &size) >= 0);
  cr_assert(at < size);
  H5Sclose(space);
  H5Dclose(set);
  H5Fclose(file);
  int fd = open(path, O_RDWR);
  unsigned char byte;
  cr_assert_eq(pread(fd, &byte, 1, (off_t)(addr + at)), 1);
  byte ^= 0x10;
  cr_assert_eq(pwrite(fd, &byte, 1, (off_t)(addr + at)), 1);
  close(fd);
}

Test(checkpoint, a_flipped_bit_in_a_weight_is_reported_and_nothing_loaded) {
  hy_params ps;
  params(&ps, 1);
  const char *a = t_in_temp("a.h5"), *b = t_in_temp("b.h5");
  write_ckpt(a, &ps);
  write_ckpt(b, &ps);
  flip_bit(a, "/params/embed/weight", 0, 41);
  expect_load_error(a, "a.h5 is damaged: /params/embed/weight does not match its checksum");
  flip_bit(b, "/params/head/weight", 1, 1000); /* the second chunk */
  expect_load_error(b, "b.h5 is damaged: /params/head/weight does not match its checksum");
  hy_params_free(&ps);
}

Test(checkpoint, non_finite_parameters_are_refused) {
  hy_params ps;
  params(&ps, 1);
  ((float *)hy_params_find(&ps, "blocks/0/norm/weight")->t->data)[7] = NAN;
  write_ckpt(t_in_temp("nan.h5"), &ps);
  expect_load_error(t_in_temp("nan.h5"),
                    "nan.h5: /params/blocks/0/norm/weight holds nan at index 7");
  ((float *)hy_params_find(&ps, "blocks/0/norm/weight")->t->data)[7] = 1;
  ((double *)hy_params_find(&ps, "wide/weight")->t->data)[30] = -INFINITY;
  write_ckpt(t_in_temp("inf.h5"), &ps);
  expect_load_error(t_in_temp("inf.h5"), "inf.h5: /params/wide/weight holds -inf at index 30");
  hy_params_free(&ps);
}

/* A checkpoint as hyla wrote them before checksums: contiguous datasets, the same attributes, in
 * HDF5's old layout (superblock version 0), or the checksummed one that h5repack -L gives it. */
static void write_unchecked(const char *path, const hy_params *ps, bool old_layout) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (!old_layout) H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110);
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  char name[128];
  for (int i = 0; i < ps->n; i++) {
    const hy_tensor *t = ps->items[i].t;
    hsize_t dims[2] = {(hsize_t)t->shape[0], t->ndim > 1 ? (hsize_t)t->shape[1] : 0};
    hid_t type = t->dtype == HY_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
    hid_t space = H5Screate_simple(t->ndim, dims, NULL);
    snprintf(name, sizeof name, "/params/%s", ps->items[i].name);
    hid_t set = H5Dcreate2(file, name, type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(H5Dwrite(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) >= 0);
    H5Dclose(set);
    H5Sclose(space);
  }
  H5Pclose(lcpl);
  hy_h5_write_string_attr(file, "format", "hyla-checkpoint");
  hy_h5_write_int_attr(file, "version", 1);
  hy_h5_write_int_attr(file, "step", 7);
  hy_h5_write_string_attr(file, "optimizer", "none");
  hy_h5_write_int_attr(file, "optimizer_step", 0);
  hid_t none = H5Screate(H5S_NULL);
  H5Aclose(H5Acreate2(file, "loader_state", H5T_STD_I64LE, none, H5P_DEFAULT, H5P_DEFAULT));
  H5Sclose(none);
  hy_h5_write_string_attr(file, "recipe", "");
  H5Fclose(file);
}

/* Load path into parameters like ps, expect the same values, and return what was said on stderr. */
static char *load_same(const char *path, const hy_params *ps) {
  hy_params back;
  params(&back, 0);
  const char *said = t_in_temp("stderr.txt");
  fflush(stderr);
  int saved = dup(2), fd = open(said, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(fd, 2);
  hy_error err;
  int rc = hy_checkpoint_load(path, &back, NULL, &err);
  fflush(stderr);
  dup2(saved, 2);
  close(fd);
  close(saved);
  cr_assert_eq(rc, 0, "%s", err.msg);
  for (int i = 0; i < ps->n; i++) t_expect_same_bits(back.items[i].t, ps->items[i].t, path);
  hy_params_free(&back);
  char *text = hy_read_file(said, NULL, &err);
  cr_assert(text, "%s", err.msg);
  return text;
}

Test(checkpoint, files_without_checksums_load_with_a_warning) {
  hy_params ps;
  params(&ps, 2);
  const char *path = t_in_temp("old.h5");
  write_unchecked(path, &ps, false);
  char *text = load_same(path, &ps);
  cr_assert(strstr(text, "old.h5: 4 datasets without a checksum"), "%s", text);
  cr_assert(strstr(text, "`h5repack -L -f FLET` adds checksums"), "%s", text);
  free(text);
  hy_params_free(&ps);
}

/* HDF5's old layout, without checksums on its metadata (older hyla's, h5py's default), is refused
 * before HDF5 decodes it; h5repack -L converts it, and -f FLET adds the datasets' checksums. */
Test(checkpoint, the_old_layout_is_refused_and_h5repack_converts_it) {
  hy_params ps;
  params(&ps, 6);
  const char *old = t_in_temp("v0.h5");
  write_unchecked(old, &ps, true);
  expect_load_error(old, "v0.h5: an HDF5 file in the old layout (superblock version 0), whose "
                         "metadata has no checksums, so damage to it could not be detected");
  hy_ckpt_meta meta;
  hy_error err;
  cr_assert_neq(hy_checkpoint_read_meta(old, &meta, &err), 0);
  cr_assert(strstr(err.msg, "Convert it with `h5repack -L -f FLET "), "%s", err.msg);
  if (system("command -v h5repack >/dev/null 2>&1")) {
    hy_params_free(&ps);
    cr_skip_test("no h5repack (Debian's hdf5-tools) to convert it with");
  }
  char cmd[900];
  snprintf(cmd, sizeof cmd, "h5repack -L %s %s", old, t_in_temp("latest.h5"));
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  char *text = load_same(t_in_temp("latest.h5"), &ps);
  cr_assert(strstr(text, "latest.h5: 4 datasets without a checksum"), "%s", text);
  free(text);
  snprintf(cmd, sizeof cmd, "h5repack -L -f FLET %s %s", old, t_in_temp("checked.h5"));
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  text = load_same(t_in_temp("checked.h5"), &ps);
  cr_assert_str_empty(text);
  free(text);
  hy_params_free(&ps);
}

/* Every byte of a small checkpoint flipped in turn: refused with a message, or (bytes HDF5 does
 * not use) the same values; never other values, never a crash. */
Test(checkpoint, a_flipped_byte_anywhere_is_refused_or_harmless) {
  t_ignore_leaks();
  hy_params ps, back;
  ps = (hy_params){0};
  hy_params_add(&ps, "embed", "weight", HY_F32, HY_SHAPE(8, 4), false);
  hy_params_add(&ps, "norm", "weight", HY_F64, HY_SHAPE(4), false);
  hy_rng rng = hy_rng_new(7);
  for (int i = 0; i < ps.n; i++) hy_fill_normal(ps.items[i].t, &rng, 0.0, 1.0);
  const char *path = t_in_temp("small.h5");
  write_ckpt(path, &ps);
  back = (hy_params){0};
  hy_params_add(&back, "embed", "weight", HY_F32, HY_SHAPE(8, 4), false);
  hy_params_add(&back, "norm", "weight", HY_F64, HY_SHAPE(4), false);
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  int fd = open(path, O_RDWR), refused = 0;
  for (off_t at = 0; at < st.st_size; at++) {
    unsigned char byte, flipped;
    cr_assert_eq(pread(fd, &byte, 1, at), 1);
    flipped = byte ^ 0x5a;
    cr_assert_eq(pwrite(fd, &flipped, 1, at), 1);
    hy_ckpt_meta meta;
    hy_error err;
    int rc = hy_checkpoint_read_meta(path, &meta, &err);
    if (!rc) {
      rc = hy_checkpoint_load(path, &back, NULL, &err);
      cr_assert(rc || (meta.step == 5 && meta.n_loader == 2 && meta.loader[1] == 4), "byte %lld",
                (long long)at);
      hy_ckpt_meta_free(&meta);
    }
    cr_assert_eq(pwrite(fd, &byte, 1, at), 1);
    if (rc) {
      cr_assert(strstr(err.msg, "small.h5"), "byte %lld: '%s'", (long long)at, err.msg);
      refused++;
      continue;
    }
    for (int i = 0; i < ps.n; i++) t_expect_same_bits(back.items[i].t, ps.items[i].t, "flipped");
  }
  close(fd);
  cr_assert_gt(refused, st.st_size / 2, "only %d of %lld flips refused", refused,
               (long long)st.st_size);
  hy_params_free(&ps);
  hy_params_free(&back);
}

/* The child writes over the checkpoint with at most 64 KiB a file (as on a full disk), then ends
 * as hyla does, through HDF5's own clean-up at exit. */
Test(checkpoint, a_failed_write_leaves_the_earlier_file_and_exits_cleanly) {
  hy_params ps, back;
  params(&ps, 3);
  const char *path = t_in_temp("ckpt-00000005.h5");
  write_ckpt(path, &ps);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN); /* the write fails with EFBIG instead */
    setrlimit(RLIMIT_FSIZE, &(struct rlimit){64 << 10, 64 << 10});
    hy_rng rng = hy_rng_new(9);
    hy_fill_uniform(ps.items[0].t, &rng, 5, 6);
    hy_error err;
    bool ok = hy_checkpoint_write(path, &ps, NULL, &META, &err) != 0 &&
              strstr(err.msg, "ckpt-00000005.h5: writing failed (write: File too large)") &&
              strstr(err.msg, "the checkpoint was not saved, earlier ones are untouched");
    if (!ok) fprintf(stderr, "unexpected: %s\n", err.msg);
    H5close(); /* what exit does: where HDF5 1.10 crashed after a failed close */
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  cr_assert(WIFEXITED(status), "the writer died of signal %d", WTERMSIG(status));
  cr_assert_eq(WEXITSTATUS(status), 0);
  params(&back, 0);
  hy_error err;
  cr_assert_eq(hy_checkpoint_load(path, &back, NULL, &err), 0, "%s", err.msg);
  for (int i = 0; i < ps.n; i++) t_expect_same_bits(back.items[i].t, ps.items[i].t, "kept");
  cr_assert_eq(files_with(".tmp"), 0, "a temporary file was left behind");
  hy_params_free(&ps);
  hy_params_free(&back);
}

static void expect_content(const char *path, const char *want) {
  hy_error err;
  char *text = hy_read_file(path, NULL, &err);
  cr_assert(text, "%s", err.msg);
  cr_assert_str_eq(text, want, "%s changed", path);
  free(text);
}

/* Symlinks to another file, planted at every name a writer could be expected to use: the final
 * name is replaced (the link, not its target), the temporary names are never opened. */
Test(checkpoint, symlinks_planted_in_the_directory_are_not_followed) {
  const char *victim = t_in_temp("victim.txt");
  hy_error err;
  cr_assert_eq(hy_write_file_atomic(victim, "precious", &err), 0, "%s", err.msg);
  hy_params ps;
  params(&ps, 4);
  char planted[3][300];
  const char *ckpt = t_in_temp("ckpt-00000009.h5"), *recipe = t_in_temp("recipe.toml");
  snprintf(planted[0], 300, "%s.tmp", ckpt);
  snprintf(planted[1], 300, "%s.tmp.%ld", ckpt, (long)getpid());
  snprintf(planted[2], 300, "%s.tmp", recipe);
  for (int i = 0; i < 3; i++) cr_assert_eq(symlink(victim, planted[i]), 0);
  cr_assert_eq(symlink(victim, ckpt), 0);
  cr_assert_eq(symlink(victim, recipe), 0);
  write_ckpt(ckpt, &ps);
  cr_assert_eq(hy_write_file_atomic(recipe, "x = 1\n", &err), 0, "%s", err.msg);
  expect_content(victim, "precious");
  struct stat st;
  cr_assert(lstat(ckpt, &st) == 0 && S_ISREG(st.st_mode),
            "the checkpoint is not a file of its own");
  cr_assert(lstat(recipe, &st) == 0 && S_ISREG(st.st_mode), "recipe.toml is not a file of its own");
  expect_content(recipe, "x = 1\n");
  for (int i = 0; i < 3; i++) cr_assert(lstat(planted[i], &st) == 0 && S_ISLNK(st.st_mode));
  /* nor is a lock file */
  cr_assert_eq(symlink(victim, t_in_temp(".lock")), 0);
  cr_assert_eq(hy_lock_dir(t_temp_path(), &err), -1);
  cr_assert(strstr(err.msg, ".lock: cannot open the run directory's lock"), "%s", err.msg);
  expect_content(victim, "precious");
  hy_params_free(&ps);
}

Test(checkpoint, writing_without_replacing_refuses_an_existing_file) {
  const char *path = t_in_temp("data.h5");
  hy_error err;
  cr_assert_eq(hy_write_bytes_atomic(path, "one", 3, false, &err), 0, "%s", err.msg);
  cr_assert_neq(hy_write_bytes_atomic(path, "two", 3, false, &err), 0);
  cr_assert(strstr(err.msg, "data.h5: already exists (not replaced)"), "%s", err.msg);
  expect_content(path, "one");
  cr_assert_eq(files_with(".tmp"), 0);
}

static void touch(const char *name) {
  hy_error err;
  cr_assert_eq(hy_write_file_atomic(t_in_temp(name), "", &err), 0, "%s", err.msg);
}

Test(checkpoint, pruning_leaves_another_runs_later_checkpoints) {
  hy_params ps;
  params(&ps, 5);
  touch("ckpt-00000100.h5"); /* another run's */
  touch("ckpt-00000200.h5");
  touch("ckpt-00000003.h5.tmp.0123456789abcdef"); /* a killed writer's */
  touch("ckpt-7.h5");                             /* not a name hyla writes */
  char path[300];
  for (int64_t step = 2; step <= 8; step += 2) {
    hy_checkpoint_path(path, sizeof path, t_temp_path(), step);
    write_ckpt(path, &ps);
    hy_checkpoint_prune(t_temp_path(), 2, step);
    cr_assert_eq(access(path, F_OK), 0, "step %lld: the run's newest was deleted", (long long)step);
  }
  const char *kept[] = {"ckpt-00000006.h5", "ckpt-00000008.h5", "ckpt-00000100.h5",
                        "ckpt-00000200.h5", "ckpt-7.h5"};
  for (int i = 0; i < 5; i++) cr_assert_eq(access(t_in_temp(kept[i]), F_OK), 0, "%s gone", kept[i]);
  cr_assert_neq(access(t_in_temp("ckpt-00000004.h5"), F_OK), 0);
  cr_assert_eq(files_with(".tmp"), 0);
  cr_assert_eq(hy_checkpoint_newest(t_temp_path()), 200);
  hy_params_free(&ps);
}

Test(checkpoint, setting_a_run_aside) {
  touch("ckpt-00000002.h5");
  touch("ckpt-00000004.h5");
  touch("metrics.jsonl");
  touch("notes.txt");
  const char *also[] = {"metrics.jsonl", "train.log", NULL};
  char moved[300];
  hy_error err;
  cr_assert_eq(hy_checkpoint_set_aside(t_temp_path(), also, moved, sizeof moved, &err), 0, "%s",
               err.msg);
  cr_assert_str_eq(moved, t_in_temp("previous-1"));
  cr_assert_eq(hy_checkpoint_newest(t_temp_path()), -1);
  cr_assert_eq(hy_checkpoint_newest(moved), 4);
  cr_assert_eq(access(t_in_temp("previous-1/metrics.jsonl"), F_OK), 0);
  cr_assert_eq(access(t_in_temp("notes.txt"), F_OK), 0, "not a run's file: stays");
  touch("ckpt-00000006.h5");
  cr_assert_eq(hy_checkpoint_set_aside(t_temp_path(), also, moved, sizeof moved, &err), 0, "%s",
               err.msg);
  cr_assert_str_eq(moved, t_in_temp("previous-2"));
  cr_assert_eq(hy_checkpoint_newest(moved), 6);
}
