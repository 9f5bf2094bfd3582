#!/usr/bin/env bash
# Set up everything on a fresh machine, idempotently: Debian build deps for FFCV, .venv,
# torch 2.14.1 + torchvision 0.29.1, and this project's dependencies with its dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
DEBIAN_DEPS="pkg-config libturbojpeg0-dev libopencv-dev"

# --- Debian packages -----------------------------------------------------------------------
# need_debian PACKAGES WHY REQUIRED: install PACKAGES when root; otherwise print the apt command and,
# when REQUIRED=1, stop (FFCV cannot build without them; the others only gate some tests/datasets).
need_debian() {
    local pkgs=$1 why=$2 required=$3
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing $pkgs ($why)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq $pkgs >/dev/null
        return
    fi
    echo "setup: $why needs Debian packages that are missing. Run:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y $pkgs" >&2
    if [ "$required" = 1 ]; then
        echo "then run this command again." >&2
        exit 1
    fi
}

if ! { command -v pkg-config >/dev/null && pkg-config --exists libturbojpeg opencv4; }; then
    need_debian "$DEBIAN_DEPS" "FFCV's build" 1
fi
# a one-node Slurm for the SLURM tests (slurm/local-cluster.sh starts it)
if ! { command -v slurmctld >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null; }; then
    need_debian "slurmctld slurmd slurm-client munge" "the local test cluster (SLURM tests)" 0
fi
# Fashion-MNIST (data=fashion_mnist): Debian ships Zalando's IDX files (31 MB); or pass data.path=DIR
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    need_debian "dataset-fashion-mnist" "data=fashion_mnist" 0
fi

# --- virtual environment --------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
PY=.venv/bin/python

# Re-install only when the dependency list changed (keeps `make train` / `make test` quick).
stamp=.venv/.setup-stamp
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && $PY -c "import torch, ffcv, lightning, wandb" 2>/dev/null; then
    exit 0
fi
$PY -m pip install -q --upgrade pip
$PY -m pip install -q torch==2.14.1 torchvision==0.29.1
$PY -m pip install -q -e ".[dev]"
$PY -c "import torch, torchvision, ffcv, lightning, wandb; print('setup: torch', torch.__version__, '| torchvision', torchvision.__version__, '| lightning', lightning.__version__, '| ffcv ok')"
echo "$want" > "$stamp"
