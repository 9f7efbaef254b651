/* Packed documents (hy_mixer_forward with positions): for every mixer kind, rows holding several
 * documents give, for every token, the output and the gradients (input and every parameter) of
 * running each document alone (f64, 1e-10), with documents starting at a row's start, inside a
 * chunk, on a chunk edge, one token apart (a document of one token), and a row that is one
 * document; and the same with the documents padded to a few lengths, as on the GPU. */
#include "layers/mixer.h"
#include "layers/model.h"
#include "tests/support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(documents, .fini = hy_step_reset);

enum { B = 3, T = 16, D_MODEL = 8 };

/* Documents start where a row's positions are 0: row 0 at 0, 3 (inside a chunk of 4), 8 (a chunk
 * edge) and 9 (one token after); row 1 at 0, 4, 5 and 13; row 2 is one document. */
static const int STARTS[B][5] = {{0, 3, 8, 9, -1}, {0, 4, 5, 13, -1}, {0, -1}};

static hy_tensor *positions(void) {
  hy_tensor *p = hy_empty(HY_I32, HY_SHAPE(B, T));
  for (int b = 0; b < B; b++) {
    int pos = 0, next = 1;
    for (int t = 0; t < T; t++) {
      if (STARTS[b][next] == t) pos = 0, next++;
      ((int32_t *)p->data)[b * T + t] = pos++;
    }
  }
  return p;
}

static hy_model_config config(void) {
  hy_model_config c = hy_model_config_default();
  c.dtype = HY_F64;
  c.d_model = D_MODEL;
  c.n_heads = 2;
  c.init_std = 0.3;
  c.gla.chunk = c.lightning.chunk = c.linear.chunk = 4;
  c.gla.gate_rank = 4;
  c.rat.chunk = 4;
  c.sla.block = 4;
  c.titans.chunk = 2;
  c.titans.segment = 4;
  c.titans.window = 4;
  c.titans.persistent = 2;
  c.titans.lr_max = 0.3;
  return c;
}

/* The input's gradient and every parameter's, copied out and cleared. */
static void take_grads(hy_params *ps, hy_tensor *x, hy_tensor **g) {
  g[0] = hy_copy(x->grad);
  x->grad = NULL;
  for (int i = 0; i < ps->n; i++) {
    hy_tensor *pg = ps->items[i].t->grad;
    g[1 + i] = pg ? hy_copy(pg) : NULL;
  }
  hy_params_zero_grad(ps);
}

static void check_kind(const char *name) {
  const hy_mixer_kind *kind = hy_mixer_find(name);
  cr_assert(kind, "no kind %s", name);
  hy_model_config cfg = config();
  hy_params ps = {0};
  hy_rng rng = hy_rng_new(3);
  void *mixer = kind->create(&ps, "mixer", &cfg, 1, &rng);
  for (int i = 0; i < ps.n; i++) /* gains, biases and persistent tokens off their initial values */
    if (strstr(ps.items[i].name, "norm") || strstr(ps.items[i].name, "bias") ||
        strstr(ps.items[i].name, "persistent"))
      hy_fill_normal(ps.items[i].t, &rng, 0.5, 0.3);
  hy_tensor *x = t_param(t_randn(HY_F64, HY_SHAPE(B, T, D_MODEL), 4));
  hy_tensor *gy = t_randn(HY_F64, HY_SHAPE(B, T, D_MODEL), 5);
  hy_tensor *packed_g[64], *alone_g[64];
  cr_assert(ps.n < 63);

  hy_tensor *pos = positions();
  hy_mixer_set_positions(pos, pos);
  hy_tensor *packed = hy_mixer_forward(kind, mixer, x);
  hy_mixer_set_positions(NULL, NULL);
  hy_backward_with(packed, gy);
  take_grads(&ps, x, packed_g);

  /* each document alone, a sequence of one */
  hy_tensor *rows[B];
  for (int b = 0; b < B; b++) {
    hy_tensor *docs[5];
    int n = 0;
    for (; STARTS[b][n] >= 0 && n < 5; n++) {
      int lo = STARTS[b][n], hi = n + 1 < 5 && STARTS[b][n + 1] >= 0 ? STARTS[b][n + 1] : T;
      docs[n] = kind->forward(mixer, hy_slice(hy_slice(x, 0, b, b + 1), 1, lo, hi));
    }
    rows[b] = n == 1 ? docs[0] : hy_concat(n, docs, 1);
  }
  hy_tensor *alone = hy_concat(B, rows, 0);
  hy_backward_with(alone, gy);
  take_grads(&ps, x, alone_g);

  char what[160];
  snprintf(what, sizeof what, "%s: output", name);
  t_expect_close(packed, alone, 1e-10, what);
  for (int i = 0; i <= ps.n; i++) {
    snprintf(what, sizeof what, "%s: gradient of %s", name, i ? ps.items[i - 1].name : "input");
    cr_assert((packed_g[i] == NULL) == (alone_g[i] == NULL), "%s: one side has none", what);
    if (packed_g[i]) t_expect_close(packed_g[i], alone_g[i], 1e-10, what);
  }
  /* and the documents do change the result: the rows as one stream differ */
  hy_no_grad_begin();
  hy_tensor *stream = kind->forward(mixer, x);
  hy_no_grad_end();
  cr_assert(t_rel_norm_err(stream, alone) > 1e-6, "%s: documents and one stream agree", name);
  kind->destroy(mixer);
  hy_params_free(&ps);
  hy_step_reset();
}

static int every_kind(void) {
  char names[256];
  snprintf(names, sizeof names, "%s", hy_mixer_names());
  int kinds = 0;
  for (char *save = NULL, *k = strtok_r(names, ", ", &save); k; k = strtok_r(NULL, ", ", &save)) {
    check_kind(k);
    kinds++;
  }
  return kinds;
}

Test(documents, every_kind_runs_each_document_alone) {
  int kinds = every_kind();
  cr_log_info("%d kinds keep packed documents apart", kinds);
  cr_assert_geq(kinds, 11);
}

/* As the GPU runs them: documents padded at their end to power-of-two lengths (3 -> 4, 5 -> 8,
 * 7 -> 8 here) give their tokens what each document alone gives. */
Test(documents, padded_documents_run_as_each_alone) {
  hy_mixer_pad_documents(1);
  every_kind();
  hy_mixer_pad_documents(-1);
}
