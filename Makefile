# make demo : the showcase: real results of GPT-4o, Gemini 1.5 Pro, Llama 3.1 70B (offline, no LLM call)
# make live-example : the local-model example (examples/live; results made by `evaluate`)
# make test : lint, format check, the layers contract, the type checker and the test suite (with the local-model extra)
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# torch's CPU build first, so sentence-transformers does not pull a CUDA build.
TORCH  ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo live-example test install install-dev install-local test-local-deps lint clean-demo browser-deps postgres-deps

$(PY):
	python3 -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -q --disable-pip-version-check $(TORCH)
	$(PIP) install -q --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PIP) install -q --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev
# llama-cpp-python compiles (about 5.5 minutes on 2 cores): needed for local GGUF models,
# to regenerate the live example's results, and by the tests that drive llama.cpp's server.
# llama.cpp builds for the build machine's CPU by default (GGML_NATIVE): on virtual CPUs
# that advertise AMX/AVX-512 FP16 without supporting them the result dies with SIGILL
# (measured here). A portable AVX2 build runs everywhere this project runs. pip caches built
# wheels by source, not by CMAKE_ARGS, so the build bypasses the wheel cache.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
$(VENV)/.installed-local: pyproject.toml $(VENV)/.installed
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -q --disable-pip-version-check \
	  --no-cache-dir -e '.[local]'
	touch $@

install-local: $(VENV)/.installed-local

# For `make test`: a failed compile must not hide the rest of the suite, so it is reported
# and the local-model tests skip (pytest lists every skip and its reason).
test-local-deps: $(VENV)/.installed
	@$(MAKE) --no-print-directory $(VENV)/.installed-local || \
	  echo "WARNING: llama-cpp-python did not build: the local-model tests will skip"

demo: install
	$(VENV)/bin/skill-slices run --project demo

live-example: install
	$(VENV)/bin/skill-slices run --project examples/live

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: lint browser-deps postgres-deps test-local-deps
	$(VENV)/bin/pytest -q -rs -p no:cacheprovider

clean-demo:
	rm -rf demo/.skill-slices examples/live/.skill-slices

# The browser test drives Debian's Chromium through Playwright (never `playwright install`);
# it skips when Chromium cannot be installed.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the browser test will skip"; }

# The deployment test starts Debian's PostgreSQL server on 127.0.0.1 inside the test; it
# skips (with its reason) when the server cannot be installed.
postgres-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
	  || echo "postgresql not installed: the PostgreSQL storage test will skip"; }
