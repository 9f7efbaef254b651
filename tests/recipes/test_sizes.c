/* The sizes a recipe makes (recipes/sizes.h): the parameter count equals the built model's for
 * every mixer kind and option, the step estimate is within a quarter of the step arena's measured
 * peak and the forward estimate close to a forward pass's, products that do not fit in 64 bits are
 * refused naming their keys, and what does not fit in memory is refused before anything is
 * allocated. */
#include "layers/model.h"
#include "recipes/recipe.h"
#include "recipes/sizes.h"
#include "tensor/arena.h"
#include "tests/support.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static hy_recipe parse(int n, const char *const *sets) {
  hy_recipe r;
  hy_error err = {{0}};
  cr_assert_eq(hy_recipe_parse("", "recipes/sizes.toml", n, sets, &r, &err), 0, "%s", err.msg);
  return r;
}

static hy_recipe_sizes sizes(const hy_recipe *r) {
  hy_recipe_sizes s;
  hy_size_term fault;
  cr_assert_eq(hy_recipe_sizes_of(r, &s, &fault), 0, "%s", fault.what);
  return s;
}

/* The model built, one forward and backward pass on a micro-batch of the recipe's shape: the
 * parameter count it has, and the step arena's peak. */
static int64_t build_and_step(const hy_recipe *r, size_t *peak) {
  hy_model_config cfg = hy_recipe_model_config(r);
  hy_model *m = hy_model_new(&cfg, 1);
  int64_t B = r->train.batch, T = r->train.seq_len, params = hy_params_count(&m->params);
  hy_tensor *x = hy_empty_on(HY_CPU, HY_I32, HY_SHAPE(B, T));
  hy_tensor *y = hy_empty_on(HY_CPU, HY_I32, HY_SHAPE(B, T));
  for (int64_t i = 0; i < B * T; i++) {
    ((int32_t *)x->data)[i] = (int32_t)(i * 31 % r->model.vocab);
    ((int32_t *)y->data)[i] = (int32_t)(i * 7 % r->model.vocab);
  }
  hy_arena_peak_reset();
  hy_backward(hy_model_loss(m, x, y, -100));
  *peak = hy_arena_peak();
  hy_step_reset();
  hy_model_free(m);
  return params;
}

/* Each kind alone and with its options, and a mix; small enough to build in a moment, large
 * enough (B x T = 256) that a step's fixed costs do not blur the estimate. */
static const char *const CASES[][6] = {
    {"model.layers=\"attn x 2\""},
    {"model.layers=\"attn x 2\"", "layer.attn.naive=true", "model.tied_embeddings=false"},
    {"model.layers=\"gla x 2\""},
    {"model.layers=\"gla x 2\"", "layer.gla.expand_k=1", "layer.gla.heads=2",
     "layer.gla.gate_rank=8", "layer.gla.recurrent=true"},
    {"model.layers=\"gla\"", "layer.gla.expand_v=2", "model.vocab=1024"},
    {"model.layers=\"lightning x 2\""},
    {"model.layers=\"lightning x 2\"", "layer.lightning.heads=8", "layer.lightning.recurrent=true"},
    {"model.layers=\"linear x 2\""},
    {"model.layers=\"linear x 2\"", "layer.linear.heads=2", "layer.linear.recurrent=true"},
    {"model.layers=\"sigmoid x 2\""},
    {"model.layers=\"sigmoid x 2\"", "layer.sigmoid.naive=true", "layer.sigmoid.output_norm=false"},
    {"model.layers=\"softplus x 2\""},
    {"model.layers=\"softplus x 2\"", "layer.softplus.naive=true"},
    {"model.layers=\"sla x 2\""},
    {"model.layers=\"sla x 2\"", "layer.sla.naive=true", "layer.sla.block=16"},
    {"model.layers=\"sla x 2\"", "layer.sla.block=1"},
    {"model.layers=\"lightning,linear,gla\"", "layer.lightning.chunk=1", "layer.linear.chunk=2",
     "layer.gla.chunk=1"},
    {"model.layers=\"conv x 2\""},
    {"model.layers=\"conv,attn x 2\"", "layer.conv.kernel=8"},
    {"model.layers=\"conv x 2\"", "layer.conv.kernel=1"},
    {"model.layers=\"rat x 2\""},
    {"model.layers=\"rat x 2\"", "layer.rat.naive=true", "layer.rat.n_groups=4",
     "layer.rat.heads=8"},
    {"model.layers=\"titans_mal x 2\""},
    {"model.layers=\"titans_mag x 2\"", "layer.titans.depth=1", "layer.titans.heads=2",
     "layer.titans.head_dim=24", "layer.titans.persistent=0"},
    {"model.layers=\"titans_mal\"", "layer.titans.window=32", "layer.titans.chunk=16",
     "layer.titans.expansion=2"},
    {"model.layers=\"titans_mag\"", "layer.titans.reference=true", "train.seq_len=32",
     "train.batch=8"},
    {"model.layers=\"titans_mac x 2\"", "layer.titans.segment=32", "layer.titans.chunk=16"},
    {"model.layers=\"titans_mac x 2\"", "layer.titans.depth=1", "layer.titans.heads=2",
     "layer.titans.head_dim=24", "layer.titans.persistent=0"},
    {"model.layers=\"titans_mac x 2\"", "layer.titans.segment=16", "layer.titans.chunk=8",
     "layer.titans.expansion=2"},
    {"model.layers=\"titans_mac\"", "layer.titans.reference=true", "train.seq_len=32",
     "train.batch=8", "layer.titans.segment=16", "layer.titans.chunk=4"},
    {"model.layers=\"titans_mal,titans_mac\"", "layer.titans.segment=64"},
    {"model.layers=\"rat,attn,titans_mag,sla,gla,lightning,linear,sigmoid,softplus\""},
    {"model.layers=\"gla,attn\"", "train.precision=\"f64\"", "optim.name=\"sgd\""},
};

