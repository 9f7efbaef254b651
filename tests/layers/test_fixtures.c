/* Every mixer kind against a golden file from an independent PyTorch implementation
 * (scripts/reference/layers.py -> tests/fixtures/<kind>.h5, float64): the fixture's parameters are
 * copied into a hyla layer built from the fixture's configuration, and hyla's output, input
 * gradient and parameter gradients for the fixture's x and output gradient must match the
 * fixture's, in f32 and in f64, for every form of the layer (fused op with one chunk and with
 * several, step-by-step recurrence; fused and naive attention). */
#include "layers/model.h"
#include "tests/support.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void init(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
TestSuite(fixtures, .init = init, .fini = t_params_fini);

/* tests/layers/test_fixtures.c -> tests/fixtures/<kind>.h5 */
static void fixture_path(char *out, size_t n, const char *kind) {
  const char *file = __FILE__;
  const char *slash = strrchr(file, '/');
  int dir = slash ? (int)(slash - file) : 0;
  snprintf(out, n, "%.*s%s../fixtures/%s.h5", dir, file, slash ? "/" : "", kind);
}

/* ---- reading the fixture ---- */

static bool has_attr(hid_t f, const char *name) { return H5Aexists(f, name) > 0; }

static double attr_double(hid_t f, const char *name) {
  cr_assert(has_attr(f, name), "fixture: attribute '%s' is missing", name);
  double v = 0;
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  herr_t rc = H5Aread(a, H5T_NATIVE_DOUBLE, &v);
  H5Aclose(a);
  cr_assert(rc >= 0, "fixture: attribute '%s' is not a number", name);
  return v;
}

static int64_t attr_int(hid_t f, const char *name) {
  cr_assert(has_attr(f, name), "fixture: attribute '%s' is missing", name);
  long long v = 0;
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  herr_t rc = H5Aread(a, H5T_NATIVE_LLONG, &v);
  H5Aclose(a);
  cr_assert(rc >= 0, "fixture: attribute '%s' is not an integer", name);
  return (int64_t)v;
}

/* A string attribute (h5py writes variable-length strings) into out. */
static void attr_string(hid_t f, const char *name, char *out, size_t n) {
  cr_assert(has_attr(f, name), "fixture: attribute '%s' is missing", name);
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  hid_t ftype = H5Aget_type(a);
  hid_t mtype = H5Tcopy(H5T_C_S1);
  H5Tset_cset(mtype, H5Tget_cset(ftype)); /* h5py writes UTF-8: no conversion to ASCII */
  herr_t rc = -1;
  out[0] = '\0';
  if (H5Tget_class(ftype) == H5T_STRING && H5Tis_variable_str(ftype) > 0) {
    char *s = NULL;
    H5Tset_size(mtype, H5T_VARIABLE);
    rc = H5Aread(a, mtype, &s);
    if (rc >= 0 && s) snprintf(out, n, "%s", s);
    H5free_memory(s);
  } else if (H5Tget_class(ftype) == H5T_STRING) {
    size_t len = H5Tget_size(ftype);
    char *s = calloc(len + 1, 1);
    cr_assert(s);
    H5Tset_size(mtype, len + 1);
    rc = H5Aread(a, mtype, s);
    snprintf(out, n, "%s", s);
    free(s);
  }
  H5Tclose(mtype);
  H5Tclose(ftype);
  H5Aclose(a);
  cr_assert(rc >= 0, "fixture: attribute '%s' is not a string", name);
}

