#include "recipes/sizes.h"
#include "util/checked.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

_Static_assert(SIZE_MAX >= INT64_MAX, "a size that fits in int64_t fits in size_t");

/* A number a size is made of: its value, its name in messages, and the keys it comes from. */
typedef struct {
  int64_t v;
  const char *name; /* "model.d_model", "the MLP width" */
  const char *keys; /* "model.mlp_ratio model.d_model model.mlp_multiple" */
} factor;

/* Sums of terms, each num / den x the product of factors; the first overflow stops everything
 * and is named in *fault, and the largest term seen is kept for messages. */
typedef struct {
  bool failed;
  hy_size_term *fault;
  int64_t top_value;
  hy_size_term top;
} counter;

/* "what, 3 x 12 (layers) x 768 (model.d_model)", and the factors' keys. */
static void describe(hy_size_term *t, const char *what, int64_t num, int64_t den, int n,
                     const factor *f) {
  size_t len = (size_t)snprintf(t->what, sizeof t->what, "%s, ", what);
  if (num != 1)
    len += (size_t)snprintf(t->what + len, sizeof t->what - len, "%lld x ", (long long)num);
  for (int i = 0; i < n && len < sizeof t->what; i++)
    len += (size_t)snprintf(t->what + len, sizeof t->what - len, "%s%lld (%s)", i ? " x " : "",
                            (long long)f[i].v, f[i].name);
  if (den != 1 && len < sizeof t->what)
    snprintf(t->what + len, sizeof t->what - len, " / %lld", (long long)den);
  len = 0;
  t->keys[0] = 0;
  for (int i = 0; i < n && len < sizeof t->keys; i++)
    len += (size_t)snprintf(t->keys + len, sizeof t->keys - len, "%s%s", len ? " " : "", f[i].keys);
}

/* *sum += num x f[0] x ... x f[n-1] / den. */
static void add(counter *c, int64_t *sum, const char *what, int64_t num, int64_t den, int n,
                const factor *f) {
  if (c->failed) return;
  int64_t v = num;
  bool ok = true;
  for (int i = 0; i < n && ok; i++) ok = hy_checked_mul(v, f[i].v, &v);
  if (ok) v /= den;
  if (ok && hy_checked_add(*sum, v, sum)) {
    if (v > c->top_value) {
      c->top_value = v;
      describe(&c->top, what, num, den, n, f);
    }
    return;
  }
  c->failed = true;
  describe(c->fault, what, num, den, n, f);
  size_t len = strlen(c->fault->what);
  snprintf(c->fault->what + len, sizeof c->fault->what - len, ": more than 2^63 - 1");
}

#define TERM(c, sum, what, num, den, ...)                                                          \
  add(c, sum, what, num, den, sizeof((factor[]){__VA_ARGS__}) / sizeof(factor),                    \
      (factor[]){__VA_ARGS__})

static int64_t count_kind(const hy_recipe *r, const char *kind) {
  return hy_recipe_count_layers(r, kind);
}

/* How many layers of the kind, named by the kind. */
static factor layers_of(const hy_recipe *r, const char *kind) {
  return (factor){count_kind(r, kind), kind, "model.layers"};
}

bool hy_recipe_gla_widths(const hy_recipe *r, int64_t *heads, int64_t *key, int64_t *value) {
  const hy_gla_config *g = &r->layer_gla;
  double d = (double)r->model.d_model;
  *heads = g->heads ? g->heads : r->model.n_heads;
  return hy_checked_trunc(g->expand_k * d, key) && hy_checked_trunc(g->expand_v * d, value);
}

bool hy_recipe_titans_widths(const hy_recipe *r, int64_t *heads, int64_t *dim, int64_t *hidden) {
  const hy_titans_config *t = &r->layer_titans;
  *heads = t->heads;
  *dim = t->head_dim ? t->head_dim : r->model.d_model / t->heads;
  if (t->depth != 2) return *hidden = *dim, true;
  return hy_checked_trunc(t->expansion * (double)*dim, hidden);
}

/* The factors of a Titans memory: its heads, its head width and its hidden width. */
typedef struct {
  factor heads, width, hidden;
} titans_factors;

