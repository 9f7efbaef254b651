/* Reading a damaged checkpoint: a parameter stored as anything but float32 or float64 (an integer,
 * or a float type grown to an absurd size by damage) is refused by name before HDF5 converts it. */
#include "layers/model.h"
#include "recipes/recipe.h"
#include "run/checkpoint.h"
#include "tests/support.h"

#include <hdf5.h>
#include <stdio.h>
#include <string.h>

static char path[512];
static hy_model *model;

static void init(void) {
  t_temp_init();
  snprintf(path, sizeof path, "%s", t_in_temp("ckpt.h5"));
  const char *sets[] = {"model.d_model=8", "model.layers=[\"attn\"]", "model.mlp_multiple=8"};
  hy_recipe r;
  hy_error err;
  cr_assert_eq(hy_recipe_parse("", "test", 3, sets, &r, &err), 0, "%s", err.msg);
  hy_model_config cfg = hy_recipe_model_config(&r);
  model = hy_model_new(&cfg, 0);
  hy_ckpt_meta meta = {.step = 1, .recipe = ""};
  cr_assert_eq(hy_checkpoint_write(path, &model->params, NULL, &meta, &err), 0, "%s", err.msg);
}

static void fini(void) {
  hy_model_free(model);
  t_temp_fini();
}

TestSuite(checkpoint_read, .init = init, .fini = fini);

