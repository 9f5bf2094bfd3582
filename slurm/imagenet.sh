#!/usr/bin/env bash
# ImageNet training on SLURM: `sbatch slurm/imagenet.sh model=resnext101_32x4d [key=value ...]`
#
# Every #SBATCH line below can be overridden on the sbatch command line, e.g.
#   sbatch --nodes=4 --time=3-00:00:00 slurm/imagenet.sh model=resnet50 recipe=...
# One task per GPU: --ntasks-per-node must equal --gpus-per-node.  trainer.devices and
# trainer.num_nodes default to this allocation (platform/run/slurm.py); a contradicting override is
# an error at start-up, not a hang.  Submit from the repository root (or anywhere: the script
# finds the repository itself), and create logs/ first: `mkdir -p logs` (SLURM does not).
#
# Adapting to a site: add the lines your cluster needs, e.g.
#   #SBATCH --partition=gpu            (or -p on the command line)
#   #SBATCH --account=my-project
#   #SBATCH --constraint=a100|h100
#   #SBATCH --exclusive                (whole nodes: recommended for multi-node DDP)
# and load modules / conda below instead of (or before) the .venv activation.
#
# Preemption and time limits: SLURM sends SIGUSR1 to the tasks ~90 s (up to ~30 s more) before
# the end; the run saves runs/slurm-<jobid>/checkpoints/last.ckpt, requeues itself
# (scontrol requeue, same job id) and the restarted job resumes from that checkpoint.
#
#SBATCH --job-name=cnn-imagenet
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=12
#SBATCH --mem=0
#SBATCH --time=2-00:00:00
#SBATCH --output=logs/%x-%j.out
#SBATCH --error=logs/%x-%j.out
#SBATCH --open-mode=append
#SBATCH --signal=USR1@90
#SBATCH --requeue
set -euo pipefail

# sbatch runs a copy of this script from its spool directory, so $0 is not in the repository:
# ask SLURM for the submitted script's path (CNN_PLATFORM_ROOT overrides; else the submit dir).
root=${CNN_PLATFORM_ROOT:-}
if [[ -z $root && -n ${SLURM_JOB_ID:-} ]]; then
    script=$(scontrol show job "$SLURM_JOB_ID" 2>/dev/null | sed -n 's/^ *Command=\([^ ]*\).*/\1/p' | head -n1)
    [[ -n $script && -f $script ]] && root=$(cd "$(dirname "$script")/.." && pwd)
fi
if [[ -z $root || ! -f $root/platform/train.py ]]; then
    root=${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
fi
cd "$root"

# the project's environment (replace by `module load ...` / `conda activate ...` at your site)
[[ -f .venv/bin/activate ]] && source .venv/bin/activate
# export NCCL_DEBUG=WARN NCCL_SOCKET_IFNAME=ib0   # site-specific network settings, see slurm/README.md

# --kill-on-bad-exit: a rank that fails (or is killed) ends the whole step at once; the others would
# otherwise wait for it in a collective until trainer.dist_timeout_s
srun --kill-on-bad-exit=1 python -m platform.train data=imagenet "$@"
