# Two commands for a fresh machine:
#   make demo   - create .venv, install medmodal, run the main jobs on built-in synthetic data
#                 (DMAF-Net segmentation; CM-CGNS image-report pre-training + retrieval / zero-shot;
#                 MICS paired WLI/NBI pre-training + fine-tuning)
#   make test   - create .venv, install medmodal + test tools, run the default test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow docs venv clean check-oldest

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

# The demos (medmodal seg demo, medmodal seg demo --task vessels, medmodal seg demo --task 2d, medmodal seg demo --task semi, medmodal cxr synth + pretrain, i.e. medmodal cxr demo
# in two steps, medmodal endoscopy demo) share the 2 cores: first the chest X-rays for CM-CGNS are drawn (2 processes,
# ~1 min), then DMAF-Net, the vessel and the 2-D demos run in the foreground with their progress on screen while CM-CGNS, then
# MICS, run in the background,
# one CPU thread each (logs runs/demo_cmcgns.log, runs/demo-endoscopy.log; their tables are printed at the end).
# Measured 11.6 / 12.4 min in two runs on a quiet 2-core machine (README).
DEMO_THREADS := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# The real Open-i reports the CM-CGNS demo draws its studies from: IU_REPORTS=... wins; else $$MEDMODAL_IU_REPORTS
# (read by medmodal itself); else shared/data/cxr-reports-real/indiana_reports.csv under $$MEDMODAL_SHARED_DATA's
# parent or beside this checkout (medmodal itself no longer looks there: data roots come from arguments or
# MEDMODAL_* variables only, so the Makefile passes it).
IU_REPORTS ?=
SHARED_IU_REPORTS := $(firstword $(if $(MEDMODAL_SHARED_DATA),$(realpath $(MEDMODAL_SHARED_DATA)/cxr-reports-real/indiana_reports.csv)) \
                                 $(realpath ../shared/data/cxr-reports-real/indiana_reports.csv))
DEMO_IU_REPORTS := $(or $(IU_REPORTS),$(if $(MEDMODAL_IU_REPORTS),,$(SHARED_IU_REPORTS)))
demo: $(STAMP)
	@mkdir -p runs
	@echo "drawing 2000 chest X-rays for the CM-CGNS demo (2 processes, ~1 min) from the real Open-i reports:"
	@echo "  indiana_reports.csv from IU_REPORTS=..., \$$MEDMODAL_IU_REPORTS or shared/data/cxr-reports-real/ beside"
	@echo "  this checkout; without it from 20 built-in templates (then the README's CM-CGNS figures do not apply)"
	@$(DEMO_THREADS) $(BIN)/medmodal cxr synth runs/demo_cmcgns/data -n 2000 $(if $(DEMO_IU_REPORTS),--reports "$(DEMO_IU_REPORTS)") \
	  > runs/demo_cmcgns.log 2>&1 || { tail -n 15 runs/demo_cmcgns.log; exit 1; }
	@cat runs/demo_cmcgns.log
	@echo "CM-CGNS and MICS demos run in the background (logs: runs/demo_cmcgns.log, runs/demo-endoscopy.log)"
	@( $(DEMO_THREADS) $(BIN)/medmodal cxr pretrain --preset pretrain_demo_cpu >> runs/demo_cmcgns.log 2>&1 \
	   && $(DEMO_THREADS) $(BIN)/medmodal endoscopy demo --out runs/demo-endoscopy > runs/demo-endoscopy.log 2>&1 \
	 ) & background=$$!; \
	$(DEMO_THREADS) $(BIN)/medmodal seg demo --out runs/demo; dmafnet=$$?; \
	echo "DMAF-Net demo done; the retinal vessel demo (synthetic DRIVE -> CHASE_DB1 twins, ~1 min):"; \
	$(DEMO_THREADS) $(BIN)/medmodal seg demo --task vessels --out runs/demo-vessels; vessels=$$?; \
	echo "vessel demo done; the 2-D demo (MSLAU-Net on a synthetic ACDC twin, then NIfTI label maps, ~30 s):"; \
	$(DEMO_THREADS) $(BIN)/medmodal seg demo --task 2d --out runs/demo-2d; planar=$$?; \
	echo "2-D demo done; the semi-supervised demo (supervised-only vs Mean Teacher on an ACDC twin, SWDL-Net on an LA twin, ~2 min):"; \
	$(DEMO_THREADS) $(BIN)/medmodal seg demo --task semi --out runs/demo-semi; semi=$$?; \
	echo "semi-supervised demo done; waiting for the CM-CGNS and MICS demos ..."; \
	wait $$background; others=$$?; \
	for log in runs/demo_cmcgns.log runs/demo-endoscopy.log; do \
	  test $$others -eq 0 || { echo "== last lines of $$log"; tail -n 15 $$log 2>/dev/null; }; done; \
	test $$others -ne 0 || { echo "== CM-CGNS (runs/demo_cmcgns/run/report.md)"; cat runs/demo_cmcgns/run/report.md; \
	  echo "== MICS (runs/demo-endoscopy/report/comparison.md)"; cat runs/demo-endoscopy/report/comparison.md; }; \
	test $$dmafnet -eq 0 -a $$vessels -eq 0 -a $$planar -eq 0 -a $$semi -eq 0 -a $$others -eq 0

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) runs .pytest_cache

# The documentation site (MkDocs + Material; API, CLI and configuration references generated) into site/
docs: $(STAMP)
	DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

# The oldest torch / torchvision pair pyproject.toml allows, in a fresh venv (/tmp/medmodal-oldest-torch): installs the
# pair first, then medmodal with the pair pinned, and runs every family's smoke steps (docs/install.md has the outcome).
# TORCH=... TORCHVISION=... try another pair; TORCH_INDEX=pypi takes it from PyPI instead of the PyTorch CPU index.
TORCH ?= 2.6.0
TORCHVISION ?= 0.21.0
check-oldest:
	scripts/check_oldest_torch.sh $(TORCH) $(TORCHVISION)