Test(sizes, the_parameter_count_is_the_models_and_the_step_estimate_is_close) {
  for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
    const char *sets[10] = {"model.d_model=64", "train.batch=2", "train.seq_len=128"};
    int n = 3;
    for (int i = 0; i < 6 && CASES[c][i]; i++) sets[n++] = CASES[c][i];
    hy_recipe r = parse(n, sets);
    hy_recipe_sizes s = sizes(&r);
    size_t peak;
    int64_t params = build_and_step(&r, &peak);
    cr_expect_eq(s.params, params, "%s: counted %lld parameters, the model has %lld", CASES[c][0],
                 (long long)s.params, (long long)params);
    double ratio = (double)s.step_bytes / (double)peak;
    cr_log_info("%s: step estimate %lld bytes, measured %zu (%.2f)", CASES[c][0],
                (long long)s.step_bytes, peak, ratio);
    cr_expect(ratio > 0.75 && ratio < 1.25,
              "case %zu (%s %s): the step estimate %lld bytes is %.2f times the measured %zu", c,
              CASES[c][0], CASES[c][1] ? CASES[c][1] : "", (long long)s.step_bytes, ratio, peak);
  }
}

/* The step arena's peak of a forward pass without gradients, as an evaluation runs it. */
static size_t forward_peak(const hy_recipe *r) {
  hy_model_config cfg = hy_recipe_model_config(r);
  hy_model *m = hy_model_new(&cfg, 1);
  int64_t B = r->train.batch, T = r->train.seq_len;
  hy_tensor *x = hy_empty_on(HY_CPU, HY_I32, HY_SHAPE(B, T));
  hy_tensor *y = hy_empty_on(HY_CPU, HY_I32, HY_SHAPE(B, T));
  for (int64_t i = 0; i < B * T; i++) {
    ((int32_t *)x->data)[i] = (int32_t)(i * 31 % r->model.vocab);
    ((int32_t *)y->data)[i] = (int32_t)(i * 7 % r->model.vocab);
  }
  hy_arena_peak_reset();
  hy_no_grad_begin();
  hy_item(hy_cross_entropy(hy_model_forward(m, x), y, -100));
  hy_no_grad_end();
  size_t peak = hy_arena_peak();
  hy_step_reset();
  hy_model_free(m);
  return peak;
}

/* Within a quarter below (what an evaluation could need beyond its check), or half above (the
 * mix of nine kinds: the step's share of each is less alike than of one kind). */
