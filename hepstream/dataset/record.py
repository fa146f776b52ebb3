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
import math
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
#: The fields of a job report that collect reads, with the types ``hepstream run`` writes.
REPORT_FIELDS = {
    "status": "a string",
    "site": "a string",
    "events_read": "an integer",
    "events_selected": "an integer",
    "bytes_read": "an integer",
    "wall_s": "a number",
    "cpu_s": "a number",
    "events_per_s": "a number",
    "kb_per_s": "a number",
    "error": "a string or null",
}
_TYPES: dict[str, tuple[type, ...]] = {
    "a string": (str,),
    "an integer": (int,),
    "a number": (int, float),
    "a string or null": (str, type(None)),
}


def read_json(path: Path) -> Any:
    """The JSON document in ``path``; an InputError naming the file and what is wrong with
    it (the caller adds what to do) when it cannot be read or parsed. A missing file raises
    FileNotFoundError: the caller says what a missing file means."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as err:
        raise InputError(f"{path} cannot be read ({err.strerror})") from None
    if not text.strip():
        raise InputError(f"{path} is empty ({len(text)} bytes)")
    try:
        return json.loads(text)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise InputError(f"{path} is not JSON ({err})") from None


def read_report(path: Path) -> dict[str, Any] | None:
    """A job's report; None when it has none. A damaged report (unreadable, not JSON, not
    a report object, a field missing or of the wrong type) is an InputError naming it."""
    try:
        report = read_json(path)
    except FileNotFoundError:
        return None
    if not isinstance(report, dict):
        held = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
        raise InputError(
            f"{path} holds {held.get(type(report), 'a number')}, not a job report object"
        )
    for name, kind in REPORT_FIELDS.items():
        if name not in report:
            raise InputError(f"{path} is not a whole job report (no {name!r})")
        value = report[name]
        if (
            not isinstance(value, _TYPES[kind])
            or isinstance(value, bool)
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            raise InputError(f"{path}: {name} is {value!r:.40}, not {kind}")
    return report


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
        fix = "restore it, or split the inputs again into a new --dir"
        try:
            body = read_json(path / "dataset.json")
        except FileNotFoundError:
            raise InputError(
                f"{path} is not a dataset directory (no dataset.json); "
                "create it with 'hepstream dataset split'"
            ) from None
        except InputError as err:
            raise InputError(f"{err}; {fix}") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise InputError(f"{path}/dataset.json is not a {FORMAT} file; {fix}")
        try:
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
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(
                f"{path}/dataset.json is damaged ({type(err).__name__}: {err}); {fix}"
            ) from None

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
                sub = read_json(path)
            except (OSError, InputError):
                continue  # damaged: the engine of its jobs is then unknown
            if not isinstance(sub, dict):
                continue
            jobs = sub.get("jobs")
            if (
                isinstance(sub.get("engine"), str)
                and isinstance(jobs, list)
                and all(isinstance(name, str) for name in jobs)
            ):
                out.append(sub)
        return out

    def engine_of(self) -> dict[str, str]:
        """The engine each job was last submitted to."""
        out: dict[str, str] = {}
        for sub in self.submissions():
            for name in sub["jobs"]:
                out[name] = sub["engine"]
        return out

    def report_of(self, job: DatasetJob) -> dict[str, Any] | None:
        """The job's report, or None when it has none (never ran, removed, or damaged)."""
        try:
            return read_report(Path(str(job.spec.report)))
        except InputError:
            return None
