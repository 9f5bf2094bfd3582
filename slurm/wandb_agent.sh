#!/usr/bin/env bash
# W&B sweep agents on SLURM: one agent per job, one run per agent.
#
#   wandb sweep --project cnn-platform sweeps/resnext_table3.yaml        # prints ENTITY/PROJECT/SWEEP_ID
#   sbatch --array=0-29 slurm/wandb_agent.sh ENTITY/cnn-platform/SWEEP_ID
#
# Each array task starts `wandb agent --count 1`: it asks the sweep server for the next
# configuration and runs `python -m platform.train <key=value ...>` (the sweep's command) once.
# Size the array to the sweep's grid (rows x seeds). An agent's run is an ordinary run directory
# (runs/slurm-<array job id>_<task id>), so a preempted task resumes it when requeued; W&B keeps
# the run in the sweep. The node needs internet access to api.wandb.ai: on clusters without it,
# run the same grid with `python -m platform.sweep sweeps/X.yaml --slurm` (no W&B server).
#
# One GPU and one task per agent: the agent starts the training in the batch step itself.
# For multi-GPU runs per configuration use the job array instead (`python -m platform.sweep
# sweeps/X.yaml --slurm`, which runs each configuration under srun with one task per GPU).
#
#SBATCH --job-name=cnn-wandb-agent
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=12
#SBATCH --time=2-00:00:00
#SBATCH --output=logs/%x-%A_%a.out
#SBATCH --error=logs/%x-%A_%a.out
#SBATCH --open-mode=append
#SBATCH --signal=USR1@90
#SBATCH --requeue
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: sbatch --array=0-N slurm/wandb_agent.sh ENTITY/PROJECT/SWEEP_ID" >&2
    exit 2
fi

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

exec wandb agent --count 1 "$1"