static titans_factors titans_factors_of(const hy_recipe *r) {
  int64_t H = 0, Dm = 0, hidden = 0;
  hy_recipe_titans_widths(r, &H, &Dm, &hidden);
  return (titans_factors){
      {H, "layer.titans.heads", "layer.titans.heads"},
      {Dm, "the memory head width", "layer.titans.head_dim layer.titans.heads model.d_model"},
      {hidden, "the memory hidden width", "layer.titans.expansion layer.titans.head_dim"}};
}

/* ---- the parameters, tensor by tensor as the layers make them ---- */

static void count_params(const hy_recipe *r, counter *c, int64_t *p) {
  hy_model_config cfg = hy_recipe_model_config(r);
  int64_t d = r->model.d_model, nh = r->model.n_heads;
  factor D = {d, "model.d_model", "model.d_model"},
         V = {r->model.vocab, "model.vocab", "model.vocab"};
  factor L = {r->model.n_layers, "layers", "model.layers"};
  factor HID = {cfg.mlp_hidden, "the MLP width",
                "model.mlp_ratio model.d_model model.mlp_multiple"};
  factor HD = {d / nh, "the head size", "model.d_model model.n_heads"};
  TERM(c, p, "the embedding", 1, 1, V, D);
  if (!r->model.tied_embeddings) TERM(c, p, "the LM head", 1, 1, D, V);
  TERM(c, p, "the norms", 1, 1, D);
  TERM(c, p, "the blocks' norms", 2, 1, L, D);
  TERM(c, p, "the MLPs", 3, 1, L, D, HID);
  factor N;
#define KIND(name) ((N = layers_of(r, name)).v > 0)
  /* attention: q, k, v, o [d, d]; the variants built on it add their own */
  int64_t n_attn = count_kind(r, "attn") + count_kind(r, "sigmoid") + count_kind(r, "softplus") +
                   count_kind(r, "sla") + count_kind(r, "titans_mal") +
                   count_kind(r, "titans_mag") + count_kind(r, "titans_mac");
  if (n_attn)
    TERM(c, p, "the attention projections", 4, 1, {n_attn, "attention layers", "model.layers"}, D,
         D);
  if (KIND("sigmoid") && r->layer_sigmoid.output_norm) TERM(c, p, "sigmoid's norms", 1, 1, N, HD);
  if (KIND("sla")) {
    TERM(c, p, "sla's linear branch", 1, 1, N, HD, HD);
    TERM(c, p, "sla's linear branch", 1, 1, N, HD);
  }
  if (KIND("lightning")) TERM(c, p, "lightning's projections", 5, 1, N, D, D);
  if (KIND("linear")) {
    int64_t h = r->layer_linear.heads ? r->layer_linear.heads : nh;
    TERM(c, p, "linear's projections", 4, 1, N, D, D);
    TERM(c, p, "linear's norms", 1, 1, N,
         {d / h, "linear's head size", "model.d_model layer.linear.heads"});
  }
  if (KIND("conv")) {
    TERM(c, p, "conv's projection", 1, 1, N, D, D);
    TERM(c, p, "conv's taps and bias", 1, 1, N,
         {r->layer_conv.kernel + 1, "layer.conv.kernel + 1", "layer.conv.kernel"}, D);
  }
  if (KIND("rat")) {
    int64_t h = r->layer_rat.heads ? r->layer_rat.heads : nh;
    factor QK = {r->layer_rat.n_groups * (d / h), "rat's query width",
                 "layer.rat.n_groups layer.rat.heads model.d_model"};
    TERM(c, p, "rat's projections", 4, 1, N, D, D);
    TERM(c, p, "rat's gate bias", 1, 1, N, D);
    TERM(c, p, "rat's query and key projections", 2, 1, N, D, QK);
  }
  if (KIND("gla")) {
    int64_t H = 1, k = 0, v = 0;
    hy_recipe_gla_widths(r, &H, &k, &v);
    factor K = {k, "gla's key width", "layer.gla.expand_k model.d_model"};
    factor VV = {v, "gla's value width", "layer.gla.expand_v model.d_model"};
    factor R = {r->layer_gla.gate_rank, "layer.gla.gate_rank", "layer.gla.gate_rank"};
    TERM(c, p, "gla's query and key projections", 2, 1, N, D, K);
    TERM(c, p, "gla's value, gate and output projections", 3, 1, N, D, VV);
    TERM(c, p, "gla's forget gate", 1, 1, N, D, R);
    TERM(c, p, "gla's forget gate", 1, 1, N, R, K);
    TERM(c, p, "gla's forget gate bias", 1, 1, N, K);
    TERM(c, p, "gla's norms", 1, 1, N,
         {v / H, "gla's value head size", "layer.gla.expand_v layer.gla.heads"});
  }
  int64_t n_titans =
      count_kind(r, "titans_mal") + count_kind(r, "titans_mag") + count_kind(r, "titans_mac");
  if (n_titans) {
    const hy_titans_config *t = &r->layer_titans;
    titans_factors m = titans_factors_of(r);
    factor MH = m.heads, MD = m.width, MF = m.hidden;
    N = (factor){n_titans, "titans layers", "model.layers"};
    TERM(c, p, "the memory's projections", 4, 1, N, D, MH, MD);
    TERM(c, p, "the memory's gates", 3, 1, N, D, MH);
    TERM(c, p, "the memory's gate biases", 3, 1, N, MH);
    if (t->depth == 1)
      TERM(c, p, "the memory's weights", 1, 1, N, MH, MD, MD);
    else
      TERM(c, p, "the memory's weights", 2, 1, N, MH, MD, MF);
    if (t->persistent > 0)
      TERM(c, p, "the persistent keys and values", 2, 1, N,
           {t->persistent, "layer.titans.persistent", "layer.titans.persistent"},
           {nh, "model.n_heads", "model.n_heads"}, HD);
    if (KIND("titans_mag")) TERM(c, p, "titans_mag's norms", 2, 1, N, D);
    if (KIND("titans_mac")) TERM(c, p, "titans_mac's norms", 2, 1, N, D);
  }
#undef KIND
}

