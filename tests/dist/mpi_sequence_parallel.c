/* Sequence parallelism against one process, under mpirun -np W (W = 1, 2, 4): for each layer kind
 * (LASP-2 for gla, lightning and linear; LASP-2H for attn, sigmoid and softplus; RAT's chunk
 * summaries; SLA's own form; the memory and the window handed from rank to rank for titans; the
 * whole sequence gathered for conv, which has no form of its own) and
 * for a whole hybrid model, the outputs, the input gradient and every parameter gradient of a
 * sequence split over W ranks equal the single-process values (f64: relative error <= 1e-10).
 * Also: the state AllGather of a GLA layer sends the same bytes at T = 256 and T = 4096, and RAT,
 * SLA and Titans layers the bytes of docs/distributed.md's formulas. A plain MPI program
 * (Criterion runs tests in forked children, which MPI does not allow); exits 1 on a failure.
 * LASP-2 runs with its collectives overlapped (the default) and waited for at once, and the tape
 * shows the overlap: the GLA op between the AllGather's start and its wait. */
#include "autograd/tape.h"
#include "dist/collective_ops.h"
#include "dist/dist.h"
#include "tests/dist/mpi_check.h"
#include "layers/model.h"
#include "tensor/ops.h"
#include "tensor/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect(double err, double tol, const char *what, const char *kind) {
  bool ok = err <= tol;
  if (!ok) failures++;
  if (D.rank == 0 || !ok)
    printf("rank %d %s %-9s %-24s rel err %.3g (<= %.0e)\n", D.rank, ok ? "ok  " : "FAIL", kind,
           what, err, tol);
}

static hy_model_config config(void) {
  hy_model_config c = hy_model_config_default();
  c.dtype = HY_F64;
  c.vocab = 19;
  c.d_model = 16;
  c.n_heads = 2;
  c.n_layers = 4;
  c.init_std = 0.3;
  c.gla.chunk = c.lightning.chunk = c.linear.chunk = 8;
  c.gla.gate_rank = 4;
  c.rat.chunk = 8;
  c.titans.chunk = 8;
  c.titans.window = 16;
  c.titans.persistent = 2;
  c.titans.lr_max = 0.1; /* inner steps that stay finite over 20 chunks of x ~ N(0, 1) */
  return c;
}

/* Each rank's slice of x [B, T, ...] along T, as a fresh leaf. */
static hy_tensor *local_slice(hy_tensor *x, int64_t *offset) {
  int64_t T = x->shape[1], n = T / D.sp;
  *offset = D.sp_rank * n;
  hy_tensor *s = hy_contiguous(hy_slice(x, 1, *offset, *offset + n));
  hy_tensor *leaf = hy_empty_like(s);
  hy_copy_into(leaf, s);
  leaf->requires_grad = true;
  return leaf;
}

/* Sum every parameter gradient over the sequence group (they are replicated; a rank a parameter
 * did not reach, as M_0 past the first rank, holds zeros). */
static void reduce_param_grads(hy_params *ps) {
  for (int i = 0; i < ps->n; i++)
    hy_allreduce_sum(D.sp_group, HY_CPU, hy_grad(ps->items[i].t)->data, hy_numel(ps->items[i].t),
                     ps->items[i].t->dtype);
}

/* What the split run of the last check_layer sent, by collective kind. */
static uint64_t last_sent[HY_COLL_KINDS];