/* The dataset at path as an f64 step tensor, or NULL when there is none. */
static hy_tensor *read_dataset(hid_t f, const char *path) {
  if (H5Lexists(f, path, H5P_DEFAULT) <= 0) return NULL;
  hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
  cr_assert(d >= 0, "fixture: cannot open '%s'", path);
  hid_t space = H5Dget_space(d);
  int ndim = H5Sget_simple_extent_ndims(space);
  hsize_t dims[HY_MAX_DIMS] = {0};
  cr_assert(ndim >= 1 && ndim <= HY_MAX_DIMS, "fixture: '%s' has %d dimensions", path, ndim);
  H5Sget_simple_extent_dims(space, dims, NULL);
  hy_shape shape = {.ndim = ndim};
  for (int i = 0; i < ndim; i++) shape.d[i] = (int64_t)dims[i];
  hy_tensor *t = hy_empty(HY_F64, shape);
  herr_t rc = H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data);
  H5Sclose(space);
  H5Dclose(d);
  cr_assert(rc >= 0, "fixture: cannot read '%s'", path);
  return t;
}

static hy_tensor *dataset(hid_t f, const char *path) {
  hy_tensor *t = read_dataset(f, path);
  cr_assert(t, "fixture: dataset '%s' is missing", path);
  return t;
}

/* The names of the datasets under /params ("q_proj/weight", "gk_proj/1/bias", ...). */
enum { MAX_NAMES = 32 };
typedef struct {
  int n;
  char name[MAX_NAMES][HY_PARAM_NAME_MAX];
} name_list;

static herr_t collect_dataset(hid_t obj, const char *name, const H5O_info_t *info, void *data) {
  (void)obj;
  name_list *names = data;
  if (info->type != H5O_TYPE_DATASET) return 0;
  if (names->n == MAX_NAMES) return -1;
  snprintf(names->name[names->n++], HY_PARAM_NAME_MAX, "%s", name);
  return 0;
}

static name_list fixture_params(hid_t f) {
  name_list names = {0};
  hid_t g = H5Gopen2(f, "params", H5P_DEFAULT);
  cr_assert(g >= 0, "fixture: group /params is missing");
  herr_t rc = H5Ovisit(g, H5_INDEX_NAME, H5_ITER_INC, collect_dataset, &names);
  H5Gclose(g);
  cr_assert(rc >= 0, "fixture: cannot list /params (more than %d datasets?)", MAX_NAMES);
  return names;
}

/* ---- the check ---- */

typedef struct {
  const char *name;
  bool recurrent; /* linear kinds: the step-by-step reference */
  int64_t chunk;  /* linear kinds: tokens per chunk of the fused op */
  bool naive;     /* attn: the naive O(T^2) form */
} variant;

static const char *const PREFIX = "mixer/";

