"""detect.py --ray: the photos through Ray Data, on a local Ray instance or a running cluster. Imported only then
(pip install -r requirements-cluster.txt, or make cluster).

    python detect.py --list paths.txt --ray --json faces.jsonl        # a local instance, the cores of this machine
    ray job submit --working-dir . -- python detect.py --list paths.txt --ray auto --json faces.jsonl  # a cluster

The paths go into ray.data a slice at a time (the driver holds one slice); map_batches hands them to a pool of
actors, each holding one FaceKeypointDetector, loaded once; the driver writes the results (batch.run) as they come.
Every node must see the photos at the paths given (shared storage). docs/batch.md has more.
"""
import itertools
import logging
import pickle

import numpy as np
import ray

import batch
from detect import FaceKeypointDetector

SLICE = 100_000  # paths a dataset: the driver's memory stays bounded however long the list


class Detector:
    """A Ray Data actor: one FaceKeypointDetector for every batch of paths it gets."""

    def __init__(self, options, threads, outputs):
        batch.set_threads(threads)
        self.fkd, self.outputs = FaceKeypointDetector(**options), outputs

    def __call__(self, rows):
        # work's result pickled: the entry, encoded crops and error line go back to the driver as they are
        return {"path": rows["path"],
                "result": np.array([pickle.dumps(batch.work(self.fkd, str(p), self.outputs)) for p in rows["path"]],
                                   dtype=object)}


def results(paths, options, workers, threads, outputs, address):
    """(path, batch.work's result) for each path, as they come. address: 'local' starts a Ray instance of workers x
    threads CPUs, shut down at the end; otherwise the cluster to join ('auto': the one `ray start` began here)."""
    local = address == "local"
    ray.init(address=None if local else address, num_cpus=workers * threads if local else None,
             include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # detect.py's bar counts the photos
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its INFO lines on each dataset run
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    try:
        workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
        paths = iter(paths)
        while chunk := list(itertools.islice(paths, SLICE)):
            ds = ray.data.from_items([{"path": p} for p in chunk]).map_batches(
                Detector, fn_constructor_args=(options, threads, outputs), num_cpus=threads, batch_size=32,
                compute=ray.data.ActorPoolStrategy(size=workers), batch_format="numpy")
            for row in ds.iter_rows():
                yield row["path"], pickle.loads(row["result"])
    finally:
        ray.shutdown()