/* One layer of `kind` made from cfg on a sequence of T; `label` names the case. */
static void check_layer(const hy_model_config *cfg, const char *kind, int64_t T,
                        const char *label) {
  hy_rng rng = hy_rng_new(11);
  hy_params ps = {0};
  const hy_mixer_kind *k = hy_mixer_find(kind);
  void *layer = k->create(&ps, "mixer", cfg, 1, &rng);
  for (int i = 0; i < ps.n; i++) /* gains and gate biases off their initial values */
    if (strstr(ps.items[i].name, "norm") || strstr(ps.items[i].name, "bias"))
      hy_fill_normal(ps.items[i].t, &rng, 1.0, 0.3);
  hy_tensor *x = hy_empty(HY_F64, HY_SHAPE(2, T, 16)), *gy = hy_empty_like(x);
  hy_fill_normal(x, &rng, 0, 1);
  hy_fill_normal(gy, &rng, 0, 1);
  x->requires_grad = true;
  /* one process: the whole sequence on every rank */
  hy_sequence_set(NULL, 0);
  hy_tensor *y = hy_mixer_forward(k, layer, x);
  hy_backward_with(y, gy);
  hy_tensor **ref = calloc((size_t)ps.n, sizeof *ref);
  for (int i = 0; i < ps.n; i++) {
    ref[i] = hy_empty_like(ps.items[i].t->grad);
    hy_copy_into(ref[i], ps.items[i].t->grad);
    hy_fill(ps.items[i].t->grad, 0.0);
  }
  /* the sequence split over the sp ranks */
  int64_t offset;
  hy_tensor *xl = local_slice(x, &offset),
            *gl = hy_contiguous(hy_slice(gy, 1, offset, offset + xl->shape[1]));
  hy_sequence_set(D.sp_group, offset);
  hy_dist_reset_bytes();
  hy_tensor *yl = hy_mixer_forward(k, layer, xl);
  hy_backward_with(yl, gl);
  for (int c = 0; c < HY_COLL_KINDS; c++) last_sent[c] = hy_dist_bytes(c);
  hy_sequence_set(NULL, 0);
  reduce_param_grads(&ps);
  int64_t n = xl->shape[1];
  expect(rel_err(yl, hy_contiguous(hy_slice(y, 1, offset, offset + n))), 1e-10, "output", label);
  expect(rel_err(xl->grad, hy_contiguous(hy_slice(x->grad, 1, offset, offset + n))), 1e-10,
         "input gradient", label);
  double worst = 0;
  for (int i = 0; i < ps.n; i++) worst = fmax(worst, rel_err(ps.items[i].t->grad, ref[i]));
  expect(worst, 1e-10, "parameter gradients", label);
  free(ref);
  k->destroy(layer);
  hy_params_free(&ps);
  hy_step_reset();
}

static void check_mixer(const char *kind, int64_t T) {
  hy_model_config cfg = config();
  check_layer(&cfg, kind, T, kind);
}

/* Where on the tape of a GLA layer's split forward the AllGather starts, the chunked op runs and
 * the AllGather is waited for: with the overlap, start < op < wait (and in the backward, which
 * runs the tape in reverse, the reduce-scatter starts at the wait's node and is waited for at the
 * start's, around the op's backward); without it, start < wait < op. */
static void check_overlap_order(bool overlap) {
  if (D.sp == 1) return; /* no collective */
  hy_model_config cfg = config();
  hy_rng rng = hy_rng_new(3);
  hy_params ps = {0};
  const hy_mixer_kind *k = hy_mixer_find("gla");
  void *layer = k->create(&ps, "mixer", &cfg, 1, &rng);
  hy_tensor *x = hy_empty(HY_F64, HY_SHAPE(1, 16, 16));
  hy_fill_normal(x, &rng, 0, 1);
  x->requires_grad = true;
  hy_sequence_set_overlap(overlap);
  hy_sequence_set(D.sp_group, D.sp_rank * 16);
  int64_t from = hy_tape_size();
  hy_mixer_forward(k, layer, x);
  hy_sequence_set(NULL, 0);
  hy_sequence_set_overlap(true);
  int64_t start = -1, op = -1, wait = -1;
  for (int64_t i = from; i < hy_tape_size(); i++) {
    const char *name = hy_tape_op(i);
    if (!strcmp(name, "allgather")) start = i;
    if (!strcmp(name, "gla")) op = i;
    if (!strcmp(name, "allgather wait")) wait = i;
  }
  bool found = start >= 0 && op >= 0 && wait >= 0;
  bool ordered = overlap ? start < op && op < wait : start < wait && wait < op;
  bool ok = found && ordered;
  if (!ok) failures++;
  if (D.rank == 0 || !ok)
    printf("rank %d %s gla tape%s: allgather at %lld, gla at %lld, allgather wait at %lld\n",
           D.rank, ok ? "ok  " : "FAIL", overlap ? "" : " (no overlap)", (long long)start,
           (long long)op, (long long)wait);
  k->destroy(layer);
  hy_params_free(&ps);
  hy_step_reset();
}

/* SLA's own form: slices of several blocks and of exactly one (T / 4 = block at 4 ranks), each
 * feature map, fractions that make every class (and none but the diagonal, and all critical),
 * the naive form. (A slice that is not whole blocks is the recipe's error.) */
