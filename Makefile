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

# The three demos run side by side, one CPU thread each (2 cores: ~12 min instead of ~18 one after the other):
# DMAF-Net in the foreground with its progress on screen; CM-CGNS, then MICS, in the background, logged to
# runs/demo_cmcgns.log and runs/demo-endoscopy.log; their tables are printed at the end.
DEMO_THREADS := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
demo: $(STAMP)
	@mkdir -p runs
	@echo "CM-CGNS and MICS demos run in the background (logs: runs/demo_cmcgns.log, runs/demo-endoscopy.log)"
	@( $(DEMO_THREADS) $(BIN)/medmodal data synth-cxr runs/demo_cmcgns/data -n 2000 > runs/demo_cmcgns.log 2>&1 \
	   && $(DEMO_THREADS) $(BIN)/medmodal pretrain --preset pretrain_demo_cpu >> runs/demo_cmcgns.log 2>&1 \
	   && $(DEMO_THREADS) $(BIN)/medmodal demo-endoscopy --out runs/demo-endoscopy > runs/demo-endoscopy.log 2>&1 \
	 ) & background=$$!; \
	$(DEMO_THREADS) $(BIN)/medmodal demo --out runs/demo; dmafnet=$$?; \
	echo "DMAF-Net demo done; waiting for the CM-CGNS and MICS demos ..."; \
	wait $$background; others=$$?; \
	for log in runs/demo_cmcgns.log runs/demo-endoscopy.log; do \
	  test $$others -eq 0 || { echo "== last lines of $$log"; tail -n 15 $$log 2>/dev/null; }; done; \
	test $$others -ne 0 || { echo "== CM-CGNS (runs/demo_cmcgns/run/report.md)"; cat runs/demo_cmcgns/run/report.md; \
	  echo "== MICS (runs/demo-endoscopy/report/comparison.md)"; cat runs/demo-endoscopy/report/comparison.md; }; \
	test $$dmafnet -eq 0 -a $$others -eq 0

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) runs .pytest_cache
