"""The training run: the config schema and its parsing, composition into a Lightning Trainer, the
module, callbacks, checkpoints, the run directory (``rundir``), how a run stops (signals, preemption,
SLURM), and the one CLI convention.  Imports nothing of ``platform.after`` / ``platform.papers``."""
