/* titans_mac, memory as context (Behrouz et al. 2025, section 4.1): the sequence in segments of
 * `segment` tokens, one after another, the memory carried from segment to segment. For segment n
 * with input x_n [B, S, d] and M_{n-1} the memory after the segments before it (M_0 at first):
 *
 *   h_n = Read(M_{n-1}; x_n)                   the memory's read-out for the segment's queries
 *   y_n = Attn(q(x_n); [persistent; h_n; x_n])   softmax attention inside the segment
 *   z_n = Memory(RMSNorm(y_n; g_i)) from M_{n-1}, giving M_n   the output updates the memory
 *   out_n = y_n * sigmoid(RMSNorm(z_n; g_m))
 *
 * Query i of the segment sees the persistent keys, the read-outs h_0 .. h_i and the segment's keys
 * 0 .. i: h_j is read with token j's query, so a query before j seeing it would see the future.
 * A read-out token takes its own token's position for RoPE. The memory sees its input normalized
 * (as the block's input is for MAL and MAG) and the gate its output normalized (as MAG's): without
 * them the memory's inner steps diverge in training. docs/layers/titans.md says where each choice
 * comes from. */
#include "dist/collective_ops.h"
#include "layers/model.h"
#include "layers/titans.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void *mac_create(hy_params *ps, const char *prefix, const hy_model_config *cfg, int layer,
                        hy_rng *rng) {
  (void)layer;
  const hy_titans_config *tc = hy_titans_config_of(cfg);
  if (tc->segment < 1 || tc->segment % tc->chunk)
    hy_die("titans_mac",
           "segment %lld must be a positive multiple of the memory's chunk %lld ([layer.titans] "
           "segment and chunk): the memory hands its state from segment to segment after a "
           "complete chunk",
           (long long)tc->segment, (long long)tc->chunk);
  hy_titans_layer *l = hy_titans_new(ps, prefix, cfg, tc, false, rng);
  l->segment = tc->segment;
  const char *names[2] = {"memory_input_norm", "memory_norm"};
  hy_tensor **gains[2] = {&l->in_norm, &l->mem_norm};
  for (int i = 0; i < 2; i++) {
    char path[HY_PARAM_NAME_MAX];
    snprintf(path, sizeof path, "%s/%s", prefix, names[i]);
    *gains[i] = hy_params_add(ps, path, "weight", cfg->dtype, HY_SHAPE(cfg->d_model), false);
    hy_fill(*gains[i], 1.0);
  }
  l->attn.window = 0; /* the segment is the attention's span */
  return l;
}

/* Attention of the segment's queries q [B, n, H, D] over the persistent keys, the read-outs' keys
 * and values kh, vh and the segment's k, v (all [B, n, H, D]): [B, n, H, D]. */
static hy_tensor *segment_attention(const hy_titans_layer *l, hy_tensor *q, hy_tensor *kh,
                                    hy_tensor *vh, hy_tensor *k, hy_tensor *v) {
  int64_t B = q->shape[0], n = q->shape[1], P = l->pk ? l->pk->shape[0] : 0;
  hy_tensor *keys[3], *values[3];
  int m = 0;
  if (P) {
    keys[m] = hy_titans_repeat_persistent(l->pk, q->dtype, B, 1);
    values[m++] = hy_titans_repeat_persistent(l->pv, q->dtype, B, 1);
  }
  keys[m] = hy_titans_blocks(kh, 1, n), values[m++] = hy_titans_blocks(vh, 1, n);
  keys[m] = hy_titans_blocks(k, 1, n), values[m++] = hy_titans_blocks(v, 1, n);
  hy_tensor *mask = hy_titans_segment_mask(q->dtype, q->device, n, P);
  double scale = 1.0 / sqrt((double)l->attn.head_dim);
  return hy_titans_block_attention(hy_titans_blocks(q, 1, n), hy_concat(m, keys, 2),
                                   hy_concat(m, values, 2), mask, scale, B, n);
}

/* The output y * sigmoid(RMSNorm(z)) from the attention's y and the memory's z. */
static hy_tensor *gate(const hy_titans_layer *l, hy_tensor *y, hy_tensor *z) {
  return hy_mul(y, hy_sigmoid(hy_rmsnorm(z, l->mem_norm, l->norm_eps)));
}

/* Segment [lo, hi) of x with its queries, keys and values q, k, v [B, T, H, D] (RoPE at the
 * tokens' positions, offset the first's): the segment's output, the memory's state carried. */
static hy_tensor *segment(const hy_titans_layer *l, hy_tensor *x, hy_tensor *q, hy_tensor *k,
                          hy_tensor *v, int64_t lo, int64_t hi, int64_t offset, hy_tensor **state) {
  const hy_attention_layer *a = &l->attn;
  hy_tensor *xs = hy_slice(x, 1, lo, hi);
  hy_tensor *h = hy_titans_memory_read(&l->mem, *state, xs);
  hy_tensor *kh = hy_rope(hy_titans_heads(a, &a->k, h), offset + lo, a->rope_theta);
  hy_tensor *vh = hy_titans_heads(a, &a->v, h);
  hy_tensor *o = segment_attention(l, hy_slice(q, 1, lo, hi), kh, vh, hy_slice(k, 1, lo, hi),
                                   hy_slice(v, 1, lo, hi));
  hy_tensor *y = hy_attention_out(a, xs, o);
  hy_tensor *u = hy_rmsnorm(y, l->in_norm, l->norm_eps);
  return gate(l, y, hy_titans_memory_continue(&l->mem, u, state));
}

