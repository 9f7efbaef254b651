#include "layers/rat.h"
#include "dist/collective_ops.h"
#include "dist/lasp2.h"
#include "layers/model.h"
#include "layers/rat_reference.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

hy_rat_config hy_rat_config_default(void) { return hy_model_config_default().rat; }

const hy_rat_config *hy_rat_config_of(const hy_model_config *cfg) {
  static hy_rat_config defaults;
  if (cfg) return &cfg->rat;
  defaults = hy_rat_config_default();
  return &defaults;
}

void hy_rat_layer_init(hy_rat_layer *l, hy_params *ps, const char *prefix,
                       const hy_model_config *cfg, const hy_rat_config *rc, hy_rng *rng) {
  int64_t d = cfg->d_model, H = rc->heads ? rc->heads : cfg->n_heads, G = rc->n_groups;
  if (H < 1 || d % H || (d / H) % 2 || G < 1 || H % G)
    hy_die("rat", "d_model %lld must split into %lld heads of an even size, in %lld groups",
           (long long)d, (long long)H, (long long)G);
  if (rc->chunk < 1 || !(rc->rope_theta > 0))
    hy_die("rat", "chunk %lld (>= 1) and rope theta %g (> 0)", (long long)rc->chunk,
           rc->rope_theta);
  *l = (hy_rat_layer){.heads = H,
                      .groups = G,
                      .head_dim = d / H,
                      .chunk = rc->chunk,
                      .rope_theta = rc->rope_theta,
                      .naive = rc->naive};
  char path[HY_PARAM_NAME_MAX];
  double std = cfg->init_std;
#define PROJ(field, name, out, bias, s)                                                            \
  snprintf(path, sizeof path, "%s/%s", prefix, name);                                              \
  hy_linear_init(&l->field, ps, path, d, out, bias, cfg->dtype, rng, s)
  PROJ(z, "z_proj", d, false, std);
  PROJ(u, "u_proj", d, false, std);
  PROJ(g, "g_proj", d, true, std);
  PROJ(q, "q_proj", G * l->head_dim, false, std);
  PROJ(k, "k_proj", G * l->head_dim, false, std);
  PROJ(o, "o_proj", d, false, hy_model_out_std(cfg));
#undef PROJ
  /* b_f = log(uniform(1, L - 1)): forget gates from sigmoid(0) = 1/2 up to (L - 1) / L, a memory
   * of up to about a chunk. */
  double hi = l->chunk > 2 ? (double)(l->chunk - 1) : 1.0;
  for (int64_t i = 0; i < d; i++) hy_set(l->g.bias, i, log(1.0 + (hi - 1.0) * hy_rng_uniform(rng)));
}

static void *rat_create(hy_params *ps, const char *prefix, const hy_model_config *cfg, int layer,
                        hy_rng *rng) {
  (void)layer;
  hy_rat_layer *l = calloc(1, sizeof *l);
  if (!l) hy_die("rat", "out of memory");
  hy_rat_layer_init(l, ps, prefix, cfg, hy_rat_config_of(cfg), rng);
  return l;
}

/* [B, T, n d_h] -> [B, T, n, d_h] */
static hy_tensor *split_heads(const hy_rat_layer *l, hy_tensor *x) {
  return hy_reshape(x, HY_SHAPE(x->shape[0], x->shape[1], -1, l->head_dim));
}

/* The G groups' channels repeated to the H heads, as torch's .repeat: head h gets group h mod G. */
static hy_tensor *repeat_groups(const hy_rat_layer *l, hy_tensor *x) {
  int64_t n = l->heads / l->groups;
  if (n == 1) return split_heads(l, x);
  hy_tensor **copies = malloc((size_t)n * sizeof *copies);
  if (!copies) hy_die("rat", "out of memory");
  for (int64_t i = 0; i < n; i++) copies[i] = x;
  hy_tensor *y = hy_concat((int)n, copies, 2);
  free(copies);
  return split_heads(l, y);
}