static void check_sla(void) {
  static const struct {
    int64_t T, block;
    double critical, negligible;
    const char *map;
    bool naive;
  } cases[] = {
      {128, 8, 0.3, 0.2, "softmax", false}, {32, 8, 0.3, 0.2, "elu", false},
      {96, 4, 0.25, 0.5, "relu", false},    {64, 4, 0, 0, "softmax", false},
      {64, 8, 1, 0, "elu", false},          {64, 4, 0.3, 0.3, "softmax", true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    hy_model_config cfg = config();
    cfg.sla.block = cases[i].block;
    cfg.sla.critical = cases[i].critical;
    cfg.sla.negligible = cases[i].negligible;
    snprintf(cfg.sla.feature_map, sizeof cfg.sla.feature_map, "%s", cases[i].map);
    cfg.sla.naive = cases[i].naive;
    char label[64];
    snprintf(label, sizeof label, "sla T%lld b%lld %.2g/%.2g %s%s", (long long)cases[i].T,
             (long long)cases[i].block, cases[i].critical, cases[i].negligible, cases[i].map,
             cases[i].naive ? " naive" : "");
    check_layer(&cfg, "sla", cases[i].T, label);
  }
}

/* RAT's own form: slices of several chunks and of exactly one, heads sharing q/k groups, the plain
 * (naive) form. */
static void check_rat(void) {
  hy_model_config c = config();
  check_layer(&c, "rat", 8 * D.sp, "rat"); /* one chunk of 8 per rank */
  c.n_heads = 4;
  c.rat.chunk = 4;
  c.rat.rope_theta = 7.0;             /* a small base turns even the early chunks a lot */
  check_layer(&c, "rat", 160, "rat"); /* two heads per group, 10 chunks per rank at sp = 4 */
  c.rat.naive = true;
  check_layer(&c, "rat", 32, "rat");
}

/* ---- Titans: the memory handed from rank to rank, the window's keys and values before ---- */

/* The positions before `at` a query sees (layers/titans.c): window - 1, or all with window 0. */
static int64_t seen_before(int64_t window, int64_t at) {
  return window > 0 && window - 1 < at ? window - 1 : at;
}

/* The bytes rank r sends for one Titans layer, forward and backward, for B sequences of T tokens
 * in f64 (docs/distributed.md): the memory's state (weights and momentum, 2 P values per memory
 * head) to the next rank, and the keys and values of the window before the next rank's slice
 * (2 H d_h per position); the backward sends the gradients of what came in to the previous rank. */
static uint64_t titans_bytes(const hy_model_config *c, int64_t B, int64_t T) {
  const hy_titans_config *t = &c->titans;
  int64_t W = D.sp, r = D.sp_rank, n = T / W, next = r + 1 < W, prev = r > 0;
  int64_t Dm = t->head_dim ? t->head_dim : c->d_model / t->heads;
  int64_t P = t->depth == 2 ? 2 * Dm * (int64_t)(t->expansion * (double)Dm) : Dm * Dm;
  int64_t state = 2 * P * t->heads * B, key = 2 * c->d_model * B; /* 2 H d_h = 2 d */
  int64_t values = (next + prev) * state + next * seen_before(t->window, (r + 1) * n) * key +
                   prev * seen_before(t->window, r * n) * key;
  return (uint64_t)values * sizeof(double);
}

/* The last check_layer sent `want` bytes point to point and gathered nothing. */
static void expect_sent_point_to_point(const char *label, uint64_t want) {
  bool ok = last_sent[HY_COLL_SEND] == want && last_sent[HY_COLL_ALLGATHER] == 0;
  failures += !ok;
  if (D.rank == 0 || !ok)
    printf("rank %d %s %-24s sent %llu bytes point to point (formula %llu), gathered %llu\n",
           D.rank, ok ? "ok  " : "FAIL", label, (unsigned long long)last_sent[HY_COLL_SEND],
           (unsigned long long)want, (unsigned long long)last_sent[HY_COLL_ALLGATHER]);
}

/* MAL and MAG under settings that change what is exchanged: memory depth 1 and 2, persistent
 * tokens or none, several chunks per rank or exactly one, a window inside one rank's slice,
 * longer than a slice (its keys come from several ranks), or all keys (window 0). Each equals one
 * process, sends the formula's bytes point to point and gathers nothing. */
static void check_titans(void) {
  typedef struct {
    int64_t T, chunk, window, persistent, depth;
  } titans_case;
  const titans_case cases[] = {
      {160, 8, 16, 0, 1}, /* several chunks per rank, linear memory */
      {64, 4, 5, 2, 2},   /* a small window, many chunks */
      {32, 0, 24, 2, 1},  /* one chunk per rank (chunk 0: T / sp); the window spans ranks */
      {32, 0, 0, 0, 2},   /* one chunk per rank; every earlier key */
  };
  for (int gate = 0; gate < 2; gate++)
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
      titans_case tc = cases[i];
      hy_model_config cfg = config();
      cfg.titans.chunk = tc.chunk ? tc.chunk : tc.T / D.sp;
      cfg.titans.window = tc.window;
      cfg.titans.persistent = tc.persistent;
      cfg.titans.depth = tc.depth;
      const char *kind = gate ? "titans_mag" : "titans_mal";
      char label[64];
      snprintf(label, sizeof label, "%s T%lld c%lld w%lld p%lld d%lld", kind + 7, (long long)tc.T,
               (long long)cfg.titans.chunk, (long long)tc.window, (long long)tc.persistent,
               (long long)tc.depth);
      check_layer(&cfg, kind, tc.T, label);
      uint64_t want = titans_bytes(&cfg, 2, tc.T);
      expect_sent_point_to_point(label, want);
    }
}

