"""The synthetic sample generator: schema contract, determinism, physics mix, size, codecs."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hepstream.errors import ConfigError, OutputError
from hepstream.tools.generate import (
    BHABHA,
    CLUS_FIELDS,
    MC_FIELDS,
    MUMU,
    QQ,
    SAMPLES,
    TAU_11,
    TAU_13,
    TAU_33,
    TRK_FIELDS,
    TWO_PHOTON,
    generate_arrays,
    generate_sample,
    sample_filenames,
    uncompressed_bytes_per_event,
)

FLAT = {
    "run": "int32",
    "subrun": "int32",
    "event": "int64",
    "ebeam": "float32",
    "thrust": "float32",
    "r2": "float32",
    "missing_pt": "float32",
    "missing_mass2": "float32",
    "evis": "float32",
    "mc_truth": "int32",
}
CONTRACT_TRK = [
    "px",
    "py",
    "pz",
    "p",
    "pt",
    "charge",
    "d0",
    "z0",
    "chi2",
    "ndof",
    "pid_e",
    "pid_mu",
    "pid_pi",
    "pid_k",
    "pid_p",
]
CONTRACT_TRK += [f"cov{i:02d}" for i in range(15)]
CONTRACT_CLUS = ["e", "theta", "phi", "nhits", "lat", "a42", "s9s25"]
CONTRACT_MC = ["pdg", "mother", "px", "py", "pz", "e"]
INTS = {"charge", "ndof", "nhits", "pdg", "mother"}


def _dtype(tree: uproot.TTree, name: str) -> str:
    interp = tree[name].interpretation
    inner = getattr(interp, "content", interp)
    return str(inner.to_dtype)


@pytest.mark.parametrize("name", ["tau1n_mc_000.root", "tau1n_data_000.root", "tau11_mc_000.root"])
def test_schema_names_and_dtypes(sample_dir: Path, name: str) -> None:
    with uproot.open(sample_dir / name) as f:
        assert [k for k in f if not k.startswith("events")] == []
        tree = f["events"]
        keys = set(tree.keys())
        for branch, dtype in FLAT.items():
            assert _dtype(tree, branch) == dtype, branch
        for group, fields in (("trk", CONTRACT_TRK), ("clus", CONTRACT_CLUS)):
            assert _dtype(tree, f"n{group}") == "int32"
            for fld in fields:
                want = "int32" if fld in INTS else "float32"
                assert _dtype(tree, f"{group}_{fld}") == want, f"{group}_{fld}"
        has_mc = {f"mc_{fld}" for fld in CONTRACT_MC} <= keys
        assert has_mc == ("_mc_" in name)
        assert ("nmc" in keys) == ("_mc_" in name)
        for fld in CONTRACT_MC if has_mc else []:
            assert _dtype(tree, f"mc_{fld}") == ("int32" if fld in INTS else "float32")


def test_extra_fields_extend_contract() -> None:
    assert set(CONTRACT_TRK) <= set(TRK_FIELDS)
    assert set(CONTRACT_CLUS) <= set(CLUS_FIELDS)
    assert set(CONTRACT_MC) <= set(MC_FIELDS)


def _flat(arrays: dict) -> dict[str, np.ndarray]:
    out = {}
    for key, value in arrays.items():
        if isinstance(value, np.ndarray):
            out[key] = value
        else:
            out[f"n{key}"] = ak.to_numpy(ak.num(value))
            for fld in value.fields:
                out[f"{key}_{fld}"] = ak.to_numpy(ak.flatten(value[fld]))
    return out


def test_same_seed_same_arrays_different_seed_differs() -> None:
    a = _flat(generate_arrays("tau1n-data", 3_000, np.random.default_rng(7)))
    b = _flat(generate_arrays("tau1n-data", 3_000, np.random.default_rng(7)))
    c = _flat(generate_arrays("tau1n-data", 3_000, np.random.default_rng(8)))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not np.array_equal(a["mc_truth"], c["mc_truth"])


def test_same_seed_same_file_contents(tmp_path: Path) -> None:
    p1 = generate_sample(tmp_path / "a.root", "tau1n-mc", 1_500, seed=3, events_per_basket=500)
    p2 = generate_sample(tmp_path / "b.root", "tau1n-mc", 1_500, seed=3, events_per_basket=500)
    with uproot.open(p1) as f1, uproot.open(p2) as f2:
        a1 = f1["events"].arrays(library="np")
        a2 = f2["events"].arrays(library="np")
    for key, values in a1.items():
        assert len(values) == 1_500
        np.testing.assert_array_equal(
            np.concatenate(values) if values.dtype == object else values,
            np.concatenate(a2[key]) if a2[key].dtype == object else a2[key],
            err_msg=key,
        )


def test_tau11_mc_is_all_one_one(sample_dir: Path) -> None:
    with uproot.open(sample_dir / "tau11_mc_000.root") as f:
        arr = f["events"].arrays(["mc_truth", "ntrk", "trk_charge"])
    assert np.all(arr.mc_truth == TAU_11)
    assert np.all(arr.ntrk == 2)
    assert np.all(ak.sum(arr.trk_charge, axis=1) == 0)


def test_tau1n_mc_topologies_follow_branching(sample_dir: Path) -> None:
    with uproot.open(sample_dir / "tau1n_mc_000.root") as f:
        arr = f["events"].arrays(["mc_truth", "ntrk", "trk_charge", "nmc", "mc_pdg"])
    truth = ak.to_numpy(arr.mc_truth)
    assert set(np.unique(truth)) == {TAU_11, TAU_13, TAU_33}
    frac = {code: np.mean(truth == code) for code in (TAU_11, TAU_13, TAU_33)}
    # 1-prong BF 0.85, 3-prong 0.15: 1-1 ~ 72 %, 1-3 ~ 25 %, 3-3 ~ 2 %
    assert 0.68 < frac[TAU_11] < 0.77
    assert 0.21 < frac[TAU_13] < 0.30
    assert 0.01 < frac[TAU_33] < 0.04
    ntrk = ak.to_numpy(arr.ntrk)
    for code, n in ((TAU_11, 2), (TAU_13, 4), (TAU_33, 6)):
        assert np.all(ntrk[truth == code] == n)
    assert np.all(ak.sum(arr.trk_charge, axis=1) == 0)
    # every MC record starts with the beams and the tau pair
    first4 = ak.to_numpy(arr.mc_pdg[:, :4])
    assert np.all(first4 == [11, -11, 15, -15])


def test_data_mix(sample_dir: Path) -> None:
    with uproot.open(sample_dir / "tau1n_data_000.root") as f:
        arr = f["events"].arrays(["mc_truth", "ntrk", "trk_p", "missing_pt", "thrust", "ebeam"])
    truth = ak.to_numpy(arr.mc_truth)
    tau = np.isin(truth, [TAU_11, TAU_13, TAU_33])
    assert 0.07 < tau.mean() < 0.09
    want = {BHABHA: 0.30, QQ: 0.40, MUMU: 0.12, TWO_PHOTON: 0.10}
    for code, share in want.items():
        assert abs(np.mean(truth == code) - share) < 0.015, code
    pmax = ak.to_numpy(ak.max(arr.trk_p, axis=1, mask_identity=False))
    ebeam = ak.to_numpy(arr.ebeam)
    lepton_pairs = np.isin(truth, [BHABHA, MUMU])
    assert np.all(np.abs(pmax[lepton_pairs] / ebeam[lepton_pairs] - 1) < 0.08)
    assert np.median(pmax[tau] / ebeam[tau]) < 0.6
    mpt = ak.to_numpy(arr.missing_pt)
    assert np.median(mpt[tau]) > 0.3 > np.median(mpt[lepton_pairs])
    thrust = ak.to_numpy(arr.thrust)
    assert np.all((thrust >= 0.5) & (thrust <= 1.0))
    assert np.median(thrust[tau]) > np.median(thrust[truth == QQ])
    qq_ntrk = ak.to_numpy(arr.ntrk)[truth == QQ]
    assert qq_ntrk.min() >= 5
    assert qq_ntrk.max() <= 15


@pytest.mark.parametrize("kind", SAMPLES)
def test_uncompressed_size_per_event(kind: str) -> None:
    arrays = generate_arrays(kind, 5_000, np.random.default_rng(11))
    size = uncompressed_bytes_per_event(arrays)
    assert 3_000 <= size <= 4_000, size


def test_several_baskets_and_clusters(sample_dir: Path) -> None:
    with uproot.open(sample_dir / "tau1n_mc_000.root") as f:
        tree = f["events"]
        offsets = tree.common_entry_offsets()
        assert offsets == [0, 5_000, 10_000, 15_000, 20_000]
        assert tree["trk_px"].num_baskets == 4
        assert tree["mc_truth"].num_baskets == 4


@pytest.mark.parametrize(("codec", "name"), [("zlib", "ZLIB"), ("lz4", "LZ4"), ("zstd", "ZSTD")])
def test_codec_round_trip(tmp_path: Path, codec: str, name: str) -> None:
    path = generate_sample(
        tmp_path / f"{codec}.root",
        "tau11-mc",
        1_200,
        seed=5,
        compression=codec,
        events_per_basket=400,
    )
    expected = _flat(generate_arrays("tau11-mc", 400, np.random.default_rng(5)))
    with uproot.open(path) as f:
        assert type(f.file.compression).__name__ == name
        got = f["events"].arrays(entry_stop=400)
    assert {"trk_px", "clus_e", "mc_pdg", "ntrk"} <= set(got.fields)
    for key, values in expected.items():
        col = got[key]
        col = ak.flatten(col) if col.ndim > 1 else col
        np.testing.assert_array_equal(ak.to_numpy(col), values, err_msg=key)
    assert list(tmp_path.iterdir()) == [path]  # no temporary left behind


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown sample kind"):
        generate_sample(tmp_path / "x.root", "tau33-mc", 10)
    with pytest.raises(ConfigError, match="unknown compression"):
        generate_sample(tmp_path / "x.root", "tau1n-mc", 10, compression="lzma")
    with pytest.raises(OutputError, match="does not exist"):
        generate_sample(tmp_path / "nope" / "x.root", "tau1n-mc", 10)
    assert list(tmp_path.iterdir()) == []


def test_sample_filenames() -> None:
    assert sample_filenames("tau1n-mc", 2) == ["tau1n_mc_000.root", "tau1n_mc_001.root"]
    assert sample_filenames("tau11-mc", 1) == ["tau11_mc_000.root"]
    with pytest.raises(ConfigError):
        sample_filenames("bogus", 1)


def test_cli_generate_json(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from hepstream.cli.data import generate

    app = typer.Typer()
    app.command()(generate)
    result = CliRunner().invoke(
        app,
        [
            str(tmp_path / "s"),
            "--sample",
            "tau1n-data",
            "--events",
            "800",
            "--files",
            "2",
            "--compression",
            "zstd",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [Path(r["path"]).name for r in rows] == sample_filenames("tau1n-data", 2)
    events = []
    for row in rows:
        assert row["events"] == 800
        assert row["bytes"] == Path(row["path"]).stat().st_size
        with uproot.open(row["path"]) as f:
            events.append(f["events"]["event"].array(library="np"))
    assert events[0][0] == 0
    assert events[1][0] == 800
    assert not np.array_equal(
        *(uproot.open(r["path"])["events"]["mc_truth"].array(library="np") for r in rows)
    )
