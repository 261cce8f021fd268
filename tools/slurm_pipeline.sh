#!/usr/bin/env bash
# Run the pipeline (or one stage) on a Slurm cluster, one process per GPU:
#   tools/slurm_pipeline.sh <partition> <job-name> <config> [run | stage <name>] [--cfg-options k=v ...]
# GPUS (total, default 8), GPUS_PER_NODE (default 8), CPUS_PER_TASK (default 5) and SRUN_ARGS shape the job.
# Each task maps Slurm's variables to torchrun's (pipeline/distributed.py) and joins one process group:
# training stages use DDP, per-image stages split their images across the tasks.
set -euo pipefail
cd "$(dirname "$0")/.."
PARTITION=$1; JOB_NAME=$2; CONFIG=$3; shift 3
CMD=(run)
if [[ "${1:-}" == "run" ]]; then shift; elif [[ "${1:-}" == "stage" ]]; then CMD=(stage "$2"); shift 2; fi
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
# the interpreter: $PYTHON, else the .venv that tools/install.sh made, else python on PATH
PY="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
# shellcheck disable=SC2086
srun -p "$PARTITION" --job-name="$JOB_NAME" --gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
    "$PY" -u -m pipeline.cli "${CMD[@]}" "$CONFIG" --launcher slurm "$@"
