"""Synthetic BaBar-like tau-pair samples written as ROOT TTrees, for demos, tests and benchmarks.

The physics is plausible rather than exact: it gives selections something realistic to cut on
(back-to-back tau pairs with neutrinos against Bhabha, mu-pair, qq and two-photon background)
and gives the I/O path a realistic event size and branch layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from hepstream.codecs import uproot_codec
from hepstream.errors import ConfigError, OutputError

SAMPLES = ("tau1n-data", "tau1n-mc", "tau11-mc")

# Truth codes written to ``mc_truth`` (a contract: selections and tests use them).
QQ, BHABHA, MUMU, TWO_PHOTON, TAU_11, TAU_13, TAU_33 = 0, 1, 2, 3, 10, 11, 12
TAU_CODES = (TAU_11, TAU_13, TAU_33)

# Branch fields per group: the contract names first (used by selections), then extra detector
# quantities that make the event size realistic (a BaBar micro-DST is ~3 KB/event).
TRK_FIELDS: tuple[str, ...] = (
    *("px", "py", "pz", "p", "pt", "charge", "d0", "z0", "chi2", "ndof"),
    *("pid_e", "pid_mu", "pid_pi", "pid_k", "pid_p"),
    *(f"cov{i:02d}" for i in range(15)),  # upper triangle of the 5x5 helix covariance
    *("dedx_svt", "dedx_dch", "drc_thetac", "drc_nphot", "nsvt", "ndch", "ifr_nlay"),
    *("emc_e", "emc_dist"),
)
CLUS_FIELDS: tuple[str, ...] = (
    *("e", "theta", "phi", "nhits", "lat", "a42", "s9s25"),
    *("x", "y", "z", "time", "a20", "s1s9", "e1", "e9", "e25", "second_moment", "trk_dist"),
    *("status", "e_raw", "e_err", "theta_err", "phi_err"),
)
MC_FIELDS: tuple[str, ...] = ("pdg", "mother", "px", "py", "pz", "e", "vx", "vy", "vz", "status")
_INT_FIELDS = {"charge", "ndof", "nhits", "pdg", "mother", "drc_nphot", "nsvt", "ndch"}
_INT_FIELDS |= {"ifr_nlay", "status"}

M_TAU = 1.77686  # GeV, PDG


@dataclass(frozen=True)
class GeneratorConfig:
    """Every tunable number of the generator, with why it has its value."""

    ebeam: float = 5.29  # GeV per beam in the CM frame: sqrt(s) = 10.58 GeV, the Upsilon(4S)
    ebeam_spread: float = 0.0025  # GeV: PEP-II CM energy spread of about 5 MeV, split per beam
    events_per_run: int = 50_000  # run number changes every this many events, as in real data
    events_per_subrun: int = 10_000  # sub-run (luminosity block) within a run, counted from 0
    tau_fraction_data: float = 0.08  # tau pairs in the "data" skim after a loose preselection
    # background mix of the data skim (fractions of ALL events; with the tau share they sum to 1)
    background_mix: dict[int, float] = field(
        default_factory=lambda: {BHABHA: 0.30, QQ: 0.40, MUMU: 0.12, TWO_PHOTON: 0.10}
    )
    acceptance_cos: tuple[float, float] = (-0.78, 0.92)  # BaBar asymmetric detector acceptance
    lifetime_d0: float = 0.0087  # cm: tau c*tau = 87 um (decay length, d0 of tau daughters)
    d0_resolution: float = 0.003  # cm: SVT impact-parameter resolution (~30 um)
    z0_resolution: float = 0.005  # cm
    pt_resolution: float = 0.005  # relative: DCH sigma(pt)/pt ~ 0.5 %
    # clusters per event = base + Poisson(mean), incl. split-offs and beam-background photons;
    # together with the tracks these set the ~3 KB/event uncompressed size of a BaBar micro-DST
    clusters_tau: tuple[int, int] = (10, 16)  # ~15-40 per tau-pair event
    clusters_qq: tuple[int, int] = (24, 18)  # qq events have many more neutrals
    clusters_other: tuple[int, int] = (12, 8)  # Bhabha, mu-pair and two-photon events


# tau- decay templates: (pdg, mother) with mother -1 = the tau, k = k-th entry of the template.
# Branching fractions (PDG, rounded; rare modes folded into the nearest listed one).
_ONE_PRONG = {
    "e": (0.1782, ((16, -1), (11, -1), (-12, -1))),
    "mu": (0.1739, ((16, -1), (13, -1), (-14, -1))),
    "pi": (0.1523, ((16, -1), (-211, -1))),
    "rho": (0.2549, ((16, -1), (-213, -1), (-211, 1), (111, 1), (22, 3), (22, 3))),
    "pi2pi0": (
        0.0931,
        ((16, -1), (-211, -1), (111, -1), (111, -1), (22, 2), (22, 2), (22, 3), (22, 3)),
    ),
}
_THREE_PRONG = {
    "a1": (0.0931, ((16, -1), (-20213, -1), (-211, 1), (211, 1), (-211, 1))),
    "3pipi0": (0.0526, ((16, -1), (-211, -1), (211, -1), (-211, -1), (111, -1), (22, 4), (22, 4))),
}
_MODES = {**_ONE_PRONG, **_THREE_PRONG}
_MODE_NAMES = tuple(_MODES)
#: Entries of each decay template, in :data:`_MODE_NAMES` order.
_MODE_LENGTHS = np.array([len(_MODES[m][1]) for m in _MODE_NAMES])
_STABLE_CHARGED = {11: "e", 13: "mu", 211: "pi"}
_NEUTRINOS = {12, 14, 16}


def sample_filenames(kind: str, n_files: int) -> list[str]:
    """File names for ``n_files`` files of sample ``kind``: ``tau1n_mc_000.root`` and so on."""
    _check_kind(kind)
    return [f"{kind.replace('-', '_')}_{i:03d}.root" for i in range(n_files)]


def generate_sample(
    path: str | Path,
    kind: str = "tau1n-mc",
    n_events: int = 100_000,
    *,
    seed: int = 1,
    compression: str = "zlib",
    level: int | None = None,
    events_per_basket: int = 10_000,
    first_event: int = 0,
    config: GeneratorConfig | None = None,
) -> Path:
    """Write a synthetic sample as a ROOT file with one TTree ``events``.

    Parameters
    ----------
    path
        Output file; written to a temporary name beside it and renamed when complete.
    kind
        One of :data:`SAMPLES`: ``tau1n-data`` (8 % tau pairs in background, no ``mc_*``),
        ``tau1n-mc`` (tau pairs, all topologies), ``tau11-mc`` (1-1 topology only).
    n_events
        Number of events.
    seed
        Seed of the numpy random generator; the same seed gives identical files' contents.
    compression, level
        ``zlib``, ``lz4`` or ``zstd``; ``level`` defaults to uproot's default for the codec.
    events_per_basket
        Events per ``extend`` call, i.e. per basket and cluster.
    first_event
        Event number of the first event (so several files of one sample do not repeat numbers).
    config
        Generator physics and mix numbers; defaults to :class:`GeneratorConfig`.

    Returns
    -------
    Path
        The written file.
    """
    _check_kind(kind)
    if n_events < 1:
        raise ConfigError(f"n_events must be >= 1, got {n_events}")
    if events_per_basket < 1:
        raise ConfigError(f"events_per_basket must be >= 1, got {events_per_basket}")
    codec = _compression(compression, level)
    cfg = config or GeneratorConfig()
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"output directory {path.parent} does not exist: create it first")
    rng = np.random.default_rng(seed)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with uproot.recreate(tmp, compression=codec) as fout:
            _write_events(fout, kind, n_events, rng, events_per_basket, first_event, cfg)
        tmp.replace(path)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_events(
    fout: uproot.WritableDirectory,
    kind: str,
    n_events: int,
    rng: np.random.Generator,
    events_per_basket: int,
    first_event: int,
    cfg: GeneratorConfig,
) -> None:
    """The ``events`` tree: one basket (one ``extend``) per ``events_per_basket`` events."""
    n_chunks = -(-n_events // events_per_basket)
    tree = None
    for start in range(0, n_events, events_per_basket):
        n = min(events_per_basket, n_events - start)
        chunk = generate_arrays(kind, n, rng, first_event=first_event + start, config=cfg)
        if tree is None:
            tree = fout.mktree(
                "events",
                {k: v.type if hasattr(v, "layout") else v.dtype for k, v in chunk.items()},
                title=f"hepstream synthetic {kind}",
                initial_basket_capacity=n_chunks + 2,
            )
        tree.extend(chunk)


def generate_arrays(
    kind: str,
    n_events: int,
    rng: np.random.Generator,
    *,
    first_event: int = 0,
    config: GeneratorConfig | None = None,
) -> dict[str, Any]:
    """One chunk of events as the dict of arrays written to the tree (flat numpy + ``ak.zip``)."""
    _check_kind(kind)
    cfg = config or GeneratorConfig()
    truth = _draw_truth(kind, n_events, rng, cfg)
    ebeam = (cfg.ebeam + cfg.ebeam_spread * rng.standard_normal(n_events)).astype(np.float32)
    ev = _EventShape.empty(n_events)

    mc = _tau_pairs(kind, np.flatnonzero(truth < 0), truth, ebeam, rng, cfg)
    trk = _merge_parts(n_events, [mc.tracks(rng, cfg), *_background_tracks(truth, ebeam, rng)])
    _finish_tracks(trk, rng, cfg)
    clus = _clusters(truth, ebeam, rng, cfg)
    _event_shape(ev, truth, ebeam, mc, rng)

    event = np.arange(first_event, first_event + n_events, dtype=np.int64)
    out: dict[str, Any] = {
        "run": (10_000 + event // cfg.events_per_run).astype(np.int32),
        "subrun": ((event % cfg.events_per_run) // cfg.events_per_subrun).astype(np.int32),
        "event": event,
        "ebeam": ebeam,
        "thrust": ev.thrust,
        "r2": ev.r2,
        "missing_pt": ev.missing_pt,
        "missing_mass2": ev.missing_mass2,
        "evis": ev.evis,
        "mc_truth": truth.astype(np.int32),
        "trk": _zip(trk, TRK_FIELDS),
        "clus": _zip(clus, CLUS_FIELDS),
    }
    if kind.endswith("-mc"):
        out["mc"] = _zip(mc.record, MC_FIELDS)
    return out


def uncompressed_bytes_per_event(arrays: dict[str, Any]) -> float:
    """Sum of the written arrays' ``nbytes`` (data, counters) divided by the event count."""
    total = 0
    n = len(arrays["event"])
    for value in arrays.values():
        if isinstance(value, np.ndarray):
            total += value.nbytes
        else:
            total += 4 * n  # the int32 counter branch uproot writes (ntrk, nclus, nmc)
            for name in value.fields:
                total += ak.flatten(value[name]).to_numpy().nbytes
    return total / n


