#!/usr/bin/env bash
# The GPU measurements quoted in bench/RESULTS.md and docs/performance.md, in one go:
# tlbench's training step vs a plain timm loop (eager and compiled, MFU), then the default and domain-shift suites.
# Usage: bash bench/gpu.sh OUTDIR   (needs tlbench installed; ~6 min on an H100)
set -u
out=${1:-bench-out}
mkdir -p "$out"
python3 bench/step.py --device cuda --size 224 --batch 256 \
    --models tf_efficientnet_lite0 resnet50 vit_small_patch16_224 --json "$out/step.jsonl"
timeout 150 tlbench run suites/vision.toml --output "$out/results" --no-report | tail -25
timeout 300 tlbench run suites/domain-shift.toml --output "$out/results" --no-report | tail -25
tar czf "$out/results.tgz" -C "$out" results
