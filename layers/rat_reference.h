/* The plain form of RAT's fused op (hy_rat, tensor/rat.c), built from ordinary ops so the tape
 * differentiates it: the recurrence as a step-by-step loop, the chunk-level RoPE as products with
 * constant cos and sin tables, and the attention as one dense masked softmax per query over
 * [the chunk-final keys ++ its own running key]. The reference the fused op is checked against;
 * O(T) ops and O(T^2 / L) memory: for tests and small inputs. */
#ifndef HYLA_RAT_REFERENCE_H
#define HYLA_RAT_REFERENCE_H

#include "tensor/tensor.h"

/* h_t = f_t h_{t-1} + (1 - f_t) a_t along axis 1 of a, f [B, T, H, D], with h = 0 before each
 * chunk's first token. */
hy_tensor *hy_rat_scan_reference(hy_tensor *a, hy_tensor *f, int64_t chunk);
/* x [B, T, H, D] with row t turned by RoPE at position first + floor(t / chunk) (rotate-half,
 * base theta). */
hy_tensor *hy_rat_rope_reference(hy_tensor *x, int64_t first, int64_t chunk, double theta);
/* The same functions as hy_rat, hy_rat_after and hy_rat_chunk_ends. */
hy_tensor *hy_rat_reference(hy_tensor *q, hy_tensor *u, hy_tensor *k, hy_tensor *f, int64_t chunk,
                            double scale, double theta);
hy_tensor *hy_rat_reference_after(hy_tensor *q, hy_tensor *u, hy_tensor *k, hy_tensor *f,
                                  hy_tensor *kp, hy_tensor *vp, int64_t chunk, double scale,
                                  double theta);
hy_tensor *hy_rat_chunk_ends_reference(hy_tensor *x, hy_tensor *f, int64_t chunk);

#endif
