/* Reading a damaged checkpoint: a parameter stored as anything but float32 or float64 (an integer,
 * or a float type grown to an absurd size by damage) is refused by name before HDF5 converts it. */
#include "layers/model.h"
#include "recipes/recipe.h"
#include "run/checkpoint.h"
#include "tests/support.h"

#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char dir[256], path[300];
static hy_model *model;

static void init(void) {
  snprintf(dir, sizeof dir, "/tmp/hyla-ckpt-read-XXXXXX");
  cr_assert(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/ckpt.h5", dir);
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
  unlink(path);
  rmdir(dir);
  H5close();
}

TestSuite(checkpoint_read, .init = init, .fini = fini);

/* Store the first parameter again with this type, same shape. */
static const char *replace_first(hid_t type) {
  static char name[300];
  snprintf(name, sizeof name, "/params/%s", model->params.items[0].name);
  const hy_tensor *t = model->params.items[0].t;
  hsize_t dims[HY_MAX_DIMS];
  for (int i = 0; i < t->ndim; i++) dims[i] = (hsize_t)t->shape[i];
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  cr_assert(f >= 0);
  cr_assert(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
  hid_t space = H5Screate_simple(t->ndim, dims, NULL);
  hid_t set = H5Dcreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  cr_assert(set >= 0);
  H5Dclose(set);
  H5Sclose(space);
  H5Fclose(f);
  return name;
}

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