# ---------------------------------------------------------------------------------------------
# Internals: flat "parts" are dicts of field -> flat numpy array plus "_counts" and "_events".


@dataclass
class _EventShape:
    thrust: np.ndarray
    r2: np.ndarray
    missing_pt: np.ndarray
    missing_mass2: np.ndarray
    evis: np.ndarray

    @classmethod
    def empty(cls, n: int) -> _EventShape:
        return cls(*(np.zeros(n, np.float32) for _ in range(5)))


@dataclass
class _TauPairs:
    """Generator record of the tau-pair events of a chunk (written only for MC samples)."""

    events: np.ndarray  # indices of tau events in the chunk
    record: dict[str, np.ndarray]  # flat MC fields + _counts + _events
    nu_sum: np.ndarray  # (n, 4) summed neutrino four-momentum (px, py, pz, e) per event
    charged: dict[str, np.ndarray]  # flat visible charged daughters: px, py, pz, pdg, _counts

    def tracks(self, rng: np.random.Generator, cfg: GeneratorConfig) -> dict[str, np.ndarray]:
        """Reconstructed tracks from the charged daughters: smeared momenta and true species."""
        ch = self.charged
        n = len(ch["pdg"])
        scale = 1 + cfg.pt_resolution * rng.standard_normal(n)
        pdg = ch["pdg"]
        apdg = np.abs(pdg)
        charge = np.where(apdg == 211, np.sign(pdg), -np.sign(pdg))
        species = np.select([apdg == 11, apdg == 13], [0, 1], 2)  # 0 e, 1 mu, 2 pi
        return {
            "px": ch["px"] * scale,
            "py": ch["py"] * scale,
            "pz": ch["pz"] * scale,
            "charge": charge,
            "_species": species,
            "_tau": np.ones(n, bool),
            "_counts": ch["_counts"],
            "_events": self.events,
        }


