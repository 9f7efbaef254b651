/* What training does differently across ranks: each sequence-parallel rank takes its slice of a
 * batch's positions, losses and counts are summed over every rank, and gradients (replicated
 * parameters) are summed over every rank in a few large buckets. With one process all of it is a
 * no-op. */
#ifndef HYLA_PARALLEL_H
#define HYLA_PARALLEL_H

#include "dist/dist.h"
#include "tensor/params.h"

/* This rank's slice of x [B, T] along T, and the sequence context the layers read set to it. */
hy_tensor *hy_parallel_slice(const hy_dist *d, hy_tensor *x);
/* Back to whole sequences (the context of one process). */
void hy_parallel_end_slice(void);

/* Whether a stop was asked (util/stop.h) on any rank: every rank leaves a loop at the same point,
 * or one would wait for the others in a collective. d NULL: this process alone. */
bool hy_parallel_stop_asked(const hy_dist *d);
/* The sum of x over every rank. */
double hy_parallel_sum(const hy_dist *d, double x);
/* Sum every parameter gradient over every rank: one allreduce per bucket of parameters. */
void hy_parallel_reduce_grads(const hy_dist *d, hy_params *ps);

#endif
