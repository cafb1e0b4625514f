#!/usr/bin/env bash
# How much the demo's stage 2 (sugar.demo.PRETRAIN_DEFAULTS["synthetic"]) moves with the seed and the precision, and
# whether more epochs steady it (docs/benchmarks.md, "The demo"): one `sugar pretrain` per seed and precision, then
# its test split. Prints: epochs, seed, cpu_bf16, best val top-1, test top-1 (text head).
#
#   EPOCHS=8 bash experiments/demo_seeds.sh                       # the 8-epoch demo, bf16 and fp32, seeds 1-3
#   EPOCHS=12 PRECISIONS=true bash experiments/demo_seeds.sh      # 12 epochs (lr steps at 9 and 11), bf16 only
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
OUT=${OUT:-runs/demo-seeds}
EPOCHS=${EPOCHS:-12}
SEEDS=${SEEDS:-1 2 3}
PRECISIONS=${PRECISIONS:-true false}   # cpu_bf16 values
case $EPOCHS in
  8) STEPS="[6,7]" ;;
  12) STEPS="[9,11]" ;;
  *) echo "EPOCHS: 8 or 12" >&2; exit 2 ;;
esac
DEMO=(--set data.dataset=synthetic --set data.frames=32 --set data.max_persons=1 --set batch_size=16 --set lr=0.05
      --set warmup_epochs=1 --set weight_decay=0.0001 --set epochs="$EPOCHS" --set "lr_steps=$STEPS")
mkdir -p "$OUT"
for seed in $SEEDS; do
  for bf16 in $PRECISIONS; do
    run=$OUT/e$EPOCHS-s$seed-bf16-$bf16
    $PY -m sugar.cli pretrain "${DEMO[@]}" --set seed="$seed" --set cpu_bf16="$bf16" --run-dir "$run" \
      --no-progress > "$run.log" 2>&1
    $PY -m sugar.cli evaluate "$run" --split test --no-tsne >> "$run.log" 2>&1
    $PY - "$run" <<'PY'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
val = max(json.loads(line)["val_top1"] for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip())
test = json.loads((run / "evaluation" / "test" / "results.json").read_text())["heads"]["text"]["all"]["top1"]
print(run.name, f"best val {val:.3f}", f"test {100 * test:.1f} %")
PY
  done
done