Test(sizes, the_forward_estimate_is_close) {
  for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
    const char *sets[10] = {"model.d_model=64", "train.batch=2", "train.seq_len=128"};
    int n = 3;
    for (int i = 0; i < 6 && CASES[c][i]; i++) sets[n++] = CASES[c][i];
    hy_recipe r = parse(n, sets);
    hy_recipe_sizes s = sizes(&r);
    size_t peak = forward_peak(&r);
    double ratio = (double)s.forward_bytes / (double)peak;
    cr_log_info("%s: forward estimate %lld bytes, measured %zu (%.2f)", CASES[c][0],
                (long long)s.forward_bytes, peak, ratio);
    cr_expect(ratio > 0.75 && ratio < 1.6,
              "case %zu (%s %s): the forward estimate %lld bytes is %.2f times the measured %zu", c,
              CASES[c][0], CASES[c][1] ? CASES[c][1] : "", (long long)s.forward_bytes, ratio, peak);
  }
}

Test(sizes, bytes_follow_the_precision_and_the_optimizer) {
  hy_recipe r = parse(0, NULL);
  hy_recipe_sizes f32 = sizes(&r);
  cr_expect_eq(f32.param_bytes, 4 * f32.params);
  cr_expect_eq(f32.held_bytes, 16 * f32.params, "values, gradients and AdamW's two moments");
  cr_expect_eq(f32.run_tokens, 1000LL * 8 * 256);
  cr_expect_eq(f32.eval_tokens, 16LL * 8 * 256);
  const char *f64_sgd[] = {"train.precision=\"f64\"", "optim.name=\"sgd\"", "dist.dp=2",
                           "train.grad_accum=3"};
  r = parse(4, f64_sgd);
  hy_recipe_sizes f64 = sizes(&r);
  cr_expect_eq(f64.params, f32.params);
  cr_expect_eq(f64.param_bytes, 8 * f64.params);
  cr_expect_eq(f64.held_bytes, 24 * f64.params, "values, gradients and SGD's momentum");
  cr_expect_eq(f64.step_bytes, 2 * f32.step_bytes);
  cr_expect_eq(f64.run_tokens, 1000LL * 3 * 8 * 256 * 2);
  cr_expect_eq(f64.eval_tokens, 16LL * 8 * 256 * 2);
  const char *bf16[] = {"train.precision=\"bf16\"", "train.device=\"cuda\""};
  r = parse(2, bf16);
  hy_recipe_sizes b = sizes(&r);
  cr_expect_eq(b.param_bytes, 4 * b.params, "the parameters stay f32");
  cr_expect_eq(b.held_bytes, 18 * b.params, "and a bf16 copy of each");
  cr_expect_eq(2 * b.step_bytes, f32.step_bytes);
}

/* ---- what does not fit ---- */

static void expect_refused(const char *text, int n, const char *const *sets, const char *want) {
  hy_recipe r;
  hy_error err = {{0}};
  cr_assert_eq(hy_recipe_parse(text, "recipes/big.toml", n, sets, &r, &err), -1,
               "accepted; expected an error containing:\n  %s", want);
  cr_expect(strstr(err.msg, want), "the message\n  %s\ndoes not contain\n  %s", err.msg, want);
}

#define TOO_BIG(name, set, want)                                                                   \
  Test(too_big, name) {                                                                            \
    const char *sets[] = {set};                                                                    \
    expect_refused("", 1, sets, want);                                                             \
  }

TOO_BIG(batch, "train.batch=9223372036854775807",
        "--set train.batch=9223372036854775807: a micro-batch's tokens, 9223372036854775807 "
        "(train.batch) x 256 (train.seq_len): more than 2^63 - 1")
TOO_BIG(tokens_times_width, "train.seq_len=9007199254740992",
        "--set train.seq_len=9007199254740992: the embedding and the norms' activations, 16 x "
        "72057594037927936 (tokens, train.batch x train.seq_len) x 128 (model.d_model): more "
        "than 2^63 - 1")
TOO_BIG(the_runs_tokens, "train.steps=4611686018427387904",
        "--set train.steps=4611686018427387904: the run's tokens, 4611686018427387904 "
        "(train.steps) x 1 (train.grad_accum) x 8 (train.batch) x 256 (train.seq_len) x 1 "
        "(dist.dp): more than 2^63 - 1")
TOO_BIG(an_evaluations_tokens, "train.eval_batches=4611686018427387904",
        "--set train.eval_batches=4611686018427387904: an evaluation's tokens")
TOO_BIG(ranks, "dist.dp=4294967296",
        "--set dist.dp=4294967296: [dist] dp x sp = 4294967296 x 1 "
        "ranks: at most 2147483647")
