# Two commands for a newcomer (see README): `make lab` and `make test`.
# Each sets up what it needs in virtual environments inside the repository.
#
#   .venv       the course: torch (pinned CPU build by default), course_lib and its tools
#   .venv-timm  the independent reference for parity tests and `make bench`: timm needs torchvision,
#               which does not import beside the CPU torch wheel, so it gets its own torch build
#
# GPU users: make lab TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu126"
#
#   out/venv-gpu  `make test-gpu` only: that CUDA build of torch (GPU_TORCH), course_lib, pytest and nbformat

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
# make test-gpu: the CUDA torch build above, or GPU_PYTHON (an interpreter that already has one: no set-up)
GPU_TORCH   ?= torch --index-url https://download.pytorch.org/whl/cu126
GPU_VENV    := out/venv-gpu
GPU_PYTHON  ?=
GPU_ARGS    ?=

BIN      := $(VENV)/bin
# Tools and tests run headless: matplotlib's Agg backend. The lab does not get it (see LAB below).
RUN      := PATH="$(abspath $(BIN)):$$PATH" MPLBACKEND=Agg
PIP      := $(BIN)/python -m pip --disable-pip-version-check -q
# pip's output goes to a log, shown only when an install fails (no warning blocks before the lab's URL)
QUIET    = >> $(VENV)/setup.log 2>&1 || { cat $(VENV)/setup.log; exit 1; }

# JupyterLab on the course. Kernels draw figures inline (no MPLBACKEND here). VIEW picks the nbgrader
# extensions (jupyter/student: chapters and the Validate button; jupyter/instructor: formgrader and the
# assignment tools too). LAB_ROOT: the course folder it serves (tests/test_browser.py serves a copy).
LAB_ROOT ?= $(CURDIR)
VIEW     ?= student
# The course folder, one nbgrader course directory for every chapter: `make grade` grades into it,
# `make instructor` opens formgrader on it (hand grading), `python -m course_lib feedback` refreshes it.
# Inside LAB_ROOT, so that formgrader can serve it (docs/grading.md).
COURSE_DIR ?= $(LAB_ROOT)/out/grading
LAB      = cd "$(LAB_ROOT)" && PATH="$(abspath $(BIN)):$$PATH" JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter/$(VIEW)" \
	$(abspath $(BIN))/jupyter lab --ip=127.0.0.1 --port=$(PORT) --no-browser --allow-root \
	--ServerApp.root_dir="$(LAB_ROOT)"

.PHONY: lab instructor test test-fast test-gpu setup setup-timm release bench capstone grade grader-report \
	student-bundle student-wheel checkpoints book clean help

help:
	@echo "make setup          set up .venv only (torch, course_lib, JupyterLab, nbgrader, jupyterhub; the commands below that need it run it first)"
	@echo "make lab            set up, then start JupyterLab on the course, student view (http://127.0.0.1:$(PORT); PORT=n for another port)"
	@echo "make instructor     JupyterLab with nbgrader's formgrader on the course folder make grade graded into, rubrics beside it (PORT=n too)"
	@echo "make test           set up, then run the whole test suite"
	@echo "make test-gpu       on a CUDA machine: CUDA tests, autocast, chapter 07's checks, one training (out/gpu/report.md)"
	@echo "make release        regenerate notebooks/ from solutions/ (nbgrader)"
	@echo "make bench          time and memory of every module (writes out/bench/; BENCH_ARGS=--pam-only: PAM table)"
	@echo "make capstone       train and compare every attention variant (writes out/capstone/)"
	@echo "make checkpoints    retrain the shipped checkpoints of chapters 01-08 from their seeds (course_lib/checkpoints/)"
	@echo "make grade CHAPTER=01_se SUBMISSIONS=path [WORKERS=n] [GRADE_ARGS=...]   autograde a class into the course folder (COURSE_DIR, default out/grading)"
	@echo "make grader-report  how well the checks catch wrong implementations"
	@echo "make student-bundle build what students receive (out/student-bundle/)"
	@echo "make student-wheel  the bundle's course_lib as a wheel for Colab (out/dist/), to publish with a release"
	@echo "make book           the course as a static HTML book, every chapter executed, no answer shown (out/book/)"

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@echo "Setting up $(VENV) (torch, course_lib, JupyterLab; a few minutes the first time; log: $(VENV)/setup.log)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@: > $(VENV)/setup.log
	@$(PIP) install --upgrade pip $(QUIET)
	@$(PIP) install $(TORCH_SPEC) $(QUIET)
	@$(PIP) install -e '.[lab,test]' $(QUIET)
	@touch $@

setup-timm: $(TIMM_VENV)/.installed

$(TIMM_VENV)/.installed: pyproject.toml
	@test -x $(TIMM_VENV)/bin/python || $(PYTHON) -m venv $(TIMM_VENV)
	$(TIMM_VENV)/bin/python -m pip --disable-pip-version-check -q install $(TIMM_TORCH)
	$(TIMM_VENV)/bin/python -m pip --disable-pip-version-check -q install -e '.[parity]'
	@touch $@

