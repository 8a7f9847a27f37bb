#!/usr/bin/env bash
# Continue the subtomogram encoder's supervised pretraining (the shipped full-path run) on a GPU
# machine (<= 9 min: full-path store on 15 CPU processes, then 300 s of training), results in $OUT.
#   device tool: run(command="bash benchmarks/device/encoder_pretrain.sh", carry=[".whl"], timeout_s=600)
#   CPU toy test: TOY=1 DEVICE=cpu OUT=/tmp/x bash benchmarks/device/encoder_pretrain.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:?set OUT}
DEVICE=${DEVICE:-cuda}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1
RUN=benchmarks/runs/cnn3d_fullpath
mkdir -p "$OUT/run"
for f in checkpoint.pt log.csv dev.csv; do
  if [ -f "$RUN/$f" ]; then cp "$RUN/$f" "$OUT/run/"; fi
done
if [ "${TOY:-0}" = 1 ]; then
  printf 'model: cnn3d_cpu\nmodel_overrides: {width: 4}\nn_assemblies: 2\nbatch_size: 4\nsteps: 3\ncheckpoint_every: 1\neval_every: 0\n' > "$OUT/config.yaml"
  rm -f "$OUT"/run/*
  WALL=60
  EXTRA=""
else
  cp "$RUN/config.yaml" "$OUT/config.yaml"
  EXTRA="--steps ${STEPS:-12000}"
  WALL=300
  # the full-path store of the training classes (half of each batch): 15 shards in parallel,
  # about 3 min on 16 cores (35 min on two here); the training then opens the finished store
  export CRYOFRAME_CACHE=/tmp/cryoframe_cache
  for k in $(seq 0 14); do
    python3 -c "
import torch; torch.set_num_threads(1)
from cryoframe.simulate.class_bank import build_class_bank
from cryoframe.train.supervised import SupervisedConfig, fullpath_store_path
from cryoframe.train.fullpath_bank import build_fullpath_bank_store
import yaml
cfg = SupervisedConfig(**{k: v for k, v in yaml.safe_load(open('$RUN/config.yaml')).items()})
build_fullpath_bank_store(build_class_bank(n_assemblies=cfg.n_assemblies, seed=cfg.seed),
    fullpath_store_path(cfg), cfg.fullpath_per_class, cfg.fullpath_seed, shard=($k, 15))
" > "$OUT/store_$k.log" 2>&1 &
  done
  wait
fi
python3 -m cryoframe.cli.main pretrain --objective supervised -c "$OUT/config.yaml" \
  --out "$OUT/run" --device "$DEVICE" --max-wall-s "$WALL" --threads 8 ${EXTRA} 2>&1 | tee "$OUT/log.txt"
for f in encoder.pt checkpoint.pt log.csv dev.csv; do
  if [ -f "$OUT/run/$f" ]; then mv "$OUT/run/$f" "$OUT/$f"; fi
done
rm -rf "$OUT/run"
