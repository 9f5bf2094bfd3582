"""Reproducing papers: the tables as data, their columns, report and launching; sweeps; the course's
figures as experiments (lesion, landscape, paths, gradients); the fidelity report."""