def _check_kind(kind: str) -> None:
    if kind not in SAMPLES:
        raise ConfigError(f"unknown sample kind {kind!r}: choose one of {', '.join(SAMPLES)}")


def _compression(name: str, level: int | None) -> Any:
    return uproot_codec(name if level is None else f"{name}:{level}")


def _draw_truth(kind: str, n: int, rng: np.random.Generator, cfg: GeneratorConfig) -> np.ndarray:
    """Truth class per event: background mix for data, tau pairs for MC."""
    if kind == "tau1n-data":
        codes = [*cfg.background_mix, -1]
        probs = [*cfg.background_mix.values(), cfg.tau_fraction_data]
        truth = rng.choice(np.array(codes), size=n, p=np.array(probs) / sum(probs))
    else:
        truth = np.full(n, -1)
    return truth  # -1 = tau pair, topology fixed once the decay modes are drawn


def _tau_pairs(
    kind: str,
    events: np.ndarray,
    truth: np.ndarray,
    ebeam: np.ndarray,
    rng: np.random.Generator,
    cfg: GeneratorConfig,
) -> _TauPairs:
    """Draw both tau decays, build the generator record, set the topology truth code."""
    n = len(events)
    mode_idx = _draw_modes(kind, n, rng)
    nprong = np.where(mode_idx >= len(_ONE_PRONG), 3, 1).sum(axis=1)
    truth[events] = np.select([nprong == 2, nprong == 4], [TAU_11, TAU_13], TAU_33)

    axis = _random_axis(n, rng)
    e_tau = ebeam[events].astype(np.float64)
    p_tau = np.sqrt(np.maximum(e_tau**2 - M_TAU**2, 0.0))
    counts = 4 + _MODE_LENGTHS[mode_idx].sum(axis=1)
    rec, p4, base = _pair_header(counts, axis, e_tau, p_tau)
    decay_len = rng.exponential(cfg.lifetime_d0 * p_tau[:, None] / M_TAU, size=(n, 2))  # cm
    vtx = _fill_decays(mode_idx, base, p_tau, decay_len, rec, p4, rng)

    rec["px"], rec["py"], rec["pz"], rec["e"] = (p4[:, i].astype(np.float32) for i in range(4))
    rec["vx"], rec["vy"], rec["vz"] = (vtx[:, i].astype(np.float32) for i in range(3))
    rec["_counts"] = counts
    rec["_events"] = events
    return _visible_and_missing(events, rec, p4)


