#!/usr/bin/env bash
# Set up everything on a fresh machine, idempotently: Debian build deps for FFCV, .venv,
# torch 2.14.1 + torchvision 0.29.1, and this project's dependencies with its dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
DEBIAN_DEPS="pkg-config libturbojpeg0-dev libopencv-dev"

# --- Debian packages FFCV compiles against ---------------------------------------------------
if ! { command -v pkg-config >/dev/null && pkg-config --exists libturbojpeg opencv4; }; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing $DEBIAN_DEPS (FFCV build dependencies)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq $DEBIAN_DEPS >/dev/null
    else
        echo "setup: FFCV needs Debian packages that are missing. Run:" >&2
        echo "    sudo apt-get update && sudo apt-get install -y $DEBIAN_DEPS" >&2
        echo "then run this command again." >&2
        exit 1
    fi
fi

# --- a one-node Slurm for the SLURM tests (slurm/local-cluster.sh starts it) ---------------
SLURM_DEPS="slurmctld slurmd slurm-client munge"
if ! { command -v slurmctld >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null; }; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing $SLURM_DEPS (the local test cluster)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq $SLURM_DEPS >/dev/null
    else
        echo "setup: the SLURM tests need Debian packages that are missing:" >&2
        echo "    sudo apt-get install -y $SLURM_DEPS" >&2
    fi
fi

# --- Fashion-MNIST (data=fashion_mnist): Debian ships Zalando's IDX files (31 MB) -------------
FASHION_DEPS="dataset-fashion-mnist"
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing $FASHION_DEPS (data=fashion_mnist)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq $FASHION_DEPS >/dev/null
    else
        echo "setup: data=fashion_mnist needs a Debian package that is missing (or pass data.path=DIR):" >&2
        echo "    sudo apt-get install -y $FASHION_DEPS" >&2
    fi
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