/* ---- an estimate of a step's activations ---- */

/* Tokens per chunk of a sequence of T: a longer chunk is the whole sequence. */
static int64_t chunked(int64_t chunk, int64_t T) { return chunk < T ? chunk : T; }

/* Elements of the activation dtype for one micro-batch: per token, 16 d + 5/4 V for the
 * embedding, the final norm and the loss, 6 times the MLP width per block, each mixer's own (what
 * its backward keeps), and once the largest of the mixers' passing needs while one block runs its
 * backward. The coefficients were measured on the CPU (hy_arena_peak after a forward and backward,
 * B x T >= 256) and are checked there by tests/recipes/test_sizes.c. */
static void count_step(const hy_recipe *r, counter *c, int64_t *a, int64_t *forward_kept) {
  hy_model_config cfg = hy_recipe_model_config(r);
  int64_t d = r->model.d_model, nh = r->model.n_heads, T = r->train.seq_len;
  int64_t tokens = 0;
  TERM(c, &tokens, "a micro-batch's tokens", 1, 1, {r->train.batch, "train.batch", "train.batch"},
       {T, "train.seq_len", "train.seq_len"});
  factor TK = {tokens, "tokens, train.batch x train.seq_len", "train.batch train.seq_len"};
  factor D = {d, "model.d_model", "model.d_model"},
         V = {r->model.vocab, "model.vocab", "model.vocab"};
  factor L = {r->model.n_layers, "layers", "model.layers"};
  factor HID = {cfg.mlp_hidden, "the MLP width",
                "model.mlp_ratio model.d_model model.mlp_multiple"};
  factor H = {nh, "model.n_heads", "model.n_heads"};
  TERM(c, a, "the embedding and the norms' activations", 16, 1, TK, D);
  TERM(c, a, "the loss's activations", 5, 4, TK, V);
  TERM(c, a, "the MLPs' activations", 6, 1, TK, L, HID);
  int64_t passing = 0; /* the largest of the mixers' */
  factor N;
#define KIND(name) ((N = layers_of(r, name)).v > 0)
#define PASSING(what, num, den, ...)                                                               \
  do {                                                                                             \
    int64_t x = 0;                                                                                 \
    TERM(c, &x, what, num, den, __VA_ARGS__);                                                      \
    if (x > passing) passing = x;                                                                  \
  } while (0)
  const char *quadratic[] = {"attn", "sigmoid", "softplus"};
  bool naive[] = {r->layer_attn.naive, r->layer_sigmoid.naive, r->layer_softplus.naive};
  const char *naive_keys[] = {"train.seq_len layer.attn.naive", "train.seq_len layer.sigmoid.naive",
                              "train.seq_len layer.softplus.naive"};
  for (int i = 0; i < 3; i++) {
    if (!KIND(quadratic[i])) continue;
    TERM(c, a, "attention's activations", 3, 1, TK, N, D);
    if (!naive[i]) continue;
    factor TT = {T, "train.seq_len", naive_keys[i]};
    TERM(c, a, "the naive attention's scores", i ? 5 : 4, 1, TK, N, H, TT);
    PASSING("the naive attention's scores", 2, 1, TK, H, TT);
  }
  if (KIND("sigmoid") && r->layer_sigmoid.output_norm)
    TERM(c, a, "sigmoid's norms", 1, 1, TK, N, D);
  if (KIND("sla")) {
    int64_t block = r->layer_sla.block, blocks = T / block + (T % block != 0);
    factor NB = {blocks, "blocks of layer.sla.block in train.seq_len",
                 "train.seq_len layer.sla.block"};
    TERM(c, a, "sla's activations", 10, 1, TK, N, D);
    /* the linear branch's states of each block, D (D + 1) a head: scratch, and in the backward
     * their gradients beside them */
    factor HD1 = {d / nh + 1, "the head size + 1", "model.d_model model.n_heads"};
    PASSING("sla's states of each block", 2, block, TK, D, HD1);
    TERM(c, a, "sla's block tables", 1, 1, {r->train.batch, "train.batch", "train.batch"}, N, H, NB,
         NB);
    PASSING("sla's activations", 2, 1, TK, D);
    if (r->layer_sla.naive) {
      factor TT = {T, "train.seq_len", "train.seq_len layer.sla.naive"};
      TERM(c, a, "the naive sla's scores", 10, 1, TK, N, H, TT);
      PASSING("the naive sla's scores", 2, 1, TK, H, TT);
    }
  }
  if (KIND("conv")) {
    /* measured: 2 + 3 P of [B, T, d] a layer, P = min(K, T) - 1 the taps that reach back (each a
     * shifted view of x padded once, its product and its sum kept, and in the backward its
     * gradient) */
    int64_t P = (r->layer_conv.kernel < T ? r->layer_conv.kernel : T) - 1;
    TERM(c, a, "conv's activations", 2 + 3 * P, 1, TK, N, D);
  }
  if (KIND("rat")) {
    TERM(c, a, "rat's activations", r->layer_rat.naive ? 48 : 8, 1, TK, N, D);
    PASSING("rat's activations", 5, 2, TK, D);
  }
  if (KIND("gla")) {
    int64_t heads = 1, k = 0, v = 0;
    hy_recipe_gla_widths(r, &heads, &k, &v);
    TERM(c, a, "gla's activations", 8, 1, TK, N,
         {k, "gla's key width", "layer.gla.expand_k model.d_model"});
    TERM(c, a, "gla's activations", 6, 1, TK, N,
         {v, "gla's value width", "layer.gla.expand_v model.d_model"});
    PASSING("gla's activations", 1, 1, TK, D);
    if (!r->layer_gla.recurrent)
      TERM(c, a, "gla's state at each chunk", 1, chunked(r->layer_gla.chunk, T), TK, N,
           {k, "gla's key width", "layer.gla.expand_k model.d_model"},
           {v / heads, "gla's value head size", "layer.gla.expand_v layer.gla.heads"});
    else
      TERM(c, a, "the recurrent gla's states", 15, 4, TK, N,
           {k, "gla's key width", "layer.gla.expand_k model.d_model"},
           {v / heads, "gla's value head size", "layer.gla.expand_v layer.gla.heads"});
  }
  const char *linear[] = {"lightning", "linear"};
  int64_t lin_heads[] = {r->layer_lightning.heads, r->layer_linear.heads};
  bool recurrent[] = {r->layer_lightning.recurrent, r->layer_linear.recurrent};
  int64_t chunk[] = {r->layer_lightning.chunk, r->layer_linear.chunk};
  int64_t kept[] = {19, 21}, states[] = {7, 9}; /* halves, quarters */
  for (int i = 0; i < 2; i++) {
    if (!KIND(linear[i])) continue;
    TERM(c, a, "linear attention's activations", kept[i], 2, TK, N, D);
    PASSING("linear attention's activations", 1, 1, TK, D);
    int64_t h = lin_heads[i] ? lin_heads[i] : nh;
    factor HS = {d / h, "the head size", "model.d_model model.n_heads"};
    if (recurrent[i])
      TERM(c, a, "the recurrent states", states[i], 2 + 2 * i, TK, N, D, HS);
    else
      TERM(c, a, "the state at each chunk", 1, chunked(chunk[i], T), TK, N, D, HS);
  }
  int64_t n_titans =
      count_kind(r, "titans_mal") + count_kind(r, "titans_mag") + count_kind(r, "titans_mac");
  if (n_titans) {
    const hy_titans_config *t = &r->layer_titans;
    titans_factors m = titans_factors_of(r);
    factor HM = m.heads, MD = m.width, MF = m.hidden;
    N = (factor){n_titans, "titans layers", "model.layers"};
    int64_t per = t->reference ? 1 : chunked(t->chunk, T); /* tokens per memory update */
    TERM(c, a, "the memory's activations", 15, 1, TK, N, HM, MD);
    TERM(c, a, "the memory's activations", 2, 1, TK, N, HM, MF);
    TERM(c, a, "the memory's weights at each update", 4, per, TK, N, HM, MD, MF);
    TERM(c, forward_kept, "the memory's weights at each update", 4, per, TK, N, HM, MD, MF);
    /* titans_mal's and titans_mag's window attention; titans_mac's segments are below */
    N = (factor){n_titans - count_kind(r, "titans_mac"), "titans_mal and titans_mag layers",
                 "model.layers"};
    if (N.v > 0 && t->persistent > 0) {
      /* each block of queries sees the persistent keys, its own block and the one before */
      bool slide = t->window > 0 && t->window < T;
      int64_t keys = 0;
      TERM(c, &keys, "keys per block of queries", 1, 1,
           {t->persistent, "layer.titans.persistent", "layer.titans.persistent"});
      TERM(c, &keys, "keys per block of queries", slide ? 2 : 1, 1,
           {slide ? t->window : T, slide ? "layer.titans.window" : "train.seq_len",
            "layer.titans.window train.seq_len"});
      factor K = {keys, "keys per query block", "layer.titans.persistent layer.titans.window"};
      TERM(c, a, "the windowed attention's scores", 5, 1, TK, N, H, K);
      PASSING("the windowed attention's scores", 3, 1, TK, H, K);
    } else if (N.v > 0) {
      TERM(c, a, "attention's activations", 3, 1, TK, N, D);
    }
    if (KIND("titans_mag")) TERM(c, a, "titans_mag's gate", 4, 1, TK, N, D);
    if (KIND("titans_mac")) {
      /* each segment's queries see the persistent keys, the segment's read-outs and its tokens;
       * every segment's scores are kept for the backward */
      int64_t S = t->segment < T ? t->segment : T, keys = 0;
      TERM(c, &keys, "keys per segment", 1, 1,
           {t->persistent, "layer.titans.persistent", "layer.titans.persistent"});
      TERM(c, &keys, "keys per segment", 2, 1,
           {S, "layer.titans.segment", "layer.titans.segment train.seq_len"});
      factor K = {keys, "keys per segment", "layer.titans.persistent layer.titans.segment"};
      TERM(c, a, "titans_mac's activations", 48, 1, TK, N, D);
      TERM(c, a, "titans_mac's segment scores", 7, 2, TK, N, H, K);
      /* the memory's weights and momentum handed from segment to segment, and their copies */
      TERM(c, a, "the memory's state at each segment", 9, t->depth == 2 ? S : 2 * S, TK, N, HM, MD,
           MF);
      if (t->reference && t->depth == 2) {
        /* measured: the token loop from a segment's state keeps about 3 more copies of the two
         * weight matrices per update (with depth 1, none beyond the terms above) */
        int64_t per_update = chunked(t->chunk, S);
        TERM(c, a, "the reference memory's weights at each update", 6, per_update, TK, N, HM, MD,
             MF);
        TERM(c, forward_kept, "the reference memory's weights at each update", 6, per_update, TK, N,
             HM, MD, MF);
      }
    }
  }
#undef PASSING
#undef KIND
  TERM(c, a, "the largest passing need of a backward", 1, 1, {passing, "elements", "model.layers"});
}

