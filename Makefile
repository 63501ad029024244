# Every target creates or reuses .venv through scripts/install.
# Pass extra pytest arguments with ARGS, e.g. make test ARGS="-k layering".

ARGS ?=

.PHONY: install install-runtime run museum test check bench clean

install:
	scripts/install

# make run needs only what running needs (rich, jinja2), not the dev tools.
install-runtime:
	scripts/install runtime

run: install-runtime
	.venv/bin/hmmsim check --all

# The race museum (docs/museum.md): every exhibit checked, hmmsim-report/museum.html.
museum: install-runtime
	.venv/bin/hmmsim museum check --report hmmsim-report

test: install
	scripts/test $(ARGS)

check: install
	scripts/check

bench: install
	scripts/bench

# Removes build outputs and tool caches. Keeps .venv and the example databases
# (.hypothesis/, .hmmsim/): saved counterexamples are replayed on later runs.
clean:
	rm -rf .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache \
		hmmsim-report dist build src/*.egg-info
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +
