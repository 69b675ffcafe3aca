"""The four notebooks, top to bottom, in quick mode (FKP_QUICK=1: few steps on a data subset)."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import needs_data

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["1_Load_and_Visualize_Data", "2_Define_Network_Architecture", "3_Facial_Keypoint_Detection",
             "4_Fun_Filters"]


@needs_data
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, monkeypatch):
    monkeypatch.setenv("FKP_QUICK", "1")
    nb = nbformat.read(ROOT / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