def _draw_modes(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Both taus' decay modes in ``n`` events, by branching fraction: ``(n, 2)`` indices into
    :data:`_MODE_NAMES` (one-prong modes only for ``tau11-mc``)."""
    names = list(_ONE_PRONG) if kind == "tau11-mc" else list(_MODES)
    bf = np.array([_MODES[m][0] for m in names])
    modes = rng.choice(len(names), size=(n, 2), p=bf / bf.sum())
    return np.array([_MODE_NAMES.index(m) for m in names])[modes]


def _pair_header(
    counts: np.ndarray, axis: np.ndarray, e_tau: np.ndarray, p_tau: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The generator record of ``counts`` entries per event with its first four filled: the
    e- and e+ beams along z, then the tau- along ``axis`` and the tau+ against it. Returns
    the record, its four-momenta (float64 while building) and each event's first row."""
    offsets = np.concatenate([[0], np.cumsum(counts)])
    total = int(offsets[-1])
    rec = {f: np.zeros(total, np.int32 if f in _INT_FIELDS else np.float32) for f in MC_FIELDS}
    p4 = np.zeros((total, 4))  # px, py, pz, e
    base = offsets[:-1]
    for k, pdg in enumerate((11, -11, 15, -15)):
        rec["pdg"][base + k] = pdg
        rec["mother"][base + k] = -1 if k < 2 else 0
        rec["status"][base + k] = 3 if k < 2 else 2
    p4[base, 2], p4[base, 3] = e_tau, e_tau
    p4[base + 1, 2], p4[base + 1, 3] = -e_tau, e_tau
    p4[base + 2, :3] = axis * p_tau[:, None]
    p4[base + 3, :3] = -axis * p_tau[:, None]
    p4[base + 2, 3] = p4[base + 3, 3] = e_tau
    return rec, p4, base


def _fill_decays(
    mode_idx: np.ndarray,
    base: np.ndarray,
    p_tau: np.ndarray,
    decay_len: np.ndarray,
    rec: dict[str, np.ndarray],
    p4: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Both taus' decay products after the header, tau- first, one mode at a time; returns
    the production vertices (each product at its tau's decay point)."""
    vtx = np.zeros((len(p4), 3))
    start = base + 4
    for side in (0, 1):  # 0: tau-, 1: tau+ (charge-conjugated template)
        tau_row = base + 2 + side
        for mi, name in enumerate(_MODE_NAMES):
            sel = np.flatnonzero(mode_idx[:, side] == mi)
            if sel.size:
                tmpl = _MODES[name][1]
                first = start[sel]
                _fill_decay(tmpl, side, first, first - base[sel], tau_row[sel], rec, p4, rng)
                vtx[first[:, None] + np.arange(len(tmpl))] = (
                    p4[tau_row[sel], None, :3]
                    / np.maximum(p_tau[sel, None, None], 1e-9)
                    * decay_len[sel, side, None, None]
                )
        start = start + _MODE_LENGTHS[mode_idx[:, side]]
    return vtx


def _visible_and_missing(
    events: np.ndarray, rec: dict[str, np.ndarray], p4: np.ndarray
) -> _TauPairs:
    """The pairs' record with what the detector sees of it: the stable charged daughters,
    and the summed neutrino four-momentum per event."""
    n = len(events)
    counts = rec["_counts"]
    ev_of_row = np.repeat(np.arange(n), counts)
    apdg = np.abs(rec["pdg"])
    nu = np.isin(apdg, list(_NEUTRINOS))
    nu_sum = np.zeros((n, 4))
    for i in range(4):
        nu_sum[:, i] = np.bincount(ev_of_row[nu], weights=p4[nu, i], minlength=n)
    charged = np.isin(apdg, list(_STABLE_CHARGED)) & (rec["status"] == 1)  # not the beams
    return _TauPairs(
        events=events,
        record=rec,
        nu_sum=nu_sum,
        charged={
            "px": p4[charged, 0],
            "py": p4[charged, 1],
            "pz": p4[charged, 2],
            "pdg": rec["pdg"][charged],
            "_counts": np.bincount(ev_of_row[charged], minlength=n),
        },
    )


def _fill_decay(
    tmpl: tuple[tuple[int, int], ...],
    side: int,
    first: np.ndarray,
    local_first: np.ndarray,
    tau_row: np.ndarray,
    rec: dict[str, np.ndarray],
    p4: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Fill one decay template for a group of events: energy shared by Dirichlet, small kicks."""
    n = len(first)
    rows = first[:, None] + np.arange(len(tmpl))
    for parent in sorted({m for _, m in tmpl}):
        kids = [k for k, (_, m) in enumerate(tmpl) if m == parent]
        prow = tau_row if parent < 0 else rows[:, parent]
        share = rng.dirichlet(np.full(len(kids), 1.5), size=n)
        pdir = p4[prow, :3] / np.maximum(np.linalg.norm(p4[prow, :3], axis=1), 1e-9)[:, None]
        for j, k in enumerate(kids):
            e = p4[prow, 3] * share[:, j]
            kick = pdir + rng.normal(0.0, 0.12, size=(n, 3))
            kick /= np.linalg.norm(kick, axis=1)[:, None]
            p4[rows[:, k], :3] = kick * e[:, None]
            p4[rows[:, k], 3] = e
    for k, (pdg, mother) in enumerate(tmpl):
        conj = -pdg if side == 1 and pdg not in (111, 22) else pdg
        rec["pdg"][rows[:, k]] = conj
        # mother indices are event-local: the taus sit at 2 and 3, the template after them
        rec["mother"][rows[:, k]] = (2 + side) if mother < 0 else local_first + mother
        rec["status"][rows[:, k]] = 1 if abs(pdg) in (11, 13, 211, 22, 12, 14, 16) else 2


def _background_tracks(
    truth: np.ndarray, ebeam: np.ndarray, rng: np.random.Generator
) -> list[dict[str, np.ndarray]]:
    """Tracks of the non-tau classes: back-to-back leptons, qq jets, soft two-photon pairs."""
    parts = []
    for code in (BHABHA, MUMU, TWO_PHOTON, QQ):
        events = np.flatnonzero(truth == code)
        n = len(events)
        if n == 0:
            continue
        # qq: 6..14 tracks (even: net charge 0); the others are two-prong
        counts = 2 * rng.integers(3, 8, size=n) if code == QQ else np.full(n, 2)
        total = int(counts.sum())
        ev_of = np.repeat(np.arange(n), counts)
        local = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        hemi = np.where(local < np.repeat(counts // 2, counts), 1.0, -1.0)
        axis = _random_axis(n, rng)[ev_of] * hemi[:, None]
        eb = ebeam[events][ev_of].astype(np.float64)
        if code in (BHABHA, MUMU):
            p = eb * (1 - np.abs(rng.normal(0, 0.01, total)))
            spread = 0.01
            species = np.full(total, 0 if code == BHABHA else 1)
        elif code == TWO_PHOTON:
            p = rng.uniform(0.15, 1.5, total)
            spread = 0.9
            species = rng.choice(3, size=total, p=[0.4, 0.2, 0.4])
        else:
            p = np.minimum(rng.exponential(0.8, total) + 0.1, eb)
            spread = 0.55
            species = rng.choice([0, 1, 2, 3, 4], size=total, p=[0.03, 0.02, 0.75, 0.15, 0.05])
        direction = axis + rng.normal(0.0, spread, size=(total, 3))
        direction /= np.linalg.norm(direction, axis=1)[:, None]
        charge = np.where(local % 2 == 0, 1, -1) * np.repeat(rng.choice([-1, 1], n), counts)
        parts.append(
            {
                "px": direction[:, 0] * p,
                "py": direction[:, 1] * p,
                "pz": direction[:, 2] * p,
                "charge": charge,
                "_species": species,
                "_tau": np.zeros(total, bool),
                "_counts": counts,
                "_events": events,
            }
        )
    return parts


def _merge_parts(n_events: int, parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Interleave per-class flat parts into one flat array per field, in event order."""
    counts = np.zeros(n_events, np.int64)
    for part in parts:
        counts[part["_events"]] = part["_counts"]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    out: dict[str, np.ndarray] = {"_counts": counts}
    for part in parts:
        dest = np.repeat(offsets[part["_events"]], part["_counts"])
        dest += np.arange(len(dest)) - np.repeat(
            np.cumsum(part["_counts"]) - part["_counts"], part["_counts"]
        )
        for key, values in part.items():
            if key in ("_counts", "_events"):
                continue
            if key not in out:
                out[key] = np.zeros(int(offsets[-1]), values.dtype)
            out[key][dest] = values
    return out


def _finish_tracks(
    trk: dict[str, np.ndarray], rng: np.random.Generator, cfg: GeneratorConfig
) -> None:
    """Derived and detector-level track quantities: pt, helix errors, PID likelihoods, hits."""
    n = len(trk["_counts"]) and int(trk["_counts"].sum())
    px, py, pz = trk["px"], trk["py"], trk["pz"]
    pt = np.hypot(px, py)
    p = np.sqrt(pt**2 + pz**2)
    species = trk["_species"]
    tau = trk["_tau"]
    trk["p"], trk["pt"] = p, pt
    trk["charge"] = trk["charge"].astype(np.int32)
    trk["d0"] = cfg.d0_resolution * rng.standard_normal(n) + tau * rng.laplace(
        0, cfg.lifetime_d0 / 4, n
    )
    trk["z0"] = cfg.z0_resolution * rng.standard_normal(n) + tau * rng.laplace(
        0, cfg.lifetime_d0 / 4, n
    )
    ndof = rng.integers(20, 46, size=n)
    trk["ndof"] = ndof.astype(np.int32)
    trk["chi2"] = rng.chisquare(ndof)
    for k, name in enumerate(("e", "mu", "pi", "k", "p")):
        truth_like = rng.beta(6, 1.5, n)
        fake = rng.beta(1.2, 8, n)
        trk[f"pid_{name}"] = np.where(species == k, truth_like, fake)
    # helix covariance (d0, phi0, omega, z0, tan(lambda)): multiple scattering grows at low pt
    ms = 1 + 0.3 / np.maximum(pt, 0.05) ** 2
    sig = np.stack(
        [
            0.0030 * np.sqrt(ms),  # d0 [cm]
            0.0010 * np.sqrt(ms),  # phi0 [rad]
            2e-5 * np.sqrt(ms) + 3e-6 * pt,  # omega [1/cm]
            0.0050 * np.sqrt(ms),  # z0 [cm]
            0.0012 * np.sqrt(ms),  # tan(lambda)
        ],
        axis=1,
    ) * rng.uniform(0.8, 1.25, size=(n, 5))
    k = 0
    for i in range(5):
        for j in range(i, 5):
            rho = 1.0 if i == j else rng.uniform(-0.6, 0.6, n)
            trk[f"cov{k:02d}"] = rho * sig[:, i] * sig[:, j]
            k += 1
    electron, muon = species == 0, species == 1
    trk["dedx_svt"] = rng.normal(np.where(electron, 1.4, 1.0), 0.12, n)
    trk["dedx_dch"] = rng.normal(np.where(electron, 1.45, 1.0), 0.07, n)
    beta_mass = np.take([0.000511, 0.1057, 0.1396, 0.4937, 0.9383], species)
    beta = p / np.sqrt(p**2 + beta_mass**2)
    trk["drc_thetac"] = np.arccos(np.clip(1 / (1.473 * beta), -1, 1)) + rng.normal(0, 0.003, n)
    trk["drc_nphot"] = rng.poisson(25, n).astype(np.int32)
    trk["nsvt"] = rng.integers(6, 11, size=n).astype(np.int32)
    trk["ndch"] = np.minimum(ndof + 5, 40).astype(np.int32)
    trk["ifr_nlay"] = np.where(muon, rng.integers(10, 19, n), rng.integers(0, 4, n)).astype(
        np.int32
    )
    trk["emc_e"] = np.where(electron, p * rng.normal(0.97, 0.03, n), rng.exponential(0.25, n))
    trk["emc_dist"] = np.abs(rng.normal(0, 2.0, n))  # cm, track-cluster match distance
    for name in TRK_FIELDS:
        if name not in _INT_FIELDS:
            trk[name] = trk[name].astype(np.float32)


def _clusters(
    truth: np.ndarray, ebeam: np.ndarray, rng: np.random.Generator, cfg: GeneratorConfig
) -> dict[str, np.ndarray]:
    """EMC clusters: photons and track-matched showers; two big ones in Bhabha events."""
    n_ev = len(truth)
    base = np.select(
        [truth == QQ, truth >= TAU_11], [cfg.clusters_qq[0], cfg.clusters_tau[0]], 0
    ) + np.where((truth != QQ) & (truth < TAU_11), cfg.clusters_other[0], 0)
    mean = np.select(
        [truth == QQ, truth >= TAU_11], [cfg.clusters_qq[1], cfg.clusters_tau[1]], 0
    ) + np.where((truth != QQ) & (truth < TAU_11), cfg.clusters_other[1], 0)
    counts = base + rng.poisson(mean)
    n = int(counts.sum())
    ev_of = np.repeat(np.arange(n_ev), counts)
    local = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    e = rng.exponential(0.22, n) + 0.02
    big = (truth[ev_of] == BHABHA) & (local < 2)
    e = np.where(big, ebeam[ev_of] * rng.normal(0.94, 0.02, n), e)
    cos_theta = rng.uniform(*cfg.acceptance_cos, n)
    theta = np.arccos(cos_theta)
    phi = rng.uniform(-np.pi, np.pi, n)
    radius = 92.0  # cm, inner radius of the barrel EMC
    em = big | (rng.random(n) < 0.6)
    clus = {
        "_counts": counts,
        "e": e,
        "theta": theta,
        "phi": phi,
        "nhits": (1 + rng.poisson(4 + 12 * np.sqrt(e))).astype(np.int32),
        "lat": np.where(em, rng.beta(3, 8, n), rng.beta(5, 4, n)),
        "a42": np.where(em, rng.beta(1.5, 20, n), rng.beta(2, 8, n)),
        "s9s25": np.where(em, rng.beta(20, 1.5, n), rng.beta(6, 3, n)),
        "x": radius * np.cos(phi),
        "y": radius * np.sin(phi),
        "z": radius * cos_theta / np.sqrt(1 - cos_theta**2),
        "time": rng.normal(0, 60, n),  # ns from the event time
        "a20": rng.beta(20, 2, n),
        "s1s9": np.where(em, rng.beta(8, 3, n), rng.beta(3, 4, n)),
        "second_moment": rng.gamma(2.0, 5e-4, n),
        "trk_dist": rng.exponential(20.0, n),
        "status": rng.integers(0, 8, n).astype(np.int32),
    }
    clus["e1"] = e * clus["s1s9"] * clus["s9s25"]
    clus["e9"] = e * clus["s9s25"]
    clus["e25"] = e
    clus["e_raw"] = e / rng.normal(1.06, 0.02, n)  # before the leakage/shower-loss correction
    clus["e_err"] = e * np.hypot(0.023 / np.sqrt(np.sqrt(e)), 0.019)  # BaBar EMC resolution
    clus["theta_err"] = 0.004 / np.sqrt(e)  # rad, EMC angular resolution ~ 4 mrad/sqrt(E)
    clus["phi_err"] = clus["theta_err"] * rng.normal(1.0, 0.05, n)
    for name in CLUS_FIELDS:
        if name not in _INT_FIELDS:
            clus[name] = clus[name].astype(np.float32)
    return clus


def _event_shape(
    ev: _EventShape,
    truth: np.ndarray,
    ebeam: np.ndarray,
    mc: _TauPairs,
    rng: np.random.Generator,
) -> None:
    """Event-level variables: tau pairs from their neutrinos, backgrounds from class shapes."""
    n = len(truth)
    e_cm = 2 * ebeam.astype(np.float64)
    shapes = {  # code: (thrust a, b, lo, hi), r2 (a, b), missing pt scale, mm2 (mean, sd)
        BHABHA: ((30, 1.2, 0.97, 1.0), (20, 1.5), 0.05, (0.0, 0.3)),
        MUMU: ((30, 1.2, 0.97, 1.0), (20, 1.5), 0.05, (0.0, 0.3)),
        QQ: ((4, 3, 0.6, 0.9), (2, 6), 0.35, (4.0, 6.0)),
        TWO_PHOTON: ((3, 2, 0.7, 0.99), (3, 3), 0.2, (60.0, 15.0)),
    }
    evis_frac = {
        BHABHA: (0.97, 0.02),
        MUMU: (0.97, 0.02),
        QQ: (0.88, 0.06),
        TWO_PHOTON: (0.2, 0.06),
    }
    thrust = np.empty(n)
    r2 = np.empty(n)
    mpt = np.empty(n)
    mm2 = np.empty(n)
    evis = np.empty(n)
    for code, ((a, b, lo, hi), (ra, rb), scale, (mu, sd)) in shapes.items():
        sel = truth == code
        k = int(sel.sum())
        thrust[sel] = lo + (hi - lo) * rng.beta(a, b, k)
        r2[sel] = rng.beta(ra, rb, k)
        mpt[sel] = rng.exponential(scale, k)
        mm2[sel] = rng.normal(mu, sd, k)
        evis[sel] = e_cm[sel] * np.clip(rng.normal(*evis_frac[code], k), 0.05, 1.02)
    if len(mc.events):
        t = mc.events
        k = len(t)
        nu = mc.nu_sum
        thrust[t] = 0.85 + 0.14 * rng.beta(5, 1.5, k)
        r2[t] = rng.beta(6, 2.5, k)
        mpt[t] = np.hypot(nu[:, 0], nu[:, 1]) + rng.exponential(0.05, k)
        mm2[t] = nu[:, 3] ** 2 - (nu[:, :3] ** 2).sum(axis=1) + rng.normal(0, 0.3, k)
        evis[t] = e_cm[t] - nu[:, 3] + rng.normal(0, 0.05, k)
    ev.thrust, ev.r2, ev.missing_pt = (v.astype(np.float32) for v in (thrust, r2, mpt))
    ev.missing_mass2, ev.evis = mm2.astype(np.float32), evis.astype(np.float32)


def _random_axis(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors with cos(theta) uniform over the central acceptance and phi uniform."""
    cos_t = rng.uniform(-0.8, 0.8, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    sin_t = np.sqrt(1 - cos_t**2)
    return np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=1)


def _zip(flat: dict[str, np.ndarray], fields: tuple[str, ...]) -> ak.Array:
    """A jagged record array (``var * {field: ...}``) from flat fields and per-event counts."""
    counts = np.asarray(flat["_counts"], np.int64)
    record = ak.zip({f: flat[f] for f in fields}, depth_limit=1)
    return ak.unflatten(record, counts)