TOO_BIG(vocab_beyond_32_bit_tokens, "model.vocab=1152921504606846976",
        "[model] vocab = 1152921504606846976: tokens are 32-bit, so at most 2147483647")

/* The keys that make the size are named where the recipe sets them: the last one set. */
Test(too_big, the_error_names_the_line_of_the_last_key_set) {
  expect_refused("[model]\nlayers = \"attn x 2\"\n[train]\nseq_len = 2147483648\nbatch = 4\n"
                 "[layer.attn]\nnaive = true\n",
                 0, NULL,
                 "recipes/big.toml:7: the naive attention's scores, 4 x 8589934592 (tokens, "
                 "train.batch x train.seq_len) x 2 (attn) x 4 (model.n_heads) x 2147483648 "
                 "(train.seq_len): more than 2^63 - 1");
}

/* 2^51 elements of embedding (8 PiB in f32) fit in 64 bits but in no machine's memory. */
Test(too_big, parameters_beyond_memory_are_refused_before_anything_is_allocated) {
  const char *sets[] = {"model.vocab=2147483647", "model.d_model=1048576"};
  expect_refused("", 2, sets,
                 "--set model.d_model=1048576: the parameters take 8.1 PiB (the largest part: the "
                 "embedding, 2147483647 (model.vocab) x 1048576 (model.d_model)), more than the ");
}

Test(too_big, memory_checks_against_a_given_limit) {
  hy_recipe r = parse(0, NULL);
  hy_recipe_sizes s = sizes(&r);
  hy_size_term fault;
  cr_expect_eq(hy_recipe_sizes_fit(&s, false, 0, &fault), 0, "0: the memory is unknown");
  cr_expect_eq(hy_recipe_sizes_fit(&s, false, s.param_bytes, &fault), 0);
  cr_expect_eq(hy_recipe_sizes_fit(&s, true, s.held_bytes + s.step_bytes, &fault), 0);
  cr_assert_eq(hy_recipe_sizes_fit(&s, true, s.held_bytes + s.step_bytes - 1, &fault), -1);
  cr_expect(strstr(fault.what, "training on the CPU takes"), "%s", fault.what);
  cr_expect(strstr(fault.what, "the MLPs' activations"), "%s", fault.what);
  cr_expect_str_eq(fault.keys, "train.batch train.seq_len model.layers model.mlp_ratio "
                               "model.d_model model.mlp_multiple");
  cr_assert_eq(hy_recipe_sizes_fit(&s, false, s.param_bytes - 1, &fault), -1);
  cr_expect(strstr(fault.what, "the parameters take"), "%s", fault.what);
  cr_expect_gt(hy_memory_limit(), 0, "this machine's memory is known");
}

/* A CPU run whose step cannot fit is refused by hy_train before it allocates anything; the same
 * recipe on the GPU is not checked against this machine's memory. */
Test(too_big, a_cpu_run_beyond_memory_is_refused) {
  const char *sets[] = {"train.batch=268435456"}; /* 2^36 tokens: petabytes of activations */
  hy_recipe r = parse(1, sets);
  hy_error err = {{0}};
  cr_assert_eq(hy_recipe_check_memory(&r, &err), -1);
  cr_expect(strstr(err.msg, "training on the CPU takes") &&
                strstr(err.msg, "268435456 (train.batch)") == NULL &&
                strstr(err.msg, "(tokens, train.batch x train.seq_len)") &&
                strstr(err.msg, "more than the"),
            "%s", err.msg);
  const char *gpu[] = {"train.batch=268435456", "train.device=\"cuda\""};
  r = parse(2, gpu);
  cr_expect_eq(hy_recipe_check_memory(&r, &err), 0);
}

Test(sizes, bytes_are_written_for_people) {
  char buf[32];
  hy_format_bytes(12, buf, sizeof buf);
  cr_expect_str_eq(buf, "12 bytes");
  hy_format_bytes(1536, buf, sizeof buf);
  cr_expect_str_eq(buf, "1.5 KiB");
  hy_format_bytes((int64_t)3 << 30, buf, sizeof buf);
  cr_expect_str_eq(buf, "3.0 GiB");
  hy_format_bytes(INT64_MAX, buf, sizeof buf);
  cr_expect_str_eq(buf, "8.0 EiB");
}
