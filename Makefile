# Two commands for a newcomer (see README): `make lab` and `make test`.
# Each sets up what it needs in virtual environments inside the repository.
#
#   .venv       the course: torch (pinned CPU build by default), course_lib and its tools
#   .venv-timm  the independent reference for parity tests and `make bench`: timm needs torchvision,
#               which does not import beside the CPU torch wheel, so it gets its own torch build
#
# GPU users: make lab TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu126"

PYTHON      ?= python3
VENV        := .venv
TIMM_VENV   := .venv-timm
TORCH_SPEC  ?= torch==2.13.0
TIMM_TORCH  ?= torch==2.14.1 torchvision==0.29.1
PORT        ?= 8888
JOBS        ?= auto
CHAPTER     ?=
SUBMISSIONS ?=
WORKERS     ?=
GRADE_ARGS  ?=
BENCH_ARGS  ?=

BIN      := $(VENV)/bin
RUN      := PATH="$(abspath $(BIN)):$$PATH" MPLBACKEND=Agg
PIP      := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: lab test test-fast setup setup-timm release bench capstone checkpoints grade grader-report student-bundle clean help

help:
	@echo "make lab            set up, then start JupyterLab on the course (http://127.0.0.1:$(PORT))"
	@echo "make test           set up, then run the whole test suite"
	@echo "make release        regenerate notebooks/ from solutions/ (nbgrader)"
	@echo "make bench          time and memory of every module (writes out/bench/; BENCH_ARGS=--pam-only: PAM table)"
	@echo "make capstone       train and compare every attention variant (writes out/capstone/)"
	@echo "make checkpoints    retrain the shipped checkpoints of chapters 01-06 from their seeds (course_lib/checkpoints/)"
	@echo "make grade CHAPTER=01_se SUBMISSIONS=path [WORKERS=n] [GRADE_ARGS=...]   autograde a class"
	@echo "make grader-report  how well the checks catch wrong implementations"
	@echo "make student-bundle build what students receive (out/student-bundle/)"

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install $(TORCH_SPEC)
	$(PIP) install -e '.[lab,test]'
	@touch $@

setup-timm: $(TIMM_VENV)/.installed

$(TIMM_VENV)/.installed: pyproject.toml
	@test -x $(TIMM_VENV)/bin/python || $(PYTHON) -m venv $(TIMM_VENV)
	$(TIMM_VENV)/bin/python -m pip --disable-pip-version-check -q install $(TIMM_TORCH)
	$(TIMM_VENV)/bin/python -m pip --disable-pip-version-check -q install -e '.[parity]'
	@touch $@

lab: setup
	@echo "Starting JupyterLab on the course: open the URL printed below (Ctrl-C stops it)."
	$(RUN) $(BIN)/jupyter lab --ip=127.0.0.1 --port=$(PORT) --no-browser --allow-root \
		--ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks

test: setup setup-timm
	$(RUN) COURSE_TIMM_PYTHON="$(abspath $(TIMM_VENV))/bin/python" COURSE_REQUIRE_TIMM=1 \
		$(BIN)/python -m pytest -n $(JOBS) --dist loadfile $(PYTEST_ARGS)

release: setup
	$(RUN) $(BIN)/python -m course_lib release

bench: setup-timm
	$(RUN) $(TIMM_VENV)/bin/python -m course_lib bench --out out/bench $(BENCH_ARGS)

capstone: setup
	$(RUN) $(BIN)/python -m course_lib capstone --out out/capstone

checkpoints: setup
	$(RUN) $(BIN)/python -m course_lib.learned --no-progress

grade: setup
	@test -n "$(CHAPTER)" -a -n "$(SUBMISSIONS)" || { echo "usage: make grade CHAPTER=01_se SUBMISSIONS=path/to/submissions"; exit 2; }
	$(RUN) $(BIN)/python -m course_lib grade $(CHAPTER) $(SUBMISSIONS) $(if $(WORKERS),--workers $(WORKERS)) $(GRADE_ARGS)

grader-report: setup
	$(RUN) $(BIN)/python -m course_lib grader-report

student-bundle: setup
	$(RUN) $(BIN)/python -m course_lib student-bundle --out out/student-bundle

clean:
	rm -rf out build .pytest_cache gradebook.db
