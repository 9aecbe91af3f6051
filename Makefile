# One-command set-up: every target creates .venv when it is missing (CI starts from a clean clone).
PY       ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
# torch first, pinned: these wheels lie on this kind of machine's disk; a bare `torch` pulls several GB.
TORCH    ?= torch==2.14.1 torchvision==0.29.1
CONFIG   ?= manifests/demo.yaml
OUT      ?= out/demo

.PHONY: venv curate test bench train-curator monitor clean

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

# Prometheus (Debian: apt-get install -y prometheus) on 127.0.0.1 only, scraping the local Ray through the scrape
# config Ray writes for its session when its dashboard runs (ray.dashboard: true; `curate run ... --hold` keeps it
# up after the run). README: "Watching a run".
RAY_PROM_CONFIG ?= /tmp/ray/session_latest/metrics/prometheus/prometheus.yml
PROM_LISTEN     ?= 127.0.0.1:9090
monitor:
	@command -v prometheus >/dev/null || { echo "make monitor needs Prometheus: apt-get install -y prometheus" >&2; exit 1; }
	@test -f $(RAY_PROM_CONFIG) || { echo "no $(RAY_PROM_CONFIG): Ray writes it when a local run has its dashboard on (ray.dashboard: true)" >&2; exit 1; }
	prometheus --config.file=$(RAY_PROM_CONFIG) --web.listen-address=$(PROM_LISTEN) --storage.tsdb.path=out/prometheus

clean:
	rm -rf out .pytest_cache
