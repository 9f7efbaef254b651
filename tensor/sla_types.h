/* The small types of hy_sla (tensor/ops.h), apart so the CPU kernels can see them too. */
#ifndef HYLA_SLA_TYPES_H
#define HYLA_SLA_TYPES_H

/* The feature map phi of the linear branch: softmax over the feature dim, elu + 1, or relu. */
typedef enum { HY_SLA_PHI_SOFTMAX, HY_SLA_PHI_ELU, HY_SLA_PHI_RELU } hy_sla_feature_map;

/* The class of key block j for query block i (hy_sla_select): after the query block, skipped,
 * linear, or exact. */
enum { HY_SLA_FUTURE, HY_SLA_NEGLIGIBLE, HY_SLA_MARGINAL, HY_SLA_CRITICAL };

/* Fractions of the causal block pairs (j <= i) computed exactly and linearly, for reporting. */
typedef struct {
  double exact, marginal;
} hy_sla_stats;

#endif