lab: setup
	@echo "Starting JupyterLab on the course (student view): open the URL printed below (Ctrl-C stops it)."
	@$(LAB) --LabApp.default_url=/lab/tree/notebooks

instructor: VIEW = instructor
instructor: setup
	@mkdir -p out/exchange
	@$(RUN) COURSE_DIR="$(abspath $(COURSE_DIR))" $(BIN)/python -m course_lib course-folder --source-root "$(LAB_ROOT)"
	@echo "Starting JupyterLab on the course (instructor view): Nbgrader > Formgrader grades the course folder"
	@echo "$(abspath $(COURSE_DIR)); the written questions' model answers and rubrics are in its rubrics/ folder."
	@echo "Open the URL printed below."
	@export COURSE_DIR="$(abspath $(COURSE_DIR))"; $(LAB) --LabApp.default_url=/lab/tree/$(patsubst $(abspath $(LAB_ROOT))/%,%,$(abspath $(COURSE_DIR)))/rubrics

test: setup setup-timm
	$(RUN) COURSE_TIMM_PYTHON="$(abspath $(TIMM_VENV))/bin/python" COURSE_REQUIRE_TIMM=1 \
		$(BIN)/python -m pytest -n $(JOBS) --dist loadfile $(PYTEST_ARGS)

# The CUDA paths in under 8 minutes on one GPU (tests/gpu/run_gpu_check.py says what runs). Without a GPU it
# stops at once: nvidia-smi first (before any download), then torch.cuda.is_available() in the interpreter.
GPU_RUN := MPLBACKEND=Agg PYTHONPATH="$(CURDIR)"

test-gpu:
ifeq ($(strip $(GPU_PYTHON)),)
	@nvidia-smi -L 2>/dev/null | grep -q '^GPU' || { echo "make test-gpu needs an NVIDIA GPU: nvidia-smi is missing \
	or lists no GPU here, so nothing was set up or run. With a Python that already has a CUDA build of torch: \
	make test-gpu GPU_PYTHON=python3" >&2; exit 2; }
	@$(MAKE) --no-print-directory $(GPU_VENV)/.installed
	$(GPU_RUN) $(GPU_VENV)/bin/python tests/gpu/run_gpu_check.py --out out/gpu $(GPU_ARGS)
else
	$(GPU_RUN) $(GPU_PYTHON) tests/gpu/run_gpu_check.py --out out/gpu $(GPU_ARGS)
endif

$(GPU_VENV)/.installed: pyproject.toml
	@echo "Setting up $(GPU_VENV): $(GPU_TORCH), course_lib, pytest, nbformat (log: $(GPU_VENV)/setup.log)"
	@mkdir -p $(GPU_VENV) && { test -x $(GPU_VENV)/bin/python || $(PYTHON) -m venv $(GPU_VENV); }
	@: > $(GPU_VENV)/setup.log
	@$(GPU_VENV)/bin/python -m pip --disable-pip-version-check -q install $(GPU_TORCH) >> $(GPU_VENV)/setup.log 2>&1 \
		|| { cat $(GPU_VENV)/setup.log; exit 1; }
	@$(GPU_VENV)/bin/python -m pip --disable-pip-version-check -q install -e . pytest nbformat \
		>> $(GPU_VENV)/setup.log 2>&1 || { cat $(GPU_VENV)/setup.log; exit 1; }
	@touch $@

release: setup
	$(RUN) $(BIN)/python -m course_lib release

bench: setup-timm
	$(RUN) $(TIMM_VENV)/bin/python -m course_lib bench --out out/bench $(BENCH_ARGS)

capstone: setup
	$(RUN) $(BIN)/python -m course_lib capstone --out out/capstone --publish

checkpoints: setup
	$(RUN) $(BIN)/python -m course_lib checkpoints --no-progress

# Exit status 3 of the grader (some submissions could not be graded, the rest were; its last lines say
# which and why) is a finished run: make stops with an error only when nothing could be graded.
grade: setup
	@test -n "$(CHAPTER)" -a -n "$(SUBMISSIONS)" || { echo "usage: make grade CHAPTER=01_se SUBMISSIONS=path/to/submissions"; exit 2; }
	@$(RUN) $(BIN)/python -m course_lib grade $(CHAPTER) $(SUBMISSIONS) --out "$(COURSE_DIR)" \
		$(if $(WORKERS),--workers $(WORKERS)) $(GRADE_ARGS); status=$$?; test $$status -eq 3 || exit $$status

grader-report: setup
	$(RUN) $(BIN)/python -m course_lib grader-report

student-bundle: setup
	$(RUN) $(BIN)/python -m course_lib student-bundle --out out/student-bundle

student-wheel: setup
	$(RUN) $(BIN)/python -m course_lib student-bundle --out out/student-bundle --wheel out/dist

# The book runs each solution once (its kernels draw figures inline: the tool takes MPLBACKEND out of their environment)
book: setup
	$(RUN) $(BIN)/python -m course_lib book --out out/book

clean:
	rm -rf out build .pytest_cache gradebook.db