/* ---- decoding a position at a time (hyla generate) ---- */

/* Elements of the model's dtype that decoding `positions` positions of one sequence keeps: each
 * layer's decoding state (attention's key and value caches, RAT's cache of chunks, Titans' window
 * or segment and memory, the linear layers' states) and, for the layers decoded by running their
 * forward over the inputs so far (sigmoid, softplus, sla: layers/prefix_decode.h), those inputs
 * and, at the last position, that forward's activations, counted as a step counts them. */
static void count_decode(const hy_recipe *r, int64_t positions, counter *c, int64_t *a) {
  int64_t d = r->model.d_model, nh = r->model.n_heads;
  factor P = {positions, "positions", ""};
  factor D = {d, "model.d_model", "model.d_model"};
  factor H = {nh, "model.n_heads", "model.n_heads"};
  factor N;
#define KIND(name) ((N = layers_of(r, name)).v > 0)
  if (KIND("attn")) TERM(c, a, "the attention layers' key and value caches", 2, 1, N, P, D);
  const char *prefix[] = {"sigmoid", "softplus", "sla"};
  bool naive[] = {r->layer_sigmoid.naive, r->layer_softplus.naive, r->layer_sla.naive};
  for (int i = 0; i < 3; i++) {
    if (!KIND(prefix[i])) continue;
    TERM(c, a, "the inputs of the layers decoded over the prefix", 1, 1, N, P, D);
    TERM(c, a, "their forward pass over the prefix", i == 2 ? 10 : 6, 1, N, P, D);
    if (naive[i]) TERM(c, a, "their naive forward's scores over the prefix", 2, 1, N, H, P, P);
  }
  if (KIND("sla") && !r->layer_sla.naive) {
    int64_t block = r->layer_sla.block, blocks = positions / block + (positions % block != 0);
    factor NB = {blocks, "blocks of the prefix", "layer.sla.block"};
    TERM(c, a, "sla's block tables over the prefix", 1, 1, N, H, NB, NB);
  }
  if (KIND("conv")) TERM(c, a, "conv's last inputs", r->layer_conv.kernel - 1, 1, N, D);
  if (KIND("rat")) {
    int64_t chunks = positions / r->layer_rat.chunk;
    TERM(c, a, "rat's cache of chunks", 2, 1, N, {chunks > 0 ? chunks : 1, "chunks", ""}, D);
  }
  int64_t n_titans =
      count_kind(r, "titans_mal") + count_kind(r, "titans_mag") + count_kind(r, "titans_mac");
  if (n_titans) {
    const hy_titans_config *t = &r->layer_titans;
    int64_t MH = 0, Dm = 0, hidden = 0;
    hy_recipe_titans_widths(r, &MH, &Dm, &hidden);
    int64_t slots = t->window > 0 && t->window < positions ? t->window : positions;
    N = (factor){n_titans, "titans layers", "model.layers"};
    TERM(c, a, "titans' memory", 3 * t->depth, 1, N, {MH, "layer.titans.heads", ""},
         {Dm, "the memory head width", ""}, {hidden, "the memory hidden width", ""});
    N = (factor){n_titans - count_kind(r, "titans_mac"), "titans_mal and titans_mag layers",
                 "model.layers"};
    if (N.v > 0)
      TERM(c, a, "titans' window of keys and values", 2, 1, N, {slots, "positions", ""}, D);
    if (KIND("titans_mac")) {
      /* the segment's keys and values, of its tokens and of their read-outs, and the memory's
       * weights and momentum when the segment began */
      TERM(c, a, "titans_mac's keys and values of the segment", 4, 1, N,
           {t->segment, "layer.titans.segment", ""}, D);
      TERM(c, a, "titans_mac's memory at the segment's start", 2 * t->depth, 1, N,
           {MH, "layer.titans.heads", ""}, {Dm, "the memory head width", ""},
           {hidden, "the memory hidden width", ""});
    }
  }
  if (KIND("gla")) {
    int64_t heads = 1, k = 0, v = 0;
    hy_recipe_gla_widths(r, &heads, &k, &v);
    TERM(c, a, "gla's states", 1, 1, N, {k, "gla's key width", ""},
         {v / heads, "gla's value head size", ""});
  }
  const char *linear[] = {"lightning", "linear"};
  int64_t lin_heads[] = {r->layer_lightning.heads, r->layer_linear.heads};
  for (int i = 0; i < 2; i++)
    if (KIND(linear[i]))
      TERM(c, a, "the linear layers' states", 1, 1, N, D,
           {d / (lin_heads[i] ? lin_heads[i] : nh), "the head size", ""});
#undef KIND
}

