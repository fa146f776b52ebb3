"""The dataset directory: ``dataset.json`` (the jobs), submissions, outputs, reports.

Layout of ``DIR``::

    dataset.json              the split: every job's name, expected events and JobSpec
    submissions/NNN-ENGINE.json  one per submit: engine, job names, engine ids, time
    outputs/NAME.parquet      each job's selected events (or .root)
    reports/NAME.json         each job's report (hepstream run --report)
    logs/                     engine logs (Slurm, Condor)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepstream.dataset.split import DatasetJob
from hepstream.errors import ConfigError, InputError
from hepstream.jobspec import JobSpec
from hepstream.report import write_json_atomic

FORMAT = "hepstream-dataset/1"


@dataclass(frozen=True)
class Dataset:
    """A split dataset and where it lives."""

    path: Path
    plugin: str
    jobs: tuple[DatasetJob, ...]
    split: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    #: The plugin's TTree name (of the inputs, and of ROOT outputs).
    tree: str = "events"

    @property
    def name(self) -> str:
        return self.path.name

    def job(self, name: str) -> DatasetJob:
        for job in self.jobs:
            if job.name == name:
                return job
        raise ConfigError(
            f"dataset {self.path} has no job {name!r}; see 'hepstream dataset status'"
        )

    def select(self, names: Sequence[str] | None) -> list[DatasetJob]:
        """The jobs named (all when None), in dataset order."""
        if not names:
            return list(self.jobs)
        wanted = set(names)
        for name in wanted:
            self.job(name)
        return [j for j in self.jobs if j.name in wanted]

    def save(self) -> None:
        """Write ``dataset.json`` atomically and create the directories jobs write to."""
        for sub in ("outputs", "reports", "logs", "submissions"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        body = {
            "format": FORMAT,
            "plugin": self.plugin,
            "tree": self.tree,
            "inputs": list(self.inputs),
            "split": self.split,
            "created": time.time(),
            "jobs": [
                {"name": j.name, "events": j.events, "spec": j.spec.to_mapping()} for j in self.jobs
            ],
        }
        write_json_atomic(self.path / "dataset.json", json.dumps(body, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        path = Path(path)
        try:
            body = json.loads((path / "dataset.json").read_text())
        except FileNotFoundError:
            raise InputError(
                f"{path} is not a dataset directory (no dataset.json); "
                "create it with 'hepstream dataset split'"
            ) from None
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"cannot read {path}/dataset.json: {err}") from None
        if body.get("format") != FORMAT:
            raise InputError(f"{path}/dataset.json is not a {FORMAT} file")
        jobs = tuple(
            DatasetJob(
                j["name"],
                JobSpec.from_mapping(j["spec"], where=f"job {j['name']}"),
                int(j["events"]),
            )
            for j in body["jobs"]
        )
        return cls(
            path,
            body["plugin"],
            jobs,
            body.get("split", {}),
            tuple(body.get("inputs", ())),
            body.get("tree", "events"),
        )

    # -- submissions ---------------------------------------------------------------
    def record_submission(self, engine: str, names: Sequence[str], **info: Any) -> Path:
        """Append a submission record; returns its path."""
        sub = self.path / "submissions"
        sub.mkdir(parents=True, exist_ok=True)
        number = len(list(sub.glob("*.json")))
        target = sub / f"{number:03d}-{engine}.json"
        body = {"engine": engine, "jobs": list(names), "submitted_at": time.time(), **info}
        write_json_atomic(target, json.dumps(body, indent=1) + "\n")
        return target

    def submissions(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted((self.path / "submissions").glob("*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError):
                continue  # a record being written by another submit
        return out

    def engine_of(self) -> dict[str, str]:
        """The engine each job was last submitted to."""
        out: dict[str, str] = {}
        for sub in self.submissions():
            for name in sub["jobs"]:
                out[name] = sub["engine"]
        return out

    def report_of(self, job: DatasetJob) -> dict[str, Any] | None:
        """The job's report, or None when it has none (never ran, or removed)."""
        path = Path(str(job.spec.report))
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