/* Under sequence parallelism each rank's slice is whole segments: the memory's state is all that
 * crosses ranks (the attention stays inside a segment), received from the rank before and handed
 * to the rank after, so the ranks' segment loops run one after another. */
hy_tensor *hy_titans_mac_forward(const hy_titans_layer *l, hy_tensor *x) {
  int64_t T = x->shape[1], S = l->segment;
  if (T == 0) return hy_zeros(x->dtype, hy_shape_of(x));
  bool sp = hy_sequence_parallel();
  const hy_sequence *seq = hy_sequence_get();
  int W = sp ? hy_group_size(seq->group) : 1, r = sp ? hy_group_rank(seq->group) : 0;
  if (sp && T % S)
    hy_die("titans_mac",
           "sequence parallelism hands the memory on between segments: this rank's slice of "
           "%lld tokens must be a whole number of segments of %lld ([layer.titans] segment)",
           (long long)T, (long long)S);
  hy_tensor *q, *k, *v, *state = NULL;
  hy_attention_qkv(&l->attn, x, &q, &k, &v); /* RoPE at the slice's global positions */
  if (r > 0) state = hy_titans_memory_recv_state(&l->mem, x);
  int64_t n = (T + S - 1) / S;
  hy_tensor **pieces = malloc((size_t)n * sizeof *pieces);
  if (!pieces) hy_die("titans_mac", "out of memory");
  for (int64_t i = 0; i < n; i++) {
    int64_t lo = i * S, hi = lo + S < T ? lo + S : T;
    pieces[i] = segment(l, x, q, k, v, lo, hi, seq->offset, &state);
  }
  hy_tensor *out = n == 1 ? pieces[0] : hy_concat((int)n, pieces, 1);
  free(pieces);
  return r + 1 < W ? hy_dist_send(seq->group, r + 1, state, out) : out;
}

static hy_tensor *mac_forward(void *self, hy_tensor *x) { return hy_titans_mac_forward(self, x); }

/* ---- decoding: the memory, its state at the segment's start, and the segment's keys ---- */

typedef struct {
  void *mem;
  hy_tensor *start;           /* persistent [B, H, 2, P]: the memory when the segment began */
  hy_tensor *kh, *vh, *k, *v; /* persistent [B, segment, H, D]: rotated keys and values so far */
} mac_state;

static void *mac_decode_new(void *self, int64_t batch, int64_t max_len) {
  (void)max_len;
  hy_titans_layer *l = self;
  mac_state *st = calloc(1, sizeof *st);
  if (!st) hy_die("titans_mac", "out of memory");
  st->mem = hy_titans_memory_state_new(&l->mem, batch);
  const hy_tensor *m0 = l->mem.m0[0];
  st->start =
      hy_empty_persistent_on(m0->device, m0->dtype, hy_titans_memory_state_shape(&l->mem, batch));
  hy_shape s = HY_SHAPE(batch, l->segment, l->attn.n_heads, l->attn.head_dim);
  hy_dtype dt = l->attn.q.weight->dtype;
  st->kh = hy_zeros_persistent(dt, s);
  st->vh = hy_zeros_persistent(dt, s);
  st->k = hy_zeros_persistent(dt, s);
  st->v = hy_zeros_persistent(dt, s);
  return st;
}

static hy_tensor *mac_decode_step(void *self, void *state, hy_tensor *x, int64_t pos) {
  hy_titans_layer *l = self;
  mac_state *st = state;
  const hy_attention_layer *a = &l->attn;
  int64_t i = pos % l->segment;
  /* A segment starts after a complete chunk (chunk divides segment): the memory is up to date. */
  if (i == 0) hy_copy_into(st->start, hy_titans_memory_state_of(&l->mem, st->mem));
  hy_tensor *h = hy_titans_memory_read(&l->mem, st->start, x);
  hy_tensor *rows[4][2] = {{st->kh, hy_rope(hy_titans_heads(a, &a->k, h), pos, a->rope_theta)},
                           {st->vh, hy_titans_heads(a, &a->v, h)},
                           {st->k, hy_rope(hy_titans_heads(a, &a->k, x), pos, a->rope_theta)},
                           {st->v, hy_titans_heads(a, &a->v, x)}};
  for (int j = 0; j < 4; j++) hy_copy_into(hy_slice(rows[j][0], 1, i, i + 1), rows[j][1]);
  hy_tensor *keys =
      hy_concat(2, (hy_tensor *[]){hy_slice(st->kh, 1, 0, i + 1), hy_slice(st->k, 1, 0, i + 1)}, 1);
  hy_tensor *values =
      hy_concat(2, (hy_tensor *[]){hy_slice(st->vh, 1, 0, i + 1), hy_slice(st->v, 1, 0, i + 1)}, 1);
  hy_tensor *q = hy_rope(hy_titans_heads(a, &a->q, x), pos, a->rope_theta);
  hy_tensor *y = hy_titans_attend_one(l, q, keys, values);
  hy_tensor *u = hy_rmsnorm(y, l->in_norm, l->norm_eps);
  return gate(l, y, hy_titans_memory_step(&l->mem, st->mem, u));
}

static void mac_decode_free(void *state) {
  mac_state *st = state;
  if (!st) return;
  hy_titans_memory_state_free(st->mem);
  hy_tensor *ts[5] = {st->start, st->kh, st->vh, st->k, st->v};
  for (int i = 0; i < 5; i++) hy_free(ts[i]);
  free(st);
}

const hy_mixer_kind hy_mixer_titans_mac = {"titans_mac",   mac_create,      mac_forward,     free,
                                           mac_decode_new, mac_decode_step, mac_decode_free, true};
