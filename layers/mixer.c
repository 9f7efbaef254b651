#include "layers/mixer.h"
#include "dist/collective_ops.h"
#include "layers/attention.h"
#include "layers/conv.h"
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
#include <stdlib.h>
#include <string.h>

/* Every kind; whether it keeps packed documents apart itself (hy_mixer_documents); and whether a
 * token's output is a function of the tokens up to it alone, so that a document padded at its end
 * gives its own tokens the outputs and gradients it gives them alone (SLA's block selection pools
 * whole blocks, the later tokens of a query's block included: it does not). */
typedef struct {
  const hy_mixer_kind *kind;
  bool documents, causal;
} kind_entry;

static const kind_entry KINDS[] = {
    {&hy_mixer_attn, false, true},       {&hy_mixer_gla, false, true},
    {&hy_mixer_lightning, false, true},  {&hy_mixer_linear, false, true},
    {&hy_mixer_rat, false, true},        {&hy_mixer_titans_mal, false, true},
    {&hy_mixer_titans_mag, false, true}, {&hy_mixer_titans_mac, false, true},
    {&hy_mixer_sigmoid, false, true},    {&hy_mixer_softplus, false, true},
    {&hy_mixer_sla, false, false},       {&hy_mixer_conv, false, true}};
enum { N_KINDS = sizeof KINDS / sizeof *KINDS };

const hy_mixer_kind *hy_mixer_find(const char *name) {
  for (size_t i = 0; i < N_KINDS; i++)
    if (!strcmp(KINDS[i].kind->name, name)) return KINDS[i].kind;
  return NULL;
}

/* kind's row of KINDS; NULL for a kind not listed */
static const kind_entry *entry_of(const hy_mixer_kind *kind) {
  for (size_t i = 0; i < N_KINDS; i++)
    if (KINDS[i].kind == kind) return &KINDS[i];
  return NULL;
}

bool hy_mixer_documents(const hy_mixer_kind *kind) {
  const kind_entry *e = entry_of(kind);
  return e && e->documents;
}

static int padding = -1; /* hy_mixer_pad_documents */

void hy_mixer_pad_documents(int pad) { padding = pad; }

static bool causal(const hy_mixer_kind *kind) {
  const kind_entry *e = entry_of(kind);
  return e && e->causal;
}

static const hy_tensor *positions, *positions_host;

const hy_tensor *hy_mixer_positions(void) { return positions; }

const hy_tensor *hy_mixer_positions_host(void) { return positions_host; }

void hy_mixer_set_positions(const hy_tensor *p, const hy_tensor *host) {
  positions = p;
  positions_host = host;
}

const char *hy_mixer_names(void) {
  static char names[256];
  if (!names[0])
    for (size_t i = 0, n = 0; i < N_KINDS; i++)
      n +=
          (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "", KINDS[i].kind->name);
  return names;
}

/* ---- packed documents, each run as a sequence of its own ---- */

typedef struct {
  int64_t row, start, len;
} document;

typedef struct {
  int64_t len, index; /* the length a document runs at and its index in row order */
} length_entry;

