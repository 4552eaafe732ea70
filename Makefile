# Two commands do everything on a fresh machine:
#   make demo   set up, then run the main job on the built-in demo data
#   make test   set up, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.imgnet-setup
DEMO_OUT ?= demo-out

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): setup.py scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $@

demo: setup
	bash scripts/demo.sh $(DEMO_OUT)

test: setup
	$(PY) -m pytest -q -ra
	$(VENV)/bin/mypy imgnet_tools

bench: setup
	$(PY) -m benchmarks --all

clean:
	rm -rf $(DEMO_OUT) build dist *.egg-info .pytest_cache .mypy_cache
