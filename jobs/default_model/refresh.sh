#!/usr/bin/env bash
# Builds a candidate default bundle around a newly trained generator (a snapshot of a
# `ligan train stylegan2` run), reusing the current default's attribute model, identity network
# and trait probe, which read images and need no retraining. What belongs to the generator is
# fitted again: the attribute directions in W, the encoder (trained on from the current one),
# the PCA and the fillers' calibration. Every step resumes when run again.
#
#   jobs/default_model/refresh.sh WORK_DIR GENERATOR_BUNDLE [BASE_BUNDLE]
#
# GENERATOR_BUNDLE is a run's bundle/ folder (generator and discriminator); BASE_BUNDLE is the
# bundle whose readers and encoder are reused (default: models/bundles/default). WORK_DIR must
# hold the data split of build.sh step 1 (WORK_DIR/utk) or receives it. The candidate replaces
# models/bundles/default only by hand, after its numbers (WORK_DIR/metrics-*.json and
# WORK_DIR/lineup-*.json) beat the current default's (docs/model_card.md).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${1:?usage: refresh.sh WORK_DIR GENERATOR_BUNDLE [BASE_BUNDLE]}
GENERATOR=${2:?usage: refresh.sh WORK_DIR GENERATOR_BUNDLE [BASE_BUNDLE]}
BASE=${3:-$ROOT/models/bundles/default}
SHARED=${LIGAN_SHARED:-$ROOT/../shared}
# Overridable for a quick trial of the pipeline: encoder steps, faces of the quality metrics,
# and the suspect photos of the lineup evaluations (a glob of London photos; a number drawn
# from the held-out split).
ENCODER_STEPS=${ENCODER_STEPS:-12000}
ENCODER_IDENTITY_WEIGHT=${ENCODER_IDENTITY_WEIGHT:-0}
METRICS_SAMPLES=${METRICS_SAMPLES:-1000}
SUSPECTS=${SUSPECTS:-$SHARED/faces/london/*_03.jpg}
HELDOUT_SUSPECTS=${HELDOUT_SUSPECTS:-30}  # adults (20-70) drawn from the held-out split
LIGAN="$ROOT/.venv/bin/ligan"
PY="$ROOT/.venv/bin/python"
export TF_CPP_MIN_LOG_LEVEL=2
mkdir -p "$WORK"
BUNDLE="$WORK/bundle"
# A work folder belongs to one generator: its steps resume, so another would mix the two.
GENERATOR=$(cd "$GENERATOR" && pwd)
if [ -f "$WORK/generator" ] && [ "$(cat "$WORK/generator")" != "$GENERATOR" ]; then
    echo "refresh.sh: $WORK was started for $(cat "$WORK/generator"); use another WORK_DIR" >&2
    exit 2
fi
echo "$GENERATOR" > "$WORK/generator"

# 1. The data split (as build.sh makes it).
[ -f "$WORK/utk/split.json" ] || "$PY" "$ROOT/jobs/default_model/split_utkface.py" \
    "$SHARED/data/utkface" "$WORK/utk"

# 2. The new generator with the base bundle's readers; the directions in the new W.
if [ ! -f "$WORK/.readers-done" ]; then
    rm -rf "$BUNDLE"
    cp -r "$GENERATOR" "$BUNDLE"
    "$LIGAN" bundle carry-parts "$BUNDLE" --from "$BASE"
    "$LIGAN" attributes directions --bundle "$BUNDLE" --samples 2000
    touch "$WORK/.readers-done"
fi

# 3. The encoder: the base bundle's, trained on against the new generator (generated pairs and
#    real training chips), far longer than the first one's 3,000 steps. ENCODER_IDENTITY_WEIGHT
#    adds the identity network's loss (off by default: see the model card's identity network).
"$LIGAN" train encoder --bundle "$BUNDLE" --run-dir "$WORK/runs/encoder" \
    --data "$WORK/utk/train" --resume-from "$BASE" --steps "$ENCODER_STEPS" --batch 8 \
    --lr 3e-4 --channel-base 2048 --channel-max 128 \
    --identity-weight "$ENCODER_IDENTITY_WEIGHT" --no-progress

# 4. The PCA of the new W, with the fillers' page-1 radius and largest norm.
if [ ! -f "$WORK/.pca-done" ]; then
    "$LIGAN" bundle fit-pca "$BUNDLE" --samples 10000 --components 256 --no-progress
    touch "$WORK/.pca-done"
fi

# 5. The numbers that decide: generator quality and fillers for real suspects, for the
#    candidate and (to compare on the same machine) the base.
"$LIGAN" bundle verify "$BUNDLE"
for which in candidate base; do
    path=$BUNDLE; [ "$which" = base ] && path=$BASE
    "$LIGAN" train metrics --bundle "$path" --real "$WORK/utk/heldout" --samples "$METRICS_SAMPLES" \
        --psi 0.7 --json "$WORK/metrics-$which.json" --no-progress
    # shellcheck disable=SC2086  # SUSPECTS is a glob
    "$LIGAN" lineup evaluate $SUSPECTS \
        --labels "$SHARED/faces/london/info.csv" --bundle "$path" \
        --probe "$WORK/utk/heldout" \
        --json > "$WORK/lineup-$which.json"
    "$LIGAN" lineup evaluate "$WORK"/utk/heldout/*.jpg --ages 20-70 --sample "$HELDOUT_SUSPECTS" \
        --bundle "$path" --json > "$WORK/lineup-heldout-$which.json"
done
echo "candidate ready: $BUNDLE (compare $WORK/metrics-*.json and $WORK/lineup-*.json)"