static int shorter(const void *a, const void *b) {
  const length_entry *x = a, *y = b;
  if (x->len != y->len) return x->len < y->len ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

/* The length a document of len tokens runs at, in rows of T: on the GPU, a causal kind's
 * documents are padded at their end to the next power of two (at most T), so that a batch makes a
 * few forwards of many documents rather than one per distinct length (each a run of small
 * launches), at the price of at most twice the tokens. On the CPU, where a small forward costs
 * little more than its arithmetic, the padding measured slower (docs/data.md). */
static int64_t run_length(bool pad, int64_t len, int64_t T) {
  if (!pad) return len;
  int64_t l = 1;
  while (l < len) l *= 2;
  return l < T ? l : T;
}

/* kind->forward on x [B, T, d] whose rows hold documents starting where the host positions
 * [B, T] are 0 (and at each row's start): the documents of one run length go through the mixer
 * together, as a batch, padded with zeros where they are shorter; each output row is put back
 * where its document was. */
static hy_tensor *forward_documents(const hy_mixer_kind *kind, void *mixer, hy_tensor *x,
                                    const hy_tensor *pos) {
  int64_t B = x->shape[0], T = x->shape[1], n = 0;
  document *docs = malloc((size_t)(B * T) * sizeof *docs);
  length_entry *lengths = malloc((size_t)(B * T) * sizeof *lengths);
  hy_tensor **in = malloc((size_t)(2 * B * T + B) * sizeof *in), **out = in + B * T;
  if (!docs || !lengths || !in) hy_die("mixer", "out of memory");
  const int32_t *p = pos->data;
  for (int64_t b = 0; b < B; b++) /* in row order */
    for (int64_t t = 0; t < T; t++) {
      if (t > 0 && p[b * T + t] != 0) continue;
      if (n > 0 && docs[n - 1].row == b) docs[n - 1].len = t - docs[n - 1].start;
      docs[n++] = (document){b, t, T - t};
    }
  bool pad = causal(kind) && (padding < 0 ? x->device == HY_CUDA : padding);
  for (int64_t i = 0; i < n; i++) lengths[i] = (length_entry){run_length(pad, docs[i].len, T), i};
  qsort(lengths, (size_t)n, sizeof *lengths, shorter);
  for (int64_t i = 0, j; i < n; i = j) { /* lengths[i .. j) run at one length */
    int64_t L = lengths[i].len;
    for (j = i + 1; j < n && lengths[j].len == L; j++) {
    }
    for (int64_t k = i; k < j; k++) {
      const document *d = &docs[lengths[k].index];
      hy_tensor *row = hy_slice(x, 0, d->row, d->row + 1);
      in[k - i] = hy_slice(row, 1, d->start, d->start + d->len);
      if (d->len < L) /* zeros of the row's device and dtype after it */
        in[k - i] = hy_concat(
            2, (hy_tensor *[]){in[k - i], hy_zeros_like(hy_slice(row, 1, 0, L - d->len))}, 1);
    }
    hy_tensor *y = kind->forward(mixer, j - i == 1 ? in[0] : hy_concat((int)(j - i), in, 0));
    for (int64_t k = i; k < j; k++)
      out[lengths[k].index] =
          hy_slice(hy_slice(y, 0, k - i, k - i + 1), 1, 0, docs[lengths[k].index].len);
  }
  hy_tensor **rows = out + n; /* each row's documents side by side, then the rows */
  for (int64_t i = 0, b = 0; b < B; b++) {
    int64_t first = i;
    while (i < n && docs[i].row == b) i++;
    rows[b] = i - first == 1 ? out[first] : hy_concat((int)(i - first), out + first, 1);
  }
  hy_tensor *y = B == 1 ? rows[0] : hy_concat((int)B, rows, 0);
  free(docs);
  free(lengths);
  free(in);
  return y;
}

/* The mixer on the whole sequence of every rank's x: gathered, run as one process would, and this
 * rank's rows kept. Exact, at the price of the whole input per layer on the wire and the whole
 * sequence's work on every rank. */
static hy_tensor *forward_gathered(const hy_mixer_kind *kind, void *mixer, hy_tensor *x,
                                   const hy_tensor *pos) {
  hy_sequence local = *hy_sequence_get();
  int64_t B = x->shape[0], T = x->shape[1], d = x->shape[2];
  hy_tensor *all = hy_dist_allgather(local.group, x); /* [W, B, T, d] */
  int64_t W = all->shape[0];
  hy_tensor *whole = hy_reshape(hy_contiguous(hy_transpose(all, 0, 1)), HY_SHAPE(B, W * T, d));
  hy_sequence_set(NULL, 0);
  hy_tensor *y = pos ? forward_documents(kind, mixer, whole, pos) : kind->forward(mixer, whole);
  hy_sequence_set(local.group, local.offset);
  return hy_slice(y, 1, local.offset, local.offset + T);
}

hy_tensor *hy_mixer_forward(const hy_mixer_kind *kind, void *mixer, hy_tensor *x) {
  const hy_tensor *pos = hy_mixer_documents(kind) ? NULL : positions_host;
  if (pos) { /* the mixer runs on documents: it sees no positions of its own */
    const hy_tensor *saved = positions;
    positions = positions_host = NULL;
    hy_tensor *y = hy_sequence_parallel() ? forward_gathered(kind, mixer, x, pos)
                                          : forward_documents(kind, mixer, x, pos);
    positions = saved, positions_host = pos;
    return y;
  }
  if (kind->sequence_parallel || !hy_sequence_parallel()) return kind->forward(mixer, x);
  return forward_gathered(kind, mixer, x, NULL);
}
