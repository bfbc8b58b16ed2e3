#!/usr/bin/env bash
# Feature extraction as a slurm job array: array task K of N extracts the K-th of N contiguous parts
# of the dataset into Features/<dataset>/<method>.shard-K-of-N.h5; the N files then read as one store.
#
#   sbatch --array=0-15 scripts/slurm_extract.sh --method resnet50 --dataset Flickr500K
#   sbatch --array=0-15 --gres=gpu:1 scripts/slurm_extract.sh --method resnet50 --device cuda --dataset Flickr500K
#
# Every argument goes to extract_features.py. Resubmitting the same array redoes only the shards that
# are not complete (a finished shard file is skipped; an interrupted one resumes from its last chunk).
# Afterwards (docs/scaleout.md):
#   python -c "from extractor import load_features; print(len(load_features('Flickr500K', 'resnet50')))"
#   python search_experiment.py big --method resnet50 --database Flickr500K ... --block-size 100000 --ondisk
#
#SBATCH --job-name=extract
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=08:00:00
#SBATCH --output=extract_%A_%a.log
set -euo pipefail
: "${SLURM_ARRAY_TASK_ID:?run me with sbatch --array=0-(N-1) (SLURM_ARRAY_TASK_ID is not set)}"
: "${SLURM_ARRAY_TASK_COUNT:?run me with sbatch --array=0-(N-1) (SLURM_ARRAY_TASK_COUNT is not set)}"
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
PY="${PY:-.venv/bin/python}"
exec "$PY" extract_features.py --workers "${SLURM_CPUS_PER_TASK:-2}" "$@" \
    --shard "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT"
