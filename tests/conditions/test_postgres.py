"""The same metadata in PostgreSQL: same schema, same global tag, same job output."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from condhelpers import RUNS, read_output, write_probe

from hepstream.cli import main
from hepstream.conditions.sample import build_beam_db
from hepstream.conditions.server import ConditionsServer
from hepstream.conditions.store import Store
from hepstream.job.runner import JobSpec, run_job
from tests.support.postgres import PostgreSQL

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgreSQL]:
    with PostgreSQL() as pg:
        yield pg


def test_same_job_against_sqlite_and_postgresql(
    postgres, multirun_sample, tmp_path, capsys
) -> None:
    sqlite_db = tmp_path / "sqlite"
    build_beam_db(sqlite_db, RUNS).close()
    build_beam_db(postgres.url, RUNS, payloads=tmp_path / "pg-payloads").close()
    with Store(sqlite_db) as a, Store(postgres.url, tmp_path / "pg-payloads") as b:
        assert a.global_tag("beam-v1") == b.global_tag("beam-v1")
    code = main(
        [
            "conditions",
            "show",
            "beam-v1",
            "--db",
            postgres.url,
            "--payloads",
            str(tmp_path / "pg-payloads"),
            "--json",
        ]
    )
    assert code == 0
    assert '"status": "LOCKED"' in capsys.readouterr().out

    probe = write_probe(tmp_path, subrun="subrun")
    outputs = {}
    for name, server_args in {
        "sqlite": (sqlite_db, None),
        "postgresql": (postgres.url, tmp_path / "pg-payloads"),
    }.items():
        with ConditionsServer(*server_args) as server:
            report = run_job(
                JobSpec(
                    plugin=str(probe),
                    inputs=(str(multirun_sample),),
                    output=str(tmp_path / f"{name}.root"),
                    conditions=(server.url,),
                    global_tag="beam-v1",
                    conditions_cache=str(tmp_path / f"cache-{name}"),
                    chunk_bytes=48_000,
                )
            )
        outputs[name] = (read_output(tmp_path / f"{name}.root"), report.conditions["iov_hash"])
    assert outputs["sqlite"] == outputs["postgresql"]
    assert len(set(outputs["sqlite"][0]["columns"]["scale"])) == len(RUNS)


def test_postgresql_needs_a_payload_dir(postgres, capsys) -> None:
    assert main(["conditions", "show", "--db", postgres.url]) == 2
    assert "needs --payloads DIR" in capsys.readouterr().err