int hy_recipe_sizes_of(const hy_recipe *r, hy_recipe_sizes *s, hy_size_term *fault) {
  memset(s, 0, sizeof *s);
  counter c = {.fault = fault};
  count_params(r, &c, &s->params);
  s->param_top = c.top;
  c.top_value = 0;
  int64_t elements = 0, forward_kept = 0;
  count_step(r, &c, &elements, &forward_kept);
  s->step_top = c.top;
  bool f64 = (r->train.precision == HY_RECIPE_F64), bf16 = (r->train.precision == HY_RECIPE_BF16);
  factor P = {s->params, "parameters", s->param_top.keys};
  int64_t copies = 2 + ((r->optim.name != HY_RECIPE_SGD) ? 2 : 1); /* values, gradients, state */
  TERM(&c, &s->param_bytes, "the parameters' bytes", f64 ? 8 : 4, 1, P);
  TERM(&c, &s->held_bytes, "the bytes training holds", (f64 ? 8 : 4) * copies, 1, P);
  if (bf16) TERM(&c, &s->held_bytes, "the parameters' bf16 copies", 2, 1, P);
  int64_t element_bytes = f64 ? 8 : bf16 ? 2 : 4;
  TERM(&c, &s->step_bytes, "the bytes of a step's activations", element_bytes, 1,
       {elements, "elements", s->step_top.keys});
  /* at most step_bytes: no overflow where the step's bytes fit */
  if (!c.failed)
    s->forward_bytes = ((elements - forward_kept) / 5 * 2 + forward_kept) * element_bytes;
  factor B = {r->train.batch, "train.batch", "train.batch"};
  factor T = {r->train.seq_len, "train.seq_len", "train.seq_len"};
  factor DP = {r->dist.dp, "dist.dp", "dist.dp"};
  TERM(&c, &s->run_tokens, "the run's tokens", 1, 1, {r->train.steps, "train.steps", "train.steps"},
       {r->train.grad_accum, "train.grad_accum", "train.grad_accum"}, B, T, DP);
  TERM(&c, &s->eval_tokens, "an evaluation's tokens", 1, 1,
       {r->train.eval_batches, "train.eval_batches", "train.eval_batches"}, B, T, DP);
  return c.failed ? -1 : 0;
}