void hy_rat_layer_project(const hy_rat_layer *l, hy_tensor *x, hy_tensor **z, hy_tensor **q,
                          hy_tensor **u, hy_tensor **k, hy_tensor **f) {
  *z = hy_sigmoid(hy_linear_forward(&l->z, x));
  *u = split_heads(l, hy_linear_forward(&l->u, x));
  *f = split_heads(l, hy_sigmoid(hy_linear_forward(&l->g, x)));
  *q = repeat_groups(l, hy_linear_forward(&l->q, x));
  *k = repeat_groups(l, hy_linear_forward(&l->k, x));
}

static double scale_of(const hy_rat_layer *l) { return 1.0 / sqrt((double)l->head_dim); }

/* y = (z * o) W_o for o [B, T, H, d_h]. */
static hy_tensor *output(const hy_rat_layer *l, hy_tensor *z, hy_tensor *o) {
  return hy_linear_forward(&l->o, hy_mul(z, hy_reshape(o, hy_shape_of(z))));
}

/* Sequence parallelism: this rank's slice holds whole chunks, so its recurrence needs nothing
 * from the other ranks. Each rank's chunk-final keys and values (T / L of each for a slice of T
 * tokens) go to every rank in ONE AllGather (hy_lasp2h_gather; the backward reduce-scatters their
 * gradients), and the slice's rows attend to the earlier ranks' ones as to their own: the rows of
 * one process, at global chunk indices for the RoPE. */
static hy_tensor *attend_split(const hy_rat_layer *l, hy_tensor *q, hy_tensor *u, hy_tensor *k,
                               hy_tensor *f) {
  int64_t T = q->shape[1], L = l->chunk, offset = hy_sequence_get()->offset;
  if (T % L || offset % L)
    hy_die("rat",
           "a sequence-parallel slice of %lld tokens at position %lld is not whole chunks of %lld "
           "tokens: [train] seq_len / [dist] sp must be a multiple of [layer.rat] chunk",
           (long long)T, (long long)offset, (long long)L);
  hy_tensor *kc, *vc;
  if (l->naive)
    hy_lasp2h_gather(hy_rat_chunk_ends_reference(k, f, L), hy_rat_chunk_ends_reference(u, f, L),
                     &kc, &vc);
  else
    hy_lasp2h_gather(hy_rat_chunk_ends(k, f, L), hy_rat_chunk_ends(u, f, L), &kc, &vc);
  /* The earlier ranks' chunks. Rank 0 has none, but an empty slice of the gathered ones still
   * puts them on its tape, so that its backward takes part in their reduce-scatter. */
  int64_t P = offset / L;
  kc = hy_slice(kc, 1, 0, P), vc = hy_slice(vc, 1, 0, P);
  return l->naive ? hy_rat_reference_after(q, u, k, f, kc, vc, L, scale_of(l), l->rope_theta)
                  : hy_rat_after(q, u, k, f, kc, vc, L, scale_of(l), l->rope_theta);
}

hy_tensor *hy_rat_layer_forward(const hy_rat_layer *l, hy_tensor *x) {
  hy_tensor *z, *q, *u, *k, *f;
  hy_rat_layer_project(l, x, &z, &q, &u, &k, &f);
  hy_tensor *o = hy_sequence_parallel() ? attend_split(l, q, u, k, f)
                 : l->naive ? hy_rat_reference(q, u, k, f, l->chunk, scale_of(l), l->rope_theta)
                            : hy_rat(q, u, k, f, l->chunk, scale_of(l), l->rope_theta);
  return output(l, z, o);
}

static hy_tensor *rat_forward(void *self, hy_tensor *x) { return hy_rat_layer_forward(self, x); }

/* ---- decoding: the running chunk's states, and the finished chunks' final keys and values ---- */

typedef struct {
  hy_tensor *xs, *ks; /* persistent [B, 1, H, d_h]: the running chunk's value and key states */
  hy_tensor *kc, *vc; /* persistent [B, max_chunks, H, d_h]: rotated final keys, final values */
  int64_t n_chunks;   /* finished chunks in kc, vc */
} rat_state;

