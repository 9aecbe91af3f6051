# One-command set-up: every target creates .venv when it is missing (CI starts from a clean clone).
PY       ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
# torch first, pinned: these wheels lie on this kind of machine's disk; a bare `torch` pulls several GB.
TORCH    ?= torch==2.14.1 torchvision==0.29.1
CONFIG   ?= manifests/demo.yaml
OUT      ?= out/demo

.PHONY: venv curate test bench train-curator clean

$(BIN)/curate: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test]'
	touch $(BIN)/curate

venv: $(BIN)/curate

curate: venv
	$(BIN)/curate run $(CONFIG) --out $(OUT)
	$(BIN)/curate verify $(OUT)

# the shipped curator checkpoint + model card (reproducible from the recipe's seed; see docs/curator.md)
train-curator: venv
	$(BIN)/curate train-curator --out curator_model/checkpoint

test: venv
	$(BIN)/python -m pytest -q tests

# throughput, pipeline efficiency, speed-up and memory (docs/bench.md); BENCH_ARGS=--quick for a smoke run
bench: venv
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf out .pytest_cache
