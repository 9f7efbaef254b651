# shellcheck shell=bash
# The probe's shared inputs in $in (sourced by probe.sh): a text, its dataset, two tiny recipes
# (one with every mixer kind, so that every layer key counts) and a checkpoint of each. Recipes
# write to run/ under the current folder: each case has its own.

# recipe NAME LAYERS [EXTRA TOML]: $in/NAME.toml, a model of d = 16 trained 2 steps of 2 x 16.
recipe() {
  cat >"$in/$1.toml" <<TOML
[run]
out = "run"
[model]
d_model = 16
n_heads = 2
layers = $2
[train]
batch = 2
seq_len = 16
steps = 2
log_every = 1
eval_every = 0
eval_batches = 1
checkpoint_every = 0
[data]
dataset = "$in/data.h5"
${3:-}
TOML
}

make_fixtures() {
  local line="It was the best of times, it was the worst of times, it was the age of wisdom."
  for _ in $(seq 400); do echo "$line"; done >"$in/text.txt"
  "$hyla" data prepare "$in/text.txt" "$in/data.h5" >/dev/null || {
    echo "probe.sh: cannot prepare the dataset"
    return 1
  }
  recipe tiny '["gla", "attn"]'
  recipe zoo '["attn", "gla", "lightning", "linear", "rat", "titans_mal", "titans_mag", "sigmoid", "softplus", "sla", "conv"]' \
    $'[layer.titans]\nchunk = 8\nwindow = 8\n[layer.sla]\nblock = 8\n[layer.rat]\nchunk = 4'
  local r
  for r in tiny zoo; do
    mkdir -p "$work/fixture"
    if ! (cd "$work/fixture" && "$hyla" train "$in/$r.toml" --quiet) ||
      ! mv "$work/fixture/run/ckpt-00000002.h5" "$in/$r.h5"; then
      echo "probe.sh: cannot train the $r fixture"
      return 1
    fi
    rm -rf "$work/fixture"
  done
  # eval's loss on the intact checkpoint: a damaged one must not give another without a word
  tiny_loss=$("$hyla" eval "$in/tiny.h5" | awk '$1 == "loss" {print $2}')
  [ -n "$tiny_loss" ] || {
    echo "probe.sh: cannot evaluate the fixture checkpoint"
    return 1
  }
  chmod -R a+rX "$in"
}
