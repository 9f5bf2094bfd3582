# The two commands of README.md. Both set everything up first (idempotent).
.PHONY: setup train test

setup:
	bash scripts/setup.sh

train: setup
	.venv/bin/python -m platform.train $(ARGS)

test: setup
	bash slurm/local-cluster.sh start
	bash slurm/local-cluster.sh start --nodes 2 || test $$? -eq 3  # 3: no namespaces here (the multinode tests skip)
	.venv/bin/python -m pytest -q $(PYTEST_ARGS)
