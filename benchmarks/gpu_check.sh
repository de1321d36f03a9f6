#!/usr/bin/env bash
# The GPU check: every recipe briefly on CUDA in bf16 (MAML in fp32: it refuses half precision), then the MAML
# meta-step against `higher` on CUDA. Each run's all_results.json (throughput: train_samples_per_second, and
# peak_gpu_memory_mib) is copied into benchmarks/results/gpu_check/, and gpu_check.json sums them up.
#
#     bash benchmarks/gpu_check.sh                 # on a machine with a CUDA GPU; ~10 min on one H200
#     PY=python bash benchmarks/gpu_check.sh       # another interpreter than .venv/bin/python
#
# Needs the project installed (make install) and, for the MAML comparison, `pip install higher==0.2.1`
# (skipped with a note when it is missing). Nothing is downloaded: the built-in models and data are the packages.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=benchmarks/results/gpu_check
WORK=$(mktemp -d)
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check.sh: no CUDA device visible')" || exit 2

COMMON=(--report_to none --save_strategy no --eval_strategy no --per_device_eval_batch_size 256)
status=0
run() {  # run NAME RECIPE ARGS...: one recipe run, its results kept under NAME
  local name=$1 recipe=$2
  shift 2
  echo "== $name"
  if "$PY" "recipes/$recipe" "$@" --output_dir "$WORK/$name" > "$OUT/$name.log" 2>&1; then
    cp "$WORK/$name/all_results.json" "$OUT/$name.json"
  else
    echo "   failed: see $OUT/$name.log (last lines below)"
    tail -5 "$OUT/$name.log"
    status=1
  fi
}

run finetune_text_linear_probe finetune.py recipes/configs/default.yaml "${COMMON[@]}" --bf16 true
run finetune_text_full finetune.py recipes/configs/text_full.yaml "${COMMON[@]}" --bf16 true \
  --per_device_train_batch_size 64 --max_train_samples 8000 --num_train_epochs 1
run finetune_text_lora finetune.py recipes/configs/text_lora.yaml "${COMMON[@]}" --bf16 true \
  --per_device_train_batch_size 64 --max_train_samples 8000 --num_train_epochs 1
run finetune_vision_full_randaugment finetune.py recipes/configs/vision_full.yaml "${COMMON[@]}" --bf16 true \
  --image_size 224 --augmentation randaugment --mixup 0.8 --cutmix 1.0 --model_ema true --max_train_samples 8000
run finetune_vision_lora finetune.py recipes/configs/vision_lora.yaml "${COMMON[@]}" --bf16 true \
  --image_size 224 --max_train_samples 8000
run contrastive_simcse contrastive_pretrain.py recipes/configs/contrastive_simcse_drug_reviews.yaml \
  "${COMMON[@]}" --bf16 true --num_train_epochs 1
run domain_adapt_dann domain_adapt.py recipes/configs/domain_adapt_text.yaml "${COMMON[@]}" --bf16 true
run maml_vision maml.py recipes/configs/maml_vision.yaml --report_to none --max_steps 20

if "$PY" -c "import higher" 2>/dev/null; then
  echo "== maml_vs_higher (cuda)"
  "$PY" benchmarks/maml_vs_higher.py --device cuda --threads 4 --output_file "$OUT/maml_vs_higher_cuda.json" \
    > "$OUT/maml_vs_higher_cuda.log" 2>&1 || { echo "   failed: see $OUT/maml_vs_higher_cuda.log"; status=1; }
else
  echo "== maml_vs_higher skipped: pip install higher==0.2.1" | tee "$OUT/maml_vs_higher_cuda.log"
fi

"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path

import torch

out = Path(sys.argv[1])
summary = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "runs": {}}
for file in sorted(out.glob("*.json")):
    if file.name in ("gpu_check.json", "maml_vs_higher_cuda.json"):
        continue
    results = json.loads(file.read_text())
    keys = ("train_samples_per_second", "train_runtime", "probe_runtime", "meta_train_runtime", "peak_gpu_memory_mib",
            "eval_accuracy", "test_accuracy", "target_test_accuracy", "meta_test_accuracy")
    summary["runs"][file.stem] = {k: results[k] for k in keys if k in results}
last = (out / "maml_vs_higher_cuda.log").read_text().strip().splitlines()[-1:]  # "speedup_vs_higher: X"
if last and last[0].startswith("speedup_vs_higher:"):
    summary["maml_speedup_vs_higher"] = float(last[0].split(":")[1])
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
PYEOF
rm -rf "$WORK"
exit $status
