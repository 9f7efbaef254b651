#include "layers/sla.h"
#include "autograd/tape.h"
#include "dist/collective_ops.h"
#include "dist/lasp2.h"
#include "layers/model.h"
#include "layers/prefix_decode.h"
#include "layers/sla_reference.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hy_sla_feature_map_of(const char *name) {
  if (!strcmp(name, "softmax")) return HY_SLA_PHI_SOFTMAX;
  if (!strcmp(name, "elu")) return HY_SLA_PHI_ELU;
  if (!strcmp(name, "relu")) return HY_SLA_PHI_RELU;
  return -1;
}

static void *sla_create(hy_params *ps, const char *prefix, const hy_model_config *cfg, int layer,
                        hy_rng *rng) {
  (void)layer;
  const hy_sla_config *c = &cfg->sla;
  int phi = hy_sla_feature_map_of(c->feature_map);
  if (phi < 0) hy_die("sla", "unknown feature map '%s'", c->feature_map);
  if (c->block < 1) hy_die("sla", "block must be >= 1, got %lld", (long long)c->block);
  hy_sla_layer *l = calloc(1, sizeof *l);
  if (!l) hy_die("sla", "out of memory");
  hy_attention_init(&l->attn, ps, prefix, cfg, rng);
  l->block = c->block;
  l->critical = c->critical;
  l->negligible = c->negligible;
  l->feature_map = phi;
  l->naive = c->naive;
  char path[HY_PARAM_NAME_MAX];
  snprintf(path, sizeof path, "%s/proj_l", prefix);
  int64_t D = l->attn.head_dim;
  hy_linear_init(&l->proj_l, ps, path, D, D, true, cfg->dtype, rng, 0.0);
  hy_fill(l->proj_l.weight, 0.0); /* zero: the linear branch starts switched off */
  return l;
}

/* The queries of the block before this rank's slice, [B, block, H, D] (NULL on the first rank):
 * the previous rank's last block, by one AllGather of every rank's last block. Off the tape: only
 * their mean is read, to rank the slice's first block's key blocks, and the ranking has no
 * gradient. */
static hy_tensor *block_before(hy_tensor *q, int64_t block) {
  const hy_sequence *seq = hy_sequence_get();
  int r = hy_group_rank(seq->group);
  int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2], D = q->shape[3];
  hy_no_grad_begin();
  hy_tensor *last = hy_reshape(hy_slice(q, 1, T - block, T), HY_SHAPE(B, block, H * D));
  hy_tensor *all = hy_dist_allgather(seq->group, last); /* [W, B, block, H D] */
  hy_tensor *before = r ? hy_reshape(hy_slice(all, 0, r - 1, r), HY_SHAPE(B, block, H, D)) : NULL;
  hy_no_grad_end();
  return before;
}

hy_tensor *hy_sla_layer_forward(const hy_sla_layer *l, hy_tensor *x) {
  hy_tensor *q, *k, *v, *q_before = NULL;
  int64_t offset = 0;
  hy_attention_qkv(&l->attn, x, &q, &k, &v);
  if (hy_sequence_parallel()) {
    /* this rank's queries against every rank's keys and values (layers/sla.h) */
    int64_t T = x->shape[1];
    offset = hy_sequence_get()->offset;
    if (T % l->block)
      hy_die("sla",
             "a sequence-parallel slice of %lld positions is not whole blocks of %lld: "
             "train.seq_len / dist.sp must be a multiple of [layer.sla] block",
             (long long)T, (long long)l->block);
    hy_lasp2h_gather(k, v, &k, &v); /* every rank's: the later ones' are not read */
    q_before = block_before(q, l->block);
  }
  int64_t D = l->attn.head_dim;
  double scale = 1.0 / sqrt((double)D);
  hy_tensor *both = l->naive ? hy_sla_naive_offset(q, k, v, q_before, offset, scale, l->critical,
                                                   l->negligible, l->feature_map, l->block)
                             : hy_sla_offset(q, k, v, q_before, offset, scale, l->critical,
                                             l->negligible, l->feature_map, l->block, NULL);
  hy_tensor *parts[2]; /* o_s, o_l: [B, T, H, D] each */
  hy_split(both, 3, 2, (int64_t[]){D, D}, parts);
  hy_tensor *o = hy_add(parts[0], hy_linear_forward(&l->proj_l, parts[1]));
  return hy_attention_out(&l->attn, x, o);
}

static hy_tensor *sla_forward(void *self, hy_tensor *x) { return hy_sla_layer_forward(self, x); }

static void *sla_decode_new(void *self, int64_t batch, int64_t max_len) {
  hy_sla_layer *l = self;
  hy_tensor *w = l->attn.q.weight;
  return hy_prefix_decode_new(self, batch, max_len, w->shape[1], w->dtype);
}

static hy_tensor *sla_decode_step(void *self, void *state, hy_tensor *x, int64_t pos) {
  return hy_prefix_decode_step(self, state, x, pos, sla_forward);
}

const hy_mixer_kind hy_mixer_sla = {"sla",          sla_create,      sla_forward,           free,
                                    sla_decode_new, sla_decode_step, hy_prefix_decode_free, true};
