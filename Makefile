# Two commands for a fresh machine:
#   make demo   - create .venv, install medmodal, run the main jobs on built-in synthetic data
#                 (DMAF-Net segmentation; CM-CGNS image-report pre-training + retrieval / zero-shot;
#                 MICS paired WLI/NBI pre-training + fine-tuning)
#   make test   - create .venv, install medmodal + test tools, run the default test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow venv clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/medmodal demo --out runs/demo
	$(BIN)/medmodal data synth-cxr runs/demo_cmcgns/data -n 2000
	$(BIN)/medmodal pretrain --preset pretrain_demo_cpu
	$(BIN)/medmodal demo-endoscopy --out runs/demo-endoscopy

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) runs .pytest_cache
