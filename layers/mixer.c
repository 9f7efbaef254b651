#include "layers/mixer.h"
#include "dist/collective_ops.h"
#include "layers/attention.h"
#include "layers/gla.h"
#include "layers/lightning.h"
#include "layers/linear_attention.h"
#include "layers/rat.h"
#include "layers/sigmoid_attention.h"
#include "layers/sla.h"
#include "layers/softplus_attention.h"
#include "layers/titans.h"

#include "tensor/ops.h"

#include <stdio.h>
#include <string.h>

/* Every kind, and whether it keeps packed documents apart (hy_mixer_documents). */
static const struct {
  const hy_mixer_kind *kind;
  bool documents;
} KINDS[] = {
    {&hy_mixer_attn, false},       {&hy_mixer_gla, false},        {&hy_mixer_lightning, false},
    {&hy_mixer_linear, false},     {&hy_mixer_rat, false},        {&hy_mixer_titans_mal, false},
    {&hy_mixer_titans_mag, false}, {&hy_mixer_titans_mac, false}, {&hy_mixer_sigmoid, false},
    {&hy_mixer_softplus, false},   {&hy_mixer_sla, false}};
enum { N_KINDS = sizeof KINDS / sizeof *KINDS };

const hy_mixer_kind *hy_mixer_find(const char *name) {
  for (size_t i = 0; i < N_KINDS; i++)
    if (!strcmp(KINDS[i].kind->name, name)) return KINDS[i].kind;
  return NULL;
}

bool hy_mixer_documents(const hy_mixer_kind *kind) {
  for (size_t i = 0; i < N_KINDS; i++)
    if (KINDS[i].kind == kind) return KINDS[i].documents;
  return false;
}

static const hy_tensor *positions;

const hy_tensor *hy_mixer_positions(void) { return positions; }

void hy_mixer_set_positions(const hy_tensor *p) { positions = p; }

const char *hy_mixer_names(void) {
  static char names[256];
  if (!names[0])
    for (size_t i = 0, n = 0; i < N_KINDS; i++)
      n +=
          (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "", KINDS[i].kind->name);
  return names;
}

/* A mixer without its own sequence parallelism, under it: gather every rank's input, run the
 * mixer on the whole sequence as one process would, keep this rank's rows. Exact, at the price of
 * the whole input per layer on the wire and the whole sequence's work on every rank. */
hy_tensor *hy_mixer_forward(const hy_mixer_kind *kind, void *mixer, hy_tensor *x) {
  if (kind->sequence_parallel || !hy_sequence_parallel()) return kind->forward(mixer, x);
  hy_sequence local = *hy_sequence_get();
  int64_t B = x->shape[0], T = x->shape[1], d = x->shape[2];
  hy_tensor *all = hy_dist_allgather(local.group, x); /* [W, B, T, d] */
  int64_t W = all->shape[0];
  hy_tensor *whole = hy_reshape(hy_contiguous(hy_transpose(all, 0, 1)), HY_SHAPE(B, W * T, d));
  hy_sequence_set(NULL, 0);
  hy_tensor *y = kind->forward(mixer, whole);
  hy_sequence_set(local.group, local.offset);
  return hy_slice(y, 1, local.offset, local.offset + T);
}
