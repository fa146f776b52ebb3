"""``condor``: the dataset's jobs as one HTCondor submit file (run by the cloud shim's VMs).

HTCondor's daemons are not packaged for these machines, so this engine writes the file
(``DIR/condor/NNN.sub``) and prints the ``condor_submit`` command; the text is checked
with ``htcondor2.Submit`` by the tests. Retries are Condor's (``max_retries``); reports
land in ``DIR/reports`` when the execute nodes see the dataset directory (shared
filesystem), and ``hepstream collect`` reads them as for any engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from hepstream.cloud.submit import VMRequest, jobs_submit_text
from hepstream.dataset.engines.base import Outcome, Progress
from hepstream.dataset.record import Dataset
from hepstream.dataset.split import DatasetJob
from hepstream.report import write_json_atomic


class CondorEngine:
    """Writes the submit file; ``condor_submit`` it on a submit host."""

    name: ClassVar[str] = "condor"

    def __init__(self, vm: VMRequest, retries: int = 2) -> None:
        self.vm = vm
        self.retries = retries

    def submit(
        self, dataset: Dataset, jobs: Sequence[DatasetJob], progress: Progress
    ) -> list[Outcome]:
        folder = dataset.path / "condor"
        folder.mkdir(exist_ok=True)
        target = folder / f"{len(list(folder.glob('*.sub'))):03d}.sub"
        text = jobs_submit_text(
            [(j.name, j.spec) for j in jobs], self.vm, str(dataset.path / "logs"), self.retries
        )
        write_json_atomic(target, text)  # temp + rename, whatever the content
        dataset.record_submission(self.name, [j.name for j in jobs], submit_file=str(target))
        return [Outcome(j.name, "written", engine_id=str(target)) for j in jobs]