/* hyla's configuration from the fixture's attributes; *layer gets the block index. */
static hy_model_config config_of(hid_t f, const char *kind, hy_dtype dtype, variant v, int *layer) {
  char stored[32];
  attr_string(f, "kind", stored, sizeof stored);
  cr_assert_str_eq(stored, kind, "fixture: kind '%s' in %s.h5", stored, kind);
  hy_model_config c = hy_model_config_default();
  c.dtype = dtype;
  c.d_model = attr_int(f, "d_model");
  c.n_heads = attr_int(f, "heads");
  c.naive_attention = v.naive;
  *layer = 0;
  if (!strcmp(kind, "attn")) {
    c.rope_theta = attr_double(f, "rope_theta");
  } else if (!strcmp(kind, "gla")) {
    c.gla.heads = 0; /* the model's n_heads */
    c.gla.expand_k = attr_double(f, "expand_k");
    c.gla.expand_v = attr_double(f, "expand_v");
    c.gla.gate_rank = attr_int(f, "gate_rank");
    c.gla.gate_norm = attr_double(f, "gate_norm");
    c.gla.norm_eps = attr_double(f, "norm_eps");
    c.gla.chunk = v.chunk;
    c.gla.recurrent = v.recurrent;
  } else if (!strcmp(kind, "lightning")) {
    c.lightning.heads = 0;
    c.lightning.norm_eps = attr_double(f, "norm_eps");
    c.lightning.chunk = v.chunk;
    c.lightning.recurrent = v.recurrent;
    c.n_layers = (int)attr_int(f, "n_layers");
    *layer = (int)attr_int(f, "layer");
  } else if (!strcmp(kind, "linear")) {
    c.linear.heads = 0;
    attr_string(f, "feature_map", c.linear.feature_map, sizeof c.linear.feature_map);
    c.linear.norm_eps = attr_double(f, "norm_eps");
    c.linear.chunk = v.chunk;
    c.linear.recurrent = v.recurrent;
  } else if (!strcmp(kind, "conv")) {
    c.conv.kernel = attr_int(f, "kernel");
  } else if (!strcmp(kind, "titans_mal") || !strcmp(kind, "titans_mag") ||
             !strcmp(kind, "titans_mac")) {
    c.rope_theta = attr_double(f, "rope_theta");
    c.norm_eps = attr_double(f, "norm_eps");
    c.titans.chunk = attr_int(f, "chunk");
    c.titans.depth = attr_int(f, "depth");
    c.titans.expansion = attr_double(f, "expansion");
    c.titans.heads = attr_int(f, "memory_heads");
    c.titans.head_dim = 0; /* d_model / heads */
    c.titans.lr_max = attr_double(f, "lr_max");
    c.titans.window = attr_int(f, "window");
    c.titans.persistent = attr_int(f, "persistent");
    c.titans.reference = v.recurrent;
    if (!strcmp(kind, "titans_mac")) c.titans.segment = attr_int(f, "segment");
  } else if (!strcmp(kind, "rat")) {
    c.rat.heads = 0; /* the model's n_heads */
    c.rat.chunk = attr_int(f, "chunk");
    c.rat.n_groups = attr_int(f, "n_groups");
    c.rat.rope_theta = attr_double(f, "rope_theta");
    c.rat.naive = v.naive;
  } else if (!strcmp(kind, "sigmoid")) {
    c.sigmoid.bias_log_n = true;
    c.sigmoid.seq_len = attr_int(f, "bias_n");
    c.sigmoid.output_norm = attr_int(f, "output_norm") != 0;
    c.sigmoid.norm_eps = attr_double(f, "norm_eps");
    c.sigmoid.naive = v.naive;
  } else if (!strcmp(kind, "softplus")) {
    c.softplus.length_scale = true;
    c.softplus.train_len = attr_int(f, "train_len");
    c.softplus.power = attr_double(f, "power");
    c.softplus.naive = v.naive;
  } else if (!strcmp(kind, "sla")) {
    c.sla.block = attr_int(f, "block");
    c.sla.critical = attr_double(f, "critical");
    c.sla.negligible = attr_double(f, "negligible");
    attr_string(f, "feature_map", c.sla.feature_map, sizeof c.sla.feature_map);
    c.sla.naive = v.naive;
  } else {
    cr_assert_fail("no configuration for mixer kind '%s'", kind);
  }
  return c;
}

