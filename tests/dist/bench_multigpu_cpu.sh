#!/usr/bin/env bash
# scripts/bench_multigpu.sh's plan on 2 CPU ranks with the tiny hybrid: every point trains (none
# "failed"), every table row is there and each row of 2 ranks has its communication columns; and
# the pure-GLA model's weak scaling (--models, --scalings, --no-comm). Its numbers are not
# checked: a bench, not a test.
#   tests/dist/bench_multigpu_cpu.sh HYLA
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bench() {
  "$root/scripts/bench_multigpu.sh" --device cpu --gpus 2 --steps 2 --hyla "$1" \
    --recipe "$root/recipes/hybrid-3to1-tiny.toml" --gla "gla x 4" --tokens 256,512,128 \
    --out "$work/runs" "${@:2}" 2>&1
}
out=$(bench "$1" --models hybrid)
gla=$(bench "$1" --models gla --scalings weak --no-comm)
status=0
rows=$(grep -cE '^\| (weak sequence|strong sequence|data parallel) \| [12] \|' <<<"$out")
[ "$rows" = 6 ] || { echo "FAIL: $rows hybrid rows, expected 6 (3 scalings x N = 1, 2)"; status=1; }
# N = 2: the collectives timed apart and the step without them, a number each
timed=$(grep -E '^\| (weak sequence|strong sequence|data parallel) \| 2 \|' <<<"$out" |
  awk -F'|' '$8 + 0 > 0 && $9 + 0 > 0' | wc -l)
[ "$timed" = 3 ] || { echo "FAIL: $timed rows of N = 2 with comm ms/step and tokens/s without collectives, expected 3"; status=1; }
serial=$(grep -E '^\| weak sequence \| 2 \|' <<<"$out" | awk -F'|' '$11 + 0 > 0' | wc -l)
[ "$serial" = 1 ] || { echo "FAIL: $serial weak rows of N = 2 with tokens/s without overlap, expected 1"; status=1; }
rows=$(grep -cE '^\| weak sequence \| [12] \| .* \| - \| - \| - \| - \|$' <<<"$gla")
[ "$rows" = 2 ] || { echo "FAIL: $rows pure-GLA weak rows without the comm columns, expected 2"; status=1; }
if grep -q failed <<<"$out$gla"; then
  echo "FAIL: a point failed"
  status=1
fi
[ $status = 0 ] || { echo "$out"; echo "$gla"; tail -20 "$work"/runs/*.log; }
exit $status