/* ---- memory ---- */

int64_t hy_memory_limit(void) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  int64_t limit = 0;
  if (pages > 0 && page > 0 && !hy_checked_mul(pages, page, &limit)) limit = INT64_MAX;
  int resources[] = {RLIMIT_AS, RLIMIT_DATA};
  for (int i = 0; i < 2; i++) {
    struct rlimit rl;
    if (getrlimit(resources[i], &rl) || rl.rlim_cur == RLIM_INFINITY) continue;
    if (rl.rlim_cur < (rlim_t)INT64_MAX && (limit == 0 || (int64_t)rl.rlim_cur < limit))
      limit = (int64_t)rl.rlim_cur;
  }
  return limit;
}

void hy_format_bytes(int64_t bytes, char *buf, size_t size) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) {
    snprintf(buf, size, "%lld bytes", (long long)bytes);
    return;
  }
  double x = (double)bytes / 1024;
  int u = 0;
  while (x >= 1024 && u < 5) x /= 1024, u++;
  snprintf(buf, size, "%.1f %s", x, units[u]);
}

int hy_recipe_sizes_fit(const hy_recipe_sizes *s, bool training, int64_t memory,
                        hy_size_term *fault) {
  int64_t need = s->param_bytes;
  bool fits = !training || hy_checked_add(s->held_bytes, s->step_bytes, &need);
  if (memory <= 0 || (fits && need <= memory)) return 0;
  char want[32], have[32], held[32], step[32];
  hy_format_bytes(memory, have, sizeof have);
  if (!training) {
    hy_format_bytes(s->param_bytes, want, sizeof want);
    snprintf(fault->what, sizeof fault->what,
             "the parameters take %s (the largest part: %.200s), more than the %s of memory this "
             "process may use",
             want, s->param_top.what, have);
    snprintf(fault->keys, sizeof fault->keys, "%s", s->param_top.keys);
    return -1;
  }
  hy_format_bytes(s->held_bytes, held, sizeof held);
  hy_format_bytes(s->step_bytes, step, sizeof step);
  bool step_most = s->step_bytes > s->held_bytes;
  const hy_size_term *top = step_most ? &s->step_top : &s->param_top;
  snprintf(
      fault->what, sizeof fault->what,
      "training on the CPU takes %s for the parameters, their gradients and the optimizer's "
      "state, and about %s for a step's activations (the largest part: %.200s), more than the %s "
      "of memory this process may use",
      held, step, top->what, have);
  snprintf(fault->keys, sizeof fault->keys, "%s", top->keys);
  return -1;
}

