/* The smallest end-to-end check: a 2-layer softmax-attention model (the default config, byte
 * vocabulary) trained with AdamW on one fixed batch of text until it memorizes it. */
#ifndef HYLA_DEMO_H
#define HYLA_DEMO_H

#include <stdint.h>
#include <stdio.h>

/* Trains for at most max_steps, printing the loss to out at step 1 and every 20th; returns the
 * last loss (below HY_DEMO_LOSS: the batch is learnt). */
#define HY_DEMO_LOSS 0.1
double hy_demo(int64_t max_steps, FILE *out);

#endif
