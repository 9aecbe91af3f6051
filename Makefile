# One-command set-up: every target creates .venv when it is missing (CI starts from a clean clone).
PY       ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
# torch first: these wheels lie on this kind of machine's disk; a bare `torch` pulls several GB.
TORCH    ?= torch==2.14.1 torchvision==0.29.1
# a machine without a GPU: TORCH_INDEX=https://download.pytorch.org/whl/cpu installs the CPU-only torch wheels
# (the default index's torch brings the CUDA libraries, several GB that a CPU machine never uses)
TORCH_INDEX ?=
# every install is held to the lock (build environments too, through the environment variable)
LOCK     := requirements.lock
# (pip >= 26.2 applies PIP_CONSTRAINT outside build environments only: PIP_BUILD_CONSTRAINT pins setuptools there)
PIP      := PIP_CONSTRAINT=$(CURDIR)/$(LOCK) PIP_BUILD_CONSTRAINT=$(CURDIR)/$(LOCK) $(BIN)/pip
CONFIG   ?= manifests/demo.yaml
OUT      ?= out/demo

.PHONY: venv curate test chaos lint lock bench train-curator train-shadow monitor clean

$(BIN)/curate: pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) $(TORCH)
	$(PIP) install -q -e '.[test,dev]'
	touch $(BIN)/curate

venv: $(BIN)/curate

curate: venv
	$(BIN)/curate run $(CONFIG) --out $(OUT)
	$(BIN)/curate verify $(OUT)

# the shipped curator checkpoint + model card (reproducible from the recipe's seed; see docs/curator.md)
train-curator: venv
	$(BIN)/curate train-curator --out curator_model/checkpoint

# the shipped learned shadow detector + model card: base on synthetic shadows, leave-photos-out folds for its
# held-out figures, then the shipped network (docs/layers.md); generated data is cached under out/shadow_cache
train-shadow: venv
	nice -n 10 $(BIN)/python -m shadow_model.train --out shadow_model/checkpoint

test: venv
	$(BIN)/python -m pytest -q tests

# >= 500 rows on a local three-node Ray cluster while stage actors, Ray workers and a worker node are killed at
# random; ends 0 lost / 0 duplicated / verify OK and prints the kills survived (docs/operations.md). CHAOS_ARGS:
# --units, --every (seconds between kills), --seed. tests/test_chaos.py runs a small version.
chaos: venv
	$(BIN)/python -m tests.fixtures.chaos --out out/chaos $(CHAOS_ARGS)

# ruff (lint + format check) and mypy, as configured in pyproject.toml; CI runs it before the tests
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# refresh the lock from the newest releases the project's ranges admit (a deliberate step: then `make test`,
# and regenerate the golden reference only if its output moved on purpose)
lock:
	rm -rf .venv-lock && $(PY) -m venv .venv-lock
	.venv-lock/bin/pip install -q --upgrade pip
	.venv-lock/bin/pip install -q $(TORCH)
	.venv-lock/bin/pip install -q setuptools '.[test,dev]'
	{ sed -n '1,3p' $(LOCK); .venv-lock/bin/pip freeze --all --exclude-editable | grep -iv '^layered-curation'; } > $(LOCK).new
	mv $(LOCK).new $(LOCK) && rm -rf .venv-lock

# throughput, pipeline efficiency, speed-up and memory (docs/bench.md); BENCH_ARGS=--quick for a smoke run
bench: venv
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Prometheus (Debian: apt-get install -y prometheus) on 127.0.0.1 only, scraping the local Ray through the scrape
# config Ray writes for its session when its dashboard runs (ray.dashboard: true; `curate run ... --hold` keeps it
# up after the run), with the pipeline's alerting rules. Ray keeps its sessions in $RAY_TMPDIR/ray (as Ray reads
# it: default /tmp/ray); RAY_SESSION or RAY_PROM_CONFIG name another session or config. README: "Watching a run".
RAY_TMPDIR      ?= /tmp
RAY_SESSION     ?= $(RAY_TMPDIR)/ray/session_latest
RAY_PROM_CONFIG ?= $(RAY_SESSION)/metrics/prometheus/prometheus.yml
PROM_LISTEN     ?= 127.0.0.1:9090
PROM_RULES      := manifests/prometheus/curation-rules.yml
monitor:
	@command -v prometheus >/dev/null || { echo "make monitor needs Prometheus: apt-get install -y prometheus" >&2; exit 1; }
	@test -f $(RAY_PROM_CONFIG) || { echo "no $(RAY_PROM_CONFIG): Ray writes it when a local run has its dashboard on (ray.dashboard: true). Another Ray temp dir: make monitor RAY_TMPDIR=DIR; another session or file: RAY_SESSION=DIR or RAY_PROM_CONFIG=FILE" >&2; exit 1; }
	mkdir -p out/prometheus
	{ cat $(RAY_PROM_CONFIG); printf 'rule_files:\n  - %s\n' $(CURDIR)/$(PROM_RULES); } > out/prometheus/prometheus.yml
	prometheus --config.file=out/prometheus/prometheus.yml --web.listen-address=$(PROM_LISTEN) --storage.tsdb.path=out/prometheus/data

clean:
	rm -rf out .pytest_cache
