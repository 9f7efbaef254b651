/* Collectives as tape ops: the sequence-parallel layers use them inside a model's forward, and the
 * tape runs the matching collective in the backward. */
#ifndef HYLA_COLLECTIVE_OPS_H
#define HYLA_COLLECTIVE_OPS_H

#include "dist/dist.h"

/* y [W, ...] holds every rank's x (at most 3 dims), in rank order. Backward: each rank's gradient
 * is the sum over ranks of theirs for its block (a reduce-scatter). */
hy_tensor *hy_dist_allgather(hy_group *g, hy_tensor *x);
/* hy_dist_allgather of the n tensors xs (one shape but their last dim) joined along their last
 * dim. The joined tensor is only the send buffer, given back once sent: a rank keeps the gathered
 * tensor alone (and in the backward each input gets its part of the reduce-scatter). */
hy_tensor *hy_dist_allgather_cat(hy_group *g, int n, hy_tensor *const *xs);

/* hy_dist_allgather_cat in two halves, to overlap the AllGather with work that does not need it:
 * the start sends (the gathered tensor's memory filling meanwhile), hy_dist_gathered waits and
 * gives the gathered tensor. In the backward the reduce-scatter starts at hy_dist_gathered's
 * node and is waited for at the start's, overlapping the backward of the work between them. */
typedef struct {
  hy_tensor *y;       /* [W, ...], not to be read before hy_dist_gathered */
  hy_tensor *scratch; /* the joined send buffer, given back at the wait, or NULL */
  hy_inflight *inflight;
} hy_gathering;
hy_gathering hy_dist_allgather_start(hy_group *g, int n, hy_tensor *const *xs);
hy_tensor *hy_dist_gathered(hy_gathering *gathering);

/* Point to point along a group, for pipelines: this rank hands x to rank `to`, which takes it with
 * hy_dist_recv(..., from = this rank) as a tensor of x's shape, dtype and device. The backward
 * runs the other way: the receiver sends the gradient of what it got, the sender receives it and
 * adds it to x's. Both sides record a node whenever grad mode is on (whether x needs a gradient
 * or not), so that their backward passes always meet; the received tensor must reach the loss.
 * hy_dist_send returns `after` (a view: no copy), which the caller uses in its place: that puts
 * the send on the way to the loss, so that the tape runs its backward (after the backward of what
 * uses `after`). */
hy_tensor *hy_dist_send(hy_group *g, int to, hy_tensor *x, hy_tensor *after);
hy_tensor *hy_dist_recv(hy_group *g, int from, hy_device device, hy_dtype dtype, hy_shape shape);

/* The sequence-parallel context of the current forward: the group and where this rank's slice of
 * the sequence starts. Without sequence parallelism: a group of one and offset 0. */
typedef struct {
  hy_group *group;
  int64_t offset; /* global position of the first local token */
  bool overlap;   /* LASP-2's AllGather overlaps the intra-slice work (dist.overlap); true */
} hy_sequence;

void hy_sequence_set(hy_group *group, int64_t offset); /* overlap as it was */
void hy_sequence_set_overlap(bool on);
const hy_sequence *hy_sequence_get(void);
bool hy_sequence_parallel(void); /* more than one rank holds the sequence */

#endif
