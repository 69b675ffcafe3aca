# make demo: set up .venv and run the pipeline on the embedded demo photo with the shipped model.
# make test: set up .venv and run the tests (notebooks included, in quick mode).
# make notebooks: execute the four notebooks in place (FKP_QUICK=1 for a short run).
PY := .venv/bin/python
NOTEBOOKS := 1_Load_and_Visualize_Data.ipynb 2_Define_Network_Architecture.ipynb \
             3_Facial_Keypoint_Detection.ipynb 4_Fun_Filters.ipynb

.venv/installed: requirements.txt
	python3 -m venv .venv
	$(PY) -m pip install -q -r requirements.txt
	touch $@

demo: .venv/installed
	$(PY) detect.py images/astronaut.png --out outputs --pose
	@echo "annotated photo: outputs/astronaut_keypoints.png"

test: .venv/installed
	$(PY) -m pytest -q tests

notebooks: .venv/installed
	for nb in $(NOTEBOOKS); do .venv/bin/jupyter-execute --inplace --timeout=3600 $$nb || exit 1; done

dlib: .venv/installed
	$(PY) -m pip install -q -r requirements-dlib.txt

.PHONY: demo test notebooks dlib