/* The recipe as hyla eval and generate run it: one process on the CPU, in f32 or f64. */
static hy_recipe on_the_cpu(const hy_recipe *r) {
  hy_recipe c = *r;
  c.train.device = HY_RECIPE_CPU;
  if (c.train.precision == HY_RECIPE_BF16) c.train.precision = HY_RECIPE_F32;
  c.dist.dp = c.dist.sp = 1;
  return c;
}

/* "needs about X for <what> (the largest part: ...), more than the Y ..." in err. */
static int beyond_memory(const char *what, int64_t params, int64_t bytes, const char *top,
                         int64_t memory, hy_error *err) {
  char p[32], b[32], m[32];
  hy_format_bytes(params, p, sizeof p);
  hy_format_bytes(bytes, b, sizeof b);
  hy_format_bytes(memory, m, sizeof m);
  return hy_fail(err,
                 "%s takes about %s besides the %s of parameters (the largest part: %.200s), "
                 "more than the %s of memory this process may use",
                 what, b, p, top, m);
}

int hy_recipe_check_eval(const hy_recipe *r, hy_error *err) {
  hy_recipe cpu = on_the_cpu(r);
  hy_recipe_sizes s;
  hy_size_term fault;
  if (hy_recipe_check(&cpu, err)) return -1;
  if (hy_recipe_sizes_of(&cpu, &s, &fault)) return hy_fail(err, "%s", fault.what);
  int64_t need, memory = hy_memory_limit();
  if (memory <= 0 || (hy_checked_add(s.param_bytes, s.forward_bytes, &need) && need <= memory))
    return 0;
  return beyond_memory("a batch's forward pass", s.param_bytes, s.forward_bytes, s.step_top.what,
                       memory, err);
}