static void *rat_decode_new(void *self, int64_t batch, int64_t max_len) {
  hy_rat_layer *l = self;
  rat_state *s = calloc(1, sizeof *s);
  if (!s) hy_die("rat", "out of memory");
  hy_dtype dt = l->o.weight->dtype;
  int64_t max_chunks = max_len / l->chunk > 0 ? max_len / l->chunk : 1;
  s->xs = hy_zeros_persistent(dt, HY_SHAPE(batch, 1, l->heads, l->head_dim));
  s->ks = hy_zeros_persistent(dt, HY_SHAPE(batch, 1, l->heads, l->head_dim));
  s->kc = hy_zeros_persistent(dt, HY_SHAPE(batch, max_chunks, l->heads, l->head_dim));
  s->vc = hy_zeros_persistent(dt, HY_SHAPE(batch, max_chunks, l->heads, l->head_dim));
  return s;
}

static hy_tensor *rat_decode_step(void *self, void *state, hy_tensor *x, int64_t pos) {
  hy_rat_layer *l = self;
  rat_state *s = state;
  int64_t L = l->chunk, c = pos / L;
  if (c != s->n_chunks)
    hy_die("rat", "decoding position %lld out of order (%lld chunks finished)", (long long)pos,
           (long long)s->n_chunks);
  hy_tensor *z, *q, *u, *k, *f;
  hy_rat_layer_project(l, x, &z, &q, &u, &k, &f);
  /* xs = f xs + (1 - f) u, ks likewise, from 0 at the chunk's first token. */
  hy_tensor *keep = hy_add_scalar(hy_scale(f, -1.0), 1.0);
  hy_tensor *xs = hy_mul(keep, u), *ks = hy_mul(keep, k);
  if (pos % L != 0) {
    xs = hy_add(hy_mul(f, s->xs), xs);
    ks = hy_add(hy_mul(f, s->ks), ks);
  }
  hy_copy_into(s->xs, xs);
  hy_copy_into(s->ks, ks);
  /* The own key needs no rotation (query and key turn alike); the cached keys are rotated. */
  hy_tensor *own = hy_scale(hy_sum(hy_mul(q, ks), 3, true), scale_of(l)); /* [B, 1, H, 1] */
  hy_tensor *o = xs;
  if (c > 0) {
    hy_tensor *qh = hy_transpose(hy_rope(q, c, l->rope_theta), 1, 2); /* [B, H, 1, d_h] */
    hy_tensor *kh = hy_transpose(hy_slice(s->kc, 1, 0, c), 1, 2);     /* [B, H, c, d_h] */
    hy_tensor *vh = hy_transpose(hy_slice(s->vc, 1, 0, c), 1, 2);     /* [B, H, c, d_h] */
    hy_tensor *sc = hy_scale(hy_matmul(qh, hy_transpose(kh, 2, 3)), scale_of(l)); /* [B,H,1,c] */
    hy_tensor *p = hy_softmax(hy_concat(2, (hy_tensor *[]){sc, hy_transpose(own, 1, 2)}, 3));
    hy_tensor *parts[2];
    hy_split(p, 3, 2, (int64_t[]){c, 1}, parts);
    hy_tensor *oh = hy_add(hy_matmul(parts[0], vh), hy_mul(parts[1], hy_transpose(xs, 1, 2)));
    o = hy_transpose(oh, 1, 2);
  }
  if (pos % L == L - 1) { /* the chunk is finished: its final state joins the cache */
    if (c >= s->kc->shape[1])
      hy_die("rat", "decoding position %lld past the cache's %lld chunks", (long long)pos,
             (long long)s->kc->shape[1]);
    hy_copy_into(hy_slice(s->kc, 1, c, c + 1), hy_rope(ks, c, l->rope_theta));
    hy_copy_into(hy_slice(s->vc, 1, c, c + 1), xs);
    s->n_chunks++;
  }
  return output(l, z, hy_contiguous(o));
}

static void rat_decode_free(void *state) {
  rat_state *s = state;
  if (!s) return;
  hy_free(s->xs);
  hy_free(s->ks);
  hy_free(s->kc);
  hy_free(s->vc);
  free(s);
}

const hy_mixer_kind hy_mixer_rat = {"rat",          rat_create,      rat_forward,     free,
                                    rat_decode_new, rat_decode_step, rat_decode_free, true};