/* Builds the layer, loads the fixture's parameters, runs forward and backward and checks all. */
static void check(hid_t f, const char *kind, hy_dtype dtype, variant v, double tol) {
  const char *dt = hy_dtype_name(dtype);
  int layer_index;
  hy_model_config cfg = config_of(f, kind, dtype, v, &layer_index);
  const hy_mixer_kind *mk = hy_mixer_find(kind);
  cr_assert(mk, "'%s' is not a mixer kind (%s)", kind, hy_mixer_names());
  hy_rng rng = hy_rng_new(7);
  void *layer = mk->create(&t_params, "mixer", &cfg, layer_index, &rng);

  /* The same parameter names and shapes on both sides; then the fixture's values. */
  name_list names = fixture_params(f);
  cr_assert_eq(names.n, t_params.n, "%s: the fixture has %d parameters, hyla %d", kind, names.n,
               t_params.n);
  for (int i = 0; i < names.n; i++) {
    char hname[2 * HY_PARAM_NAME_MAX], fpath[2 * HY_PARAM_NAME_MAX];
    snprintf(hname, sizeof hname, "%s%s", PREFIX, names.name[i]);
    snprintf(fpath, sizeof fpath, "params/%s", names.name[i]);
    hy_param *p = hy_params_find(&t_params, hname);
    cr_assert(p, "%s: fixture parameter '%s' has no hyla parameter '%s'", kind, names.name[i],
              hname);
    hy_tensor *ref = dataset(f, fpath);
    cr_assert(hy_same_shape(p->t, ref), "%s: '%s' is %s in hyla, %s in the fixture", kind, hname,
              hy_describe(p->t), hy_describe(ref));
    hy_copy_into(p->t, t_cast(ref, dtype));
  }
  for (int i = 0; i < t_params.n; i++)
    cr_assert(!strncmp(t_params.items[i].name, PREFIX, strlen(PREFIX)),
              "%s: hyla parameter '%s' is outside '%s'", kind, t_params.items[i].name, PREFIX);

  hy_tensor *x = t_param(t_cast(dataset(f, "x"), dtype));
  hy_tensor *gy = t_cast(dataset(f, "gy"), dtype);
  hy_tensor *y = mk->forward(layer, x);
  cr_assert(y->dtype == dtype, "%s: output is %s", kind, hy_describe(y));
  hy_backward_with(y, gy);

  /* Every error, measured before any assertion so that a failure reports them all. */
  hy_tensor *ref_y = dataset(f, "y"), *ref_dx = dataset(f, "grad/x");
  cr_assert(hy_same_shape(y, ref_y), "%s: y is %s, expected %s", kind, hy_describe(y),
            hy_describe(ref_y));
  cr_assert(x->grad, "%s: x got no gradient", kind);
  double err_y = t_rel_norm_err(y, ref_y), err_dx = t_rel_norm_err(x->grad, ref_dx);
  double worst = 0;
  const char *worst_name = "-";
  double err_p[MAX_NAMES];
  for (int i = 0; i < t_params.n; i++) {
    char fpath[2 * HY_PARAM_NAME_MAX];
    snprintf(fpath, sizeof fpath, "grad/params/%s", t_params.items[i].name + strlen(PREFIX));
    hy_tensor *g = t_params.items[i].t->grad, *ref = dataset(f, fpath);
    cr_assert(g, "%s: '%s' got no gradient", kind, t_params.items[i].name);
    cr_assert(hy_same_shape(g, ref), "%s: gradient of '%s' is %s, expected %s", kind,
              t_params.items[i].name, hy_describe(g), hy_describe(ref));
    err_p[i] = t_rel_norm_err(g, ref);
    if (!(err_p[i] <= worst)) worst = err_p[i], worst_name = t_params.items[i].name;
  }
  fprintf(stderr, "fixture %-9s %-9s %s: y %.2e  dx %.2e  params worst %.2e (%s)\n", kind, v.name,
          dt, err_y, err_dx, worst, worst_name);

  cr_expect(err_y <= tol, "%s (%s, %s): y relative error %.3g > %.3g", kind, v.name, dt, err_y,
            tol);
  cr_expect(err_dx <= tol, "%s (%s, %s): dx relative error %.3g > %.3g", kind, v.name, dt, err_dx,
            tol);
  for (int i = 0; i < t_params.n; i++)
    cr_expect(err_p[i] <= tol, "%s (%s, %s): gradient of '%s' relative error %.3g > %.3g", kind,
              v.name, dt, t_params.items[i].name, err_p[i], tol);

  mk->destroy(layer);
  hy_params_free(&t_params);
  hy_step_reset();
}

static const variant ATTN_FORMS[] = {{"fused", false, 0, false}, {"naive", false, 0, true}};
/* T = 13: chunk 64 is one partial chunk, chunk 4 is three full chunks and a partial one. */
static const variant LINEAR_FORMS[] = {
    {"chunk64", false, 64, false}, {"chunk4", false, 4, false}, {"recurrent", true, 64, false}};