/* MAC: the attention stays inside a segment, so the memory's state is all that travels: 2 P
 * values per memory head and sequence to the next rank, and its gradient back. Several segments
 * per rank or exactly one, several memory chunks per segment or one, memory depth 1 and 2. */
static void check_titans_mac(void) {
  typedef struct {
    int64_t T, segment, chunk, persistent, depth;
  } mac_case;
  const mac_case cases[] = {
      {64, 8, 4, 2, 2}, /* two segments per rank at sp = 4, two chunks per segment */
      {32, 0, 0, 0, 1}, /* one segment per rank (segment 0: T / sp), one chunk per segment */
      {96, 12, 3, 2, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    mac_case mc = cases[i];
    hy_model_config cfg = config();
    cfg.titans.segment = mc.segment ? mc.segment : mc.T / D.sp;
    cfg.titans.chunk = mc.chunk ? mc.chunk : cfg.titans.segment;
    cfg.titans.persistent = mc.persistent;
    cfg.titans.depth = mc.depth;
    char label[64];
    snprintf(label, sizeof label, "mac T%lld s%lld c%lld p%lld d%lld", (long long)mc.T,
             (long long)cfg.titans.segment, (long long)cfg.titans.chunk, (long long)mc.persistent,
             (long long)mc.depth);
    check_layer(&cfg, "titans_mac", mc.T, label);
    const hy_titans_config *t = &cfg.titans;
    int64_t Dm = cfg.d_model / t->heads, hops = (D.sp_rank + 1 < D.sp) + (D.sp_rank > 0);
    int64_t P = t->depth == 2 ? 2 * Dm * (int64_t)(t->expansion * (double)Dm) : Dm * Dm;
    uint64_t want = (uint64_t)(hops * 2 * P * t->heads * 2) * sizeof(double); /* B = 2 */
    expect_sent_point_to_point(label, want);
  }
}

/* Packed documents: rows of several documents, boundaries inside a rank's slice and on the edge
 * between two (T 32: slices of 16 or 8), the split run against one process on the same rows. */
static void check_documents(void) {
  static const int starts[2][6] = {{0, 5, 8, 13, 22, -1}, {0, 16, 17, 31, -1}};
  hy_tensor *pos = hy_empty_persistent_on(HY_CPU, HY_I32, HY_SHAPE(2, 32)); /* past the resets */
  for (int b = 0; b < 2; b++)
    for (int t = 0, p = 0, next = 1; t < 32; t++) {
      if (starts[b][next] == t) p = 0, next++;
      ((int32_t *)pos->data)[b * 32 + t] = p++;
    }
  const char *kinds[] = {"gla", "attn", "rat", "titans_mac", "sla"};
  for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
    hy_model_config cfg = config();
    cfg.titans.segment = 8;
    cfg.sla.block = 4;
    char label[64];
    snprintf(label, sizeof label, "%s documents", kinds[i]);
    hy_mixer_set_positions(pos, pos);
    check_layer(&cfg, kinds[i], 32, label);
    hy_mixer_set_positions(NULL, NULL);
  }
  hy_free(pos);
}

