#!/usr/bin/env bash
# The CUDA paths, run on a GPU machine and measured (bench/RESULTS.md "The CUDA paths on a
# lent GPU"):
#
#   bash bench/gpu_paths.sh DATA OUT
#
# DATA: minilm/ (all-MiniLM-L6-v2's config and tokenizer) with its weights beside it as
# model.fp16.safetensors.xz (stored fp16 and compressed to fit the 64 MiB a lent GPU machine
# takes; loaded into an fp32 model), mpnet/ (all-mpnet-base-v2's config and tokenizer only:
# its 438 MB do not travel, so its run starts from random weights and measures throughput,
# not accuracy), sst2/ (train.tsv: 8,000 rows of SST-2's train.tsv, random.Random(42); dev.tsv: the
# first 872 rows of dev.tsv; validation.tsv). Each step runs the CLI as a user would; OUT
# gets gpu_paths.json (every figure) and gpu_paths.log (each step's last lines).
set -u
# (DEVICE=cpu PRECISION=fp32 EPOCHS=1: a dry run of the script itself on a small DATA)
D=(--device "${DEVICE:-cuda}" --precision "${PRECISION:-bf16}")
DATA=$(realpath "$1"); OUT=$(realpath "$2"); WORK=${WORK:-/tmp/gpu-paths}
mkdir -p "$OUT" "$WORK"
et="python3 -m edgetransfer"
: > "$OUT/gpu_paths.log"
step() {  # step NAME COMMAND...: its time and exit status, the end of its output
  local name=$1; shift; local t0=$SECONDS
  "$@" > "$WORK/$name.log" 2>&1; local rc=$?
  echo "== $name: rc=$rc, $((SECONDS - t0)) s" | tee -a "$OUT/gpu_paths.log"
  tail -n 25 "$WORK/$name.log" >> "$OUT/gpu_paths.log"
  echo "{\"step\": \"$name\", \"rc\": $rc, \"wall_s\": $((SECONDS - t0))}" >> "$WORK/steps.jsonl"
}
rm -f "$WORK/steps.jsonl"
step env bash -c 'nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv;
  python3 -c "import torch, transformers, onnxruntime as o; print(torch.__version__,
  torch.version.cuda, torch.cuda.get_device_name(0), transformers.__version__, o.__version__,
  o.get_available_providers())"'
step gpu-tests python3 -m pytest -q -p no:cacheprovider -m gpu tests/stages/test_finetune.py \
  tests/stages/test_distill.py
mkdir -p "$WORK/minilm" && cp "$DATA"/minilm/* "$WORK/minilm/" &&
  python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]),
    open(sys.argv[2], 'wb'))" "$DATA/model.fp16.safetensors.xz" "$WORK/minilm/model.safetensors"
S=(--train "$DATA/sst2/train.tsv" --validation "$DATA/sst2/dev.tsv"
   --test "$DATA/sst2/validation.tsv")
step finetune-full $et finetune --model "$WORK/minilm" "${S[@]}" "${D[@]}" --epochs "${EPOCHS:-3}" --batch-size 32 --eval-steps 0 --out "$WORK/full" --overwrite
step finetune-lora $et finetune --model "$WORK/minilm" "${S[@]}" "${D[@]}" --epochs "${EPOCHS:-3}" --batch-size 32 --eval-steps 0 --method lora \
  --out "$WORK/lora" --overwrite
step distill $et distill --teacher "$WORK/full" "${S[@]}" --student-layers 3 "${D[@]}" --epochs "${EPOCHS:-3}" --batch-size 32 --eval-steps 0 --out "$WORK/student" --overwrite
step mpnet-random python3 -c "
import shutil, sys
from transformers import AutoConfig, AutoModel
src, dst = sys.argv[1:]
AutoModel.from_config(AutoConfig.from_pretrained(src)).save_pretrained(dst)
for f in ('tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt'):
    shutil.copy(f'{src}/{f}', dst)" "$DATA/mpnet" "$WORK/mpnet-random"
step finetune-mpnet $et finetune --model "$WORK/mpnet-random" "${S[@]}" "${D[@]}" --epochs 1 --batch-size 32 --eval-steps 0 --out "$WORK/mpnet" --overwrite
python3 - "$WORK" "$OUT/gpu_paths.json" <<'PY'
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
steps = [json.loads(line) for line in (work / "steps.jsonl").read_text().splitlines()]
runs = {}
for name in ("full", "lora", "student", "mpnet"):
    m = work / name / "metrics.json"
    if m.exists():
        m = json.loads(m.read_text())
        runs[name] = {"training": m.get("training"), "teacher": m.get("teacher")} | {
            split: {k: v for k, v in m[split].items() if k != "per_class"}
            for split in ("validation", "test") if m.get(split)}
out.write_text(json.dumps({"steps": steps, "runs": runs}, indent=1))
print(json.dumps({"steps": steps, "runs": runs}, indent=1)[:6000])
PY
