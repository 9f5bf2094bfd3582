#!/usr/bin/env bash
# A sweep as a SLURM job array: array task i runs configuration i of a sweep file.
#
#   sbatch --array=0-$(( $(python -m platform.sweep --count sweeps/x.yaml) - 1 )) slurm/sweep.sh sweeps/x.yaml [key=value ...]
#
# The sweep file (slurm/README.md) is a YAML list of override lists, or a W&B grid
# (`parameters: {key: {values: [...]}}`).  Overrides after the file apply to every task and come
# last, so they win (platform.sweep.array_job; `python -m platform.slurm sweep` is its older
# name).  Each task's run directory is runs/slurm-<array job id>_<task id>, so a requeued task
# resumes its own run.  Defaults and site notes: see slurm/imagenet.sh.
#
#SBATCH --job-name=cnn-sweep
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=12
#SBATCH --mem=0
#SBATCH --time=2-00:00:00
#SBATCH --output=logs/%x-%A_%a.out
#SBATCH --error=logs/%x-%A_%a.out
#SBATCH --open-mode=append
#SBATCH --signal=USR1@90
#SBATCH --requeue
set -euo pipefail

root=${CNN_PLATFORM_ROOT:-}
if [[ -z $root && -n ${SLURM_JOB_ID:-} ]]; then
    script=$(scontrol show job "$SLURM_JOB_ID" 2>/dev/null | sed -n 's/^ *Command=\([^ ]*\).*/\1/p' | head -n1)
    [[ -n $script && -f $script ]] && root=$(cd "$(dirname "$script")/.." && pwd)
fi
if [[ -z $root || ! -f $root/platform/train.py ]]; then
    root=${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
fi
cd "$root"

[[ -f .venv/bin/activate ]] && source .venv/bin/activate

# --kill-on-bad-exit: a rank that fails (or is killed) ends the whole step at once; the others would
# otherwise wait for it in a collective until trainer.dist_timeout_s
srun --kill-on-bad-exit=1 python -m platform.sweep --task "$@"