int hy_recipe_check_decode(const hy_recipe *r, int64_t positions, hy_error *err) {
  hy_recipe cpu = on_the_cpu(r);
  hy_recipe_sizes s;
  hy_size_term fault;
  if (hy_recipe_sizes_of(&cpu, &s, &fault)) return hy_fail(err, "%s", fault.what);
  counter c = {.fault = &fault};
  int64_t elements = 0, bytes = 0, need, memory = hy_memory_limit();
  count_decode(&cpu, positions, &c, &elements);
  hy_size_term top = c.top; /* of the state's parts, not of their sum in bytes */
  TERM(&c, &bytes, "the decoding state's bytes", (cpu.train.precision != HY_RECIPE_F64) ? 4 : 8, 1,
       {elements, "elements", ""});
  if (c.failed) return hy_fail(err, "%s", fault.what);
  if (memory <= 0 || (hy_checked_add(s.param_bytes, bytes, &need) && need <= memory)) return 0;
  char what[64];
  snprintf(what, sizeof what, "decoding %lld positions", (long long)positions);
  return beyond_memory(what, s.param_bytes, bytes, top.what, memory, err);
}

int hy_recipe_check_memory(const hy_recipe *r, hy_error *err) {
  hy_recipe_sizes s;
  hy_size_term fault;
  if (r->train.device != HY_RECIPE_CPU) return 0;
  if (hy_recipe_sizes_of(r, &s, &fault) || hy_recipe_sizes_fit(&s, true, hy_memory_limit(), &fault))
    return hy_fail(err, "%s", fault.what);
  return 0;
}