/* A whole hybrid: loss and every parameter gradient. */
static void check_model(void) {
  hy_model_config cfg = config();
  const char *kinds[] = {"gla", "attn",       "lightning", "linear",
                         "rat", "titans_mag", "softplus",  "sigmoid"};
  cfg.n_layers = 8;
  for (int l = 0; l < 8; l++) snprintf(cfg.layers[l], HY_KIND_NAME_MAX, "%s", kinds[l]);
  hy_model *m = hy_model_new(&cfg, 5);
  int64_t T = 32;
  hy_tensor *tokens = hy_empty(HY_I32, HY_SHAPE(2, T + 1));
  hy_rng rng = hy_rng_new(6);
  hy_fill_int(tokens, &rng, 0, 19);
  hy_tensor *x = hy_contiguous(hy_slice(tokens, 1, 0, T)),
            *y = hy_contiguous(hy_slice(tokens, 1, 1, T + 1));
  hy_sequence_set(NULL, 0);
  hy_tensor *loss = hy_model_loss(m, x, y, -1);
  double ref_loss = hy_item(loss);
  hy_backward(loss);
  hy_tensor **ref = calloc((size_t)m->params.n, sizeof *ref);
  for (int i = 0; i < m->params.n; i++) {
    ref[i] = hy_empty_like(m->params.items[i].t->grad);
    hy_copy_into(ref[i], m->params.items[i].t->grad);
  }
  hy_params_zero_grad(&m->params);
  int64_t n = T / D.sp, offset = D.sp_rank * n;
  hy_sequence_set(D.sp_group, offset);
  hy_tensor *xl = hy_contiguous(hy_slice(x, 1, offset, offset + n));
  hy_tensor *yl = hy_contiguous(hy_slice(y, 1, offset, offset + n));
  /* the local mean times the local share of the tokens: the ranks' losses sum to the mean */
  hy_tensor *local = hy_scale(hy_model_loss(m, xl, yl, -1), (double)n / (double)T);
  double total = hy_item(local);
  hy_backward(local);
  hy_sequence_set(NULL, 0);
  hy_allreduce_sum(D.sp_group, HY_CPU, &total, 1, HY_F64);
  reduce_param_grads(&m->params);
  expect(fabs(total - ref_loss) / fabs(ref_loss), 1e-12, "loss", "model");
  double worst = 0;
  for (int i = 0; i < m->params.n; i++)
    worst = fmax(worst, rel_err(m->params.items[i].t->grad, ref[i]));
  expect(worst, 1e-10, "parameter gradients", "model");
  free(ref);
  hy_model_free(m);
  hy_step_reset();
}

/* A RAT layer's AllGather: the chunk-final key and value of each of its H heads (d = H d_h
 * values each) for every chunk of its slice, 2 B (T / (W L)) d values, and the reduce-scatter that
 * undoes it sends W - 1 times that. */
static void check_rat_bytes(void) {
  hy_model_config cfg = config();
  int64_t B = 2, T = 256, d = cfg.d_model, L = cfg.rat.chunk, W = D.sp;
  hy_rng rng = hy_rng_new(2);
  hy_params ps = {0};
  const hy_mixer_kind *rat = hy_mixer_find("rat");
  void *layer = rat->create(&ps, "rat", &cfg, 0, &rng);
  hy_tensor *x = hy_empty(HY_F64, HY_SHAPE(B, T / W, d));
  hy_fill_normal(x, &rng, 0, 1);
  hy_dist_reset_bytes();
  hy_sequence_set(D.sp_group, D.sp_rank * x->shape[1]);
  hy_backward(hy_sum_all(hy_mixer_forward(rat, layer, x)));
  hy_sequence_set(NULL, 0);
  uint64_t want = W > 1 ? (uint64_t)(2 * B * (T / (W * L)) * d) * sizeof(double) : 0;
  uint64_t gathered = hy_dist_bytes(HY_COLL_ALLGATHER),
           scattered = hy_dist_bytes(HY_COLL_REDUCE_SCATTER);
  bool ok = gathered == want && scattered == (uint64_t)(W - 1) * want;
  failures += !ok;
  if (D.rank == 0 || !ok)
    printf("rank %d %s rat allgather %llu bytes, reduce-scatter %llu (formula: %llu, %llu)\n",
           D.rank, ok ? "ok  " : "FAIL", (unsigned long long)gathered,
           (unsigned long long)scattered, (unsigned long long)want,
           (unsigned long long)((W - 1) * want));
  rat->destroy(layer);
  hy_params_free(&ps);
  hy_step_reset();
}

