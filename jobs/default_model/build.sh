#!/usr/bin/env bash
# Builds LiGAN's bundled default model (models/bundles/default) from UTKFace, the way the
# shipped one was built (docs/model_card.md). Every step resumes when run again; on a cluster,
# put `--slurm --partition ... --gpus 1 --time ...` on the `ligan train` lines instead.
#
#   jobs/default_model/build.sh WORK_DIR [GAN_KIMG]     (the shipped model: 100 kimg)
#
# WORK_DIR receives the data split and the run folders; the finished bundle is copied to
# models/bundles/default only by hand (review the model card numbers first).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${1:?usage: build.sh WORK_DIR [GAN_KIMG]}
KIMG=${2:-100}
SHARED=${LIGAN_SHARED:-$ROOT/../shared}
LIGAN="$ROOT/.venv/bin/ligan"
PY="$ROOT/.venv/bin/python"
export TF_CPP_MIN_LOG_LEVEL=2
mkdir -p "$WORK"

# 1. Data: UTKFace chips as they are (already aligned: the `utkface` framing), grayscale chips
#    dropped, 5 % held out by file-name hash for the quality metrics.
[ -f "$WORK/utk/split.json" ] || "$PY" "$ROOT/jobs/default_model/split_utkface.py" \
    "$SHARED/data/utkface" "$WORK/utk"

# 2. The GAN: 64 px, a small network that trains on CPUs (channel base 2048, max 128, z/w 256,
#    4 mapping layers), translation augmentation only, quality metrics every 20 kimg.
"$LIGAN" train stylegan2 --data "$WORK/utk/train" --run-dir "$WORK/runs/utk64" \
    --resolution 64 --batch 32 --kimg "$KIMG" --z-dim 256 --w-dim 256 --mapping-layers 4 \
    --channel-base 2048 --channel-max 128 --augment translation --seed 0 \
    --tick-kimg 2 --snapshot-kimg 20 --metrics "$WORK/utk/heldout" --metrics-samples 200 \
    --data-description "UTKFace aligned & cropped faces (21,885 training chips; 5% held out by file-name hash; grayscale chips dropped)" \
    --data-licence "UTKFace: non-commercial research purposes only" --framing utkface \
    --no-progress
rm -rf "$WORK/bundle"
cp -r "$WORK/runs/utk64/bundle" "$WORK/bundle"

# 3. The attribute model (UTKFace age/gender/ethnicity, CelebA attributes framed like UTKFace)
#    and its directions in this generator's W.
"$LIGAN" train attributes --bundle "$WORK/bundle" --run-dir "$WORK/runs/attributes" \
    --utkface "$SHARED/data/utkface" --celeba "$SHARED/data/celeba_attr" --steps 12000 \
    --no-progress
"$LIGAN" attributes directions --bundle "$WORK/bundle" --samples 2000

# 4. The encoder (generated pairs and real chips), then the PCA of W for filler sampling
#    (fit-pca also calibrates the fillers' page-1 radius and largest norm).
"$LIGAN" train encoder --bundle "$WORK/bundle" --run-dir "$WORK/runs/encoder" \
    --data "$WORK/utk/train" --steps 3000 --batch 8 --lr 3e-4 --channel-base 2048 \
    --channel-max 128 --no-progress
"$LIGAN" bundle fit-pca "$WORK/bundle" --samples 10000 --components 256 --no-progress

# 5. The identity network (dlib's descriptor distilled; its set's generated look-alikes need
#    the PCA's filler radius), then the trait probe on the same set's UTKFace faces.
"$LIGAN" train identity --bundle "$WORK/bundle" --run-dir "$WORK/runs/identity" \
    --utkface "$SHARED/data/utkface" --celeba "$SHARED/data/celeba_attr" --steps 1600 \
    --no-progress
"$LIGAN" train trait-probe --bundle "$WORK/bundle" --run-dir "$WORK/runs/identity"

# 6. The numbers of the model card.
"$LIGAN" train metrics --bundle "$WORK/bundle" --real "$WORK/utk/heldout" --samples 1000 \
    --psi 0.7 --json "$WORK/metrics.json" --no-progress
"$LIGAN" bundle verify "$WORK/bundle"
echo "bundle ready: $WORK/bundle (metrics: $WORK/metrics.json)"
