"""After training: evaluate, predict, export a run's checkpoint; list runs and read their records.
Imports ``platform.run``, never ``platform.papers``."""