static void check_kind(const char *kind) {
  char path[4096];
  fixture_path(path, sizeof path, kind);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  cr_assert(f >= 0, "cannot open %s (regenerate: /usr/bin/python3 scripts/reference/layers.py)",
            path);
  bool attn = !strcmp(kind, "attn");
  const variant *forms = attn ? ATTN_FORMS : LINEAR_FORMS;
  size_t n =
      attn ? sizeof ATTN_FORMS / sizeof *ATTN_FORMS : sizeof LINEAR_FORMS / sizeof *LINEAR_FORMS;
  for (size_t i = 0; i < n; i++) {
    check(f, kind, HY_F32, forms[i], 1e-5);
    check(f, kind, HY_F64, forms[i], 1e-10);
  }
  H5Fclose(f);
}

/* Titans: the chunk is part of the layer's math (the fixture's), so the forms are the chunked
 * memory and its token-by-token reference. */
static const variant TITANS_FORMS[] = {{"chunked", false, 0, false}, {"reference", true, 0, false}};

static void check_titans(const char *kind) {
  char path[4096];
  fixture_path(path, sizeof path, kind);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  cr_assert(f >= 0, "cannot open %s (regenerate: /usr/bin/python3 scripts/reference/titans.py)",
            path);
  for (size_t i = 0; i < sizeof TITANS_FORMS / sizeof *TITANS_FORMS; i++) {
    check(f, kind, HY_F32, TITANS_FORMS[i], 1e-5);
    check(f, kind, HY_F64, TITANS_FORMS[i], 1e-10);
  }
  H5Fclose(f);
}

/* RAT: the chunk is part of the layer's math (the fixture's), so the forms are the fused op and
 * the plain form built from ops (ATTN_FORMS' naive flag). */
static void check_rat(void) {
  char path[4096];
  fixture_path(path, sizeof path, "rat");
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  cr_assert(f >= 0, "cannot open %s (regenerate: /usr/bin/python3 scripts/reference/rat.py)", path);
  for (size_t i = 0; i < sizeof ATTN_FORMS / sizeof *ATTN_FORMS; i++) {
    check(f, "rat", HY_F32, ATTN_FORMS[i], 1e-5);
    check(f, "rat", HY_F64, ATTN_FORMS[i], 1e-10);
  }
  H5Fclose(f);
}

/* Sigmoid, softplus, sla: the fused op and the naive form (ATTN_FORMS' naive flag). */
static void check_softmax_variant(const char *kind) {
  char path[4096];
  fixture_path(path, sizeof path, kind);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  cr_assert(f >= 0,
            "cannot open %s (regenerate: /usr/bin/python3 scripts/reference/softmax_variants.py)",
            path);
  for (size_t i = 0; i < sizeof ATTN_FORMS / sizeof *ATTN_FORMS; i++) {
    check(f, kind, HY_F32, ATTN_FORMS[i], 1e-5);
    check(f, kind, HY_F64, ATTN_FORMS[i], 1e-10);
  }
  H5Fclose(f);
}

/* The short convolution has one form, built from ops. */
static void check_conv(void) {
  char path[4096];
  fixture_path(path, sizeof path, "conv");
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  cr_assert(f >= 0, "cannot open %s (regenerate: /usr/bin/python3 scripts/reference/layers.py)",
            path);
  variant ops = {"ops", false, 0, false};
  check(f, "conv", HY_F32, ops, 1e-5);
  check(f, "conv", HY_F64, ops, 1e-10);
  H5Fclose(f);
}

Test(fixtures, attn) { check_kind("attn"); }
Test(fixtures, gla) { check_kind("gla"); }
Test(fixtures, lightning) { check_kind("lightning"); }
Test(fixtures, linear) { check_kind("linear"); }
Test(fixtures, rat) { check_rat(); }
Test(fixtures, titans_mal) { check_titans("titans_mal"); }
Test(fixtures, titans_mag) { check_titans("titans_mag"); }
Test(fixtures, titans_mac) { check_titans("titans_mac"); }
Test(fixtures, sigmoid) { check_softmax_variant("sigmoid"); }
Test(fixtures, softplus) { check_softmax_variant("softplus"); }
Test(fixtures, sla) { check_softmax_variant("sla"); }
Test(fixtures, conv) { check_conv(); }
