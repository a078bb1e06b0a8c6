# The two commands of the README. Each does all the set-up it needs on a fresh machine.
.PHONY: quickstart test setup

PY := .venv/bin/python

quickstart:
	scripts/setup.sh
	.venv/bin/traject quickstart

test:
	scripts/setup.sh --test
	$(PY) -m pytest -q

setup:
	scripts/setup.sh --test
