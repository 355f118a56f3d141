# The two commands of the README: `make book` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SETUP := $(VENV)/.setup-done

.PHONY: setup book test lab bench exercises notebooks clean

setup: $(SETUP)

# PyTorch's CPU-only wheels (about 1.9 GB installed, against 5.6 GB for the CUDA build that the
# public index serves on Linux). Where this index is out of reach, torch comes from the configured one.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

$(SETUP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --no-deps --timeout 20 --retries 1 --index-url $(TORCH_CPU_INDEX) \
		"$$(grep '^torch==' requirements.txt)" 2>/dev/null \
		|| echo "PyTorch's CPU index is out of reach: torch comes from the configured package index"
	$(PIP) -r requirements.txt
	$(PIP) --no-deps --no-build-isolation -e .
	touch $(SETUP)

## Execute the chapters and build the website into _build/html (offline, strict).
book: setup
	$(BIN)/python tools/build_book.py

## ruff, the unit and browser tests, every chapter under nbval, then the book built and checked in
## a browser (tools/build_book.py: strict build, site check, every page opened offline).
# DL_COURSE_PROGRESS=0: no training progress bars in executed notebooks (dl_course.training).
# pytest exits with 5 when it collects no tests (e.g. an empty chapters/): not a failure.
PYTEST_OK = status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest tests; $(PYTEST_OK)
	DL_COURSE_PROGRESS=0 $(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider chapters; $(PYTEST_OK)
	$(BIN)/python tools/build_book.py

## JupyterLab on the chapters (live sliders).
lab: setup
	$(BIN)/jupyter lab chapters

## Time every chapter and every slider against the budgets.
## Then the two speed headlines: the empirical NTK and the Hessian's top eigenvalue (against PyHessian,
## installed for the benchmark only).
bench: setup
	$(PIP) --no-deps -r benchmarks/requirements.txt
	DL_COURSE_PROGRESS=0 $(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/ntk.py
	$(BIN)/python benchmarks/hessian.py

## Student notebooks and autograders for every assignment, into _build/exercises.
exercises: setup
	for master in exercises/*/*.ipynb; do \
		name=$$(basename $$(dirname $$master)); rm -rf _build/exercises/$$name; \
		$(BIN)/otter assign $$master _build/exercises/$$name || exit 1; \
	done
	@echo "Student notebooks: _build/exercises/*/student; autograders: _build/exercises/*/autograder"

## Re-execute the chapters and store the outputs of `# NBVAL_CHECK_OUTPUT` cells (after a change).
notebooks: setup
	DL_COURSE_PROGRESS=0 $(BIN)/python tools/notebooks.py refresh chapters/*.ipynb

clean:
	rm -rf _build