/* Store the first parameter again with this type and layout (dcpl), same shape, unwritten. */
static const char *replace_first_as(hid_t type, hid_t dcpl) {
  static char name[300];
  snprintf(name, sizeof name, "/params/%s", model->params.items[0].name);
  const hy_tensor *t = model->params.items[0].t;
  hsize_t dims[HY_MAX_DIMS];
  for (int i = 0; i < t->ndim; i++) dims[i] = (hsize_t)t->shape[i];
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  cr_assert(f >= 0);
  cr_assert(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
  hid_t space = H5Screate_simple(t->ndim, dims, NULL);
  hid_t set = H5Dcreate2(f, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  cr_assert(set >= 0);
  H5Dclose(set);
  H5Sclose(space);
  H5Fclose(f);
  return name;
}

static const char *replace_first(hid_t type) { return replace_first_as(type, H5P_DEFAULT); }

static void expect_refused(const char *name) {
  hy_error err;
  cr_assert_neq(hy_checkpoint_load(path, &model->params, NULL, &err), 0);
  char want[400];
  snprintf(want, sizeof want, "%s is not a float32 or float64 dataset", name);
  cr_assert(strstr(err.msg, want), "message '%s' lacks '%s'", err.msg, want);
}

Test(checkpoint_read, a_parameter_of_integers_is_refused) {
  expect_refused(replace_first(H5T_STD_I32LE));
}

Test(checkpoint_read, a_float_of_absurd_size_is_refused) {
  hid_t wide = H5Tcopy(H5T_IEEE_F32LE);
  cr_assert(H5Tset_size(wide, 64) >= 0);
  const char *name = replace_first(wide);
  H5Tclose(wide);
  expect_refused(name);
}

Test(checkpoint_read, the_file_as_written_loads) {
  hy_error err;
  cr_assert_eq(hy_checkpoint_load(path, &model->params, NULL, &err), 0, "%s", err.msg);
}

static void expect_error(const char *want) {
  hy_error err;
  cr_assert_neq(hy_checkpoint_load(path, &model->params, NULL, &err), 0);
  cr_assert(strstr(err.msg, want), "message '%s' lacks '%s'", err.msg, want);
}

/* Storage never written reads back as zeros without an error from HDF5: refused by name. */
Test(checkpoint_read, a_parameter_never_written_is_refused) {
  const char *name = replace_first(H5T_IEEE_F32LE);
  char want[400];
  snprintf(want, sizeof want, "ckpt.h5: %s was never written", name);
  expect_error(want);
}

Test(checkpoint_read, a_parameter_whose_chunks_were_never_written_is_refused) {
  hsize_t chunk[HY_MAX_DIMS];
  const hy_tensor *t = model->params.items[0].t;
  for (int i = 0; i < t->ndim; i++) chunk[i] = (hsize_t)t->shape[i];
  chunk[0] = chunk[0] > 1 ? chunk[0] / 2 : 1;
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, t->ndim, chunk);
  H5Pset_fletcher32(dcpl); /* a checksum of each chunk, but no chunk to check */
  const char *name = replace_first_as(H5T_IEEE_F32LE, dcpl);
  H5Pclose(dcpl);
  char want[400];
  snprintf(want, sizeof want, "ckpt.h5: %s: 2 of its 2 chunks were never written", name);
  expect_error(want);
}

/* Replace root attribute `name` by an array of n int64 (n = 0: a null dataspace), or a float. */
static void replace_attr(const char *name, int n, bool floats) {
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  cr_assert(f >= 0);
  cr_assert(H5Adelete(f, name) >= 0);
  hsize_t dim = (hsize_t)n;
  int64_t values[HY_CKPT_STATE_MAX + 1] = {1, 2, 3};
  hid_t space = n ? H5Screate_simple(1, &dim, NULL) : H5Screate(H5S_NULL);
  hid_t type = floats ? H5T_IEEE_F64LE : H5T_STD_I64LE;
  hid_t a = H5Acreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  cr_assert(a >= 0);
  if (n) cr_assert(H5Awrite(a, H5T_NATIVE_INT64, values) >= 0);
  H5Aclose(a);
  H5Sclose(space);
  H5Fclose(f);
}

static void expect_meta_error(const char *want) {
  hy_ckpt_meta meta;
  hy_error err;
  cr_assert_neq(hy_checkpoint_read_meta(path, &meta, &err), 0);
  cr_assert(strstr(err.msg, want), "message '%s' lacks '%s'", err.msg, want);
}

/* One value where one is meant: not the first of several, nor a read past the one hyla holds. */
Test(checkpoint_read, attributes_of_several_values_are_refused) {
  replace_attr("step", 3, false);
  expect_meta_error("ckpt.h5: attribute 'step' is an array (of 3), expected a single value");
  replace_attr("step", 0, false);
  expect_meta_error("ckpt.h5: attribute 'step' holds no value");
  replace_attr("step", 1, true);
  expect_meta_error("ckpt.h5: attribute 'step' is not an integer");
}

Test(checkpoint_read, a_loader_state_of_another_type_or_size_is_refused) {
  replace_attr("loader_state", 2, true);
  expect_meta_error("ckpt.h5: attribute 'loader_state' is not an integer");
  replace_attr("loader_state", HY_CKPT_STATE_MAX + 1, false);
  char want[200];
  snprintf(want, sizeof want, "attribute 'loader_state' holds %d values, expected at most %d",
           HY_CKPT_STATE_MAX + 1, HY_CKPT_STATE_MAX);
  expect_meta_error(want);
}

/* Store the first parameter again as a dataset of rank `rank` with every dimension `dim` (chunked,
 * so that HDF5 allocates nothing for it). */
static void replace_first_shape(int rank, hsize_t dim) {
  char name[300];
  snprintf(name, sizeof name, "/params/%s", model->params.items[0].name);
  hsize_t dims[H5S_MAX_RANK], chunk[H5S_MAX_RANK];
  for (int i = 0; i < rank; i++) dims[i] = dim, chunk[i] = 1;
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  cr_assert(f >= 0);
  cr_assert(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
  hid_t space = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  cr_assert(H5Pset_chunk(dcpl, rank, chunk) >= 0);
  hid_t set = H5Dcreate2(f, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  cr_assert(set >= 0);
  H5Dclose(set);
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Fclose(f);
}

static void expect_shape_refused(const char *have) {
  hy_error err;
  cr_assert_neq(hy_checkpoint_load(path, &model->params, NULL, &err), 0);
  const hy_tensor *t = model->params.items[0].t;
  char want[600];
  snprintf(want, sizeof want, "%s has shape %s, the recipe's model needs [%lld",
           model->params.items[0].name, have, (long long)t->shape[0]);
  cr_assert(strstr(err.msg, want), "message '%s' lacks '%s'", err.msg, want);
}

/* Any rank HDF5 takes (up to 32) is shown whole, where the old message read past its 8. */
Test(checkpoint_read, a_parameter_of_rank_32_is_refused_with_its_shape) {
  replace_first_shape(H5S_MAX_RANK, 1);
  char have[200] = "[1";
  for (int i = 1; i < H5S_MAX_RANK; i++) strcat(have, ", 1");
  strcat(have, "]");
  expect_shape_refused(have);
}

/* Dimensions whose digits overflow the message's buffer are cut with "...", where the old message
 * wrote past the buffer. */
Test(checkpoint_read, a_shape_too_long_to_show_is_cut) {
  replace_first_shape(8, 1000000000000000000ULL);
  expect_shape_refused("[1000000000000000000, 1000000000000000000, 1000000000000000000, "
                       "1000000000000000000, 1000000000000000000, ...]");
}