/* The state AllGather of a GLA layer does not grow with the sequence. */
static void check_bytes(void) {
  uint64_t sent[2];
  int64_t lengths[2] = {256, 4096};
  for (int i = 0; i < 2; i++) {
    hy_model_config cfg = config();
    hy_rng rng = hy_rng_new(1);
    hy_params ps = {0};
    void *layer = hy_mixer_find("gla")->create(&ps, "gla", &cfg, 0, &rng);
    hy_tensor *x = hy_empty(HY_F64, HY_SHAPE(1, lengths[i] / D.sp, 16));
    hy_fill_normal(x, &rng, 0, 1);
    hy_dist_reset_bytes();
    hy_sequence_set(D.sp_group, D.sp_rank * x->shape[1]);
    hy_backward(hy_sum_all(hy_mixer_find("gla")->forward(layer, x)));
    hy_sequence_set(NULL, 0);
    sent[i] = hy_dist_bytes(HY_COLL_ALLGATHER);
    hy_mixer_find("gla")->destroy(layer);
    hy_params_free(&ps);
    hy_step_reset();
  }
  bool ok = sent[0] == sent[1];
  failures += !ok;
  if (D.rank == 0 || !ok)
    printf("rank %d %s gla state allgather: %llu bytes at T = 256, %llu at T = 4096\n", D.rank,
           ok ? "ok  " : "FAIL", (unsigned long long)sent[0], (unsigned long long)sent[1]);
}

/* An SLA layer sends (2 T / W + block) H d_h values per sequence by AllGather (every rank's keys
 * and values, and its last block of queries for the next rank's selection), and the keys' and
 * values' gradients back by reduce-scatter, (W - 1) 2 T / W H d_h values (docs/distributed.md). */
static void check_sla_bytes(void) {
  hy_model_config cfg = config();
  cfg.sla.block = 8;
  hy_rng rng = hy_rng_new(2);
  hy_params ps = {0};
  const hy_mixer_kind *k = hy_mixer_find("sla");
  void *layer = k->create(&ps, "sla", &cfg, 0, &rng);
  int64_t B = 2, T = 64, n = T / D.sp, H = cfg.n_heads, dh = cfg.d_model / H, W = D.sp;
  hy_tensor *x = hy_empty(HY_F64, HY_SHAPE(B, n, cfg.d_model));
  hy_fill_normal(x, &rng, 0, 1);
  hy_dist_reset_bytes();
  hy_sequence_set(D.sp_group, D.sp_rank * n);
  hy_backward(hy_sum_all(k->forward(layer, x)));
  hy_sequence_set(NULL, 0);
  uint64_t size = sizeof(double), gathered = W > 1 ? (uint64_t)(B * (2 * n + 8) * H * dh) : 0;
  uint64_t scattered = (uint64_t)((W - 1) * B * 2 * n * H * dh);
  uint64_t sent[2] = {hy_dist_bytes(HY_COLL_ALLGATHER), hy_dist_bytes(HY_COLL_REDUCE_SCATTER)};
  bool ok = sent[0] == gathered * size && sent[1] == scattered * size;
  failures += !ok;
  if (D.rank == 0 || !ok)
    printf("rank %d %s sla allgather %llu bytes (formula %llu), reduce-scatter %llu (%llu)\n",
           D.rank, ok ? "ok  " : "FAIL", (unsigned long long)sent[0],
           (unsigned long long)(gathered * size), (unsigned long long)sent[1],
           (unsigned long long)(scattered * size));
  k->destroy(layer);
  hy_params_free(&ps);
  hy_step_reset();
}

int main(int argc, char **argv) {
  mpi_check_start(&argc, &argv);
  /* LASP-2, LASP-2H, then each kind's own form with the settings that change it */
  const char *kinds[] = {"gla",      "lightning", "linear",     "attn",       "sigmoid",
                         "softplus", "rat",       "titans_mal", "titans_mag", "conv"};
  for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
    check_mixer(kinds[i], 160); /* 160 splits over 1, 2 and 4 ranks */
  /* LASP-2 with its AllGather and reduce-scatter waited for at once, not overlapped */
  hy_sequence_set_overlap(false);
  hy_model_config cfg = config();
  check_layer(&cfg, "gla", 160, "gla, no overlap");
  check_layer(&cfg, "lightning", 160, "lightning, no overlap");
  hy_sequence_set_overlap(true);
  check_overlap_order(true);
  check_overlap_order(false);
  check_rat();
  check_sla();
  check_titans();
  check_titans_mac();
  check_documents();
  check_model();
  check_bytes();
  check_rat_bytes();
  check_sla_bytes();
  return mpi_check_finish();
}
