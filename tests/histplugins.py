"""Plugins of the histogram tests (``tests/test_job_hists.py``): one that books every kind of
axis and storage, fills them from the selected events (by ``fill``, ``fill_all`` and a numba
kernel through ``bins()``) and names its cuts, in the three ways ``select`` may answer.

The tests compute what these plugins should fill independently, with uproot and awkward;
:data:`EDGES` and the bookings here are the only things they share with the plugin.
"""

from __future__ import annotations

from pathlib import Path

#: The variable binning of ``ptmiss`` and of the tracks' momenta (the numba path).
EDGES = [0.0, 0.3, 0.5, 1.0, 1.5, 2.5, 4.0]
#: With ``preselect``, events numbered from EARLY on are never read further (whole clusters
#: of the samples die: their ``event`` counts from 0 in each file).
EARLY = 5000
#: The plugin's cuts, in order (none for a plugin whose select() returns one mask).
CUTS = ["thrust", "two_tracks", "missing_pt"]
BRANCHES = ["event", "thrust", "missing_pt", "evis", "ntrk", "mc_truth", "trk_p", "trk_charge"]

HISTS = """\
import awkward as ak, numba, numpy as np, hist, hepstream
from hepstream import flat, jagged

MODE = {mode!r}
EARLY = {early!r}
EDGES = np.array({edges!r})


@numba.njit(nogil=True)
def _fill_tracks(counts, edges, offsets, p):
    for i in range(len(offsets) - 1):
        for j in range(offsets[i], offsets[i + 1]):
            counts[hepstream.bin_index(edges, p[j] - 0.5)] += 1  # underflow too


class Hists(hepstream.Selection):
    branches = {branches!r}
    preselect = {preselect!r}
    cuts = [] if MODE == "mask" else {cuts!r}

    def preselect_mask(self, events):
        return flat(events, "event") < EARLY

    def book(self):
        return {{
            "thrust": hist.Hist.new.Reg(25, 0.5, 1.0, name="thrust", label="thrust").Int64(),
            "evis_q": hist.Hist.new.Reg(8, 0, 8, name="evis").Double(),
            "ptmiss": hist.Hist.new.Var(EDGES, name="ptmiss", label="missing pT").Weight(),
            "ntrk_truth": hist.Hist.new.Integer(0, 6, name="ntrk")
            .IntCat([10, 11, 12], name="truth").Weight(),
            "charge": hist.Hist.new.StrCat(["neutral", "charged"], name="q").Int64(),
            "thrust_all": hist.Hist.new.Reg(25, 0.5, 1.0, name="thrust").Int64(),
            "trk_p": hist.Hist.new.Var(EDGES, name="p").Int64(),
        }}

    def select(self, events):
        c1 = flat(events, "thrust") > 0.95  # the first cut: the preselection or stricter
        if self.preselect:
            c1 &= self.preselect_mask(events)
        c2 = flat(events, "ntrk") == 2
        c3 = flat(events, "missing_pt") > 0.5
        if MODE == "dict":
            return {{"thrust": c1, "two_tracks": c2, "missing_pt": c3}}
        if MODE == "int":  # cuts passed in a row, as a numba kernel would count them
            return np.where(c1, np.where(c2, np.where(c3, 3, 2), 1), 0).astype(np.int8)
        return c1 & c2 & c3

    def fill_all(self, events):
        self.hists["thrust_all"].fill(flat(events, "thrust"))

    def fill(self, events):
        h = self.hists
        event = flat(events, "event")
        evis = flat(events, "evis").astype(np.float64)
        h["thrust"].fill(flat(events, "thrust"))
        # values on the bin edges, weights of a few quarters (negative and zero ones too)
        h["evis_q"].fill(np.floor(evis * 2) / 2, weight=(event % 7) * 0.25 - 0.5)
        # NaN values and values exactly on each edge; weights that are not "nice"
        ptmiss = flat(events, "missing_pt").astype(np.float64)
        ptmiss = np.where(event % 10 == 1, EDGES[event % 7], ptmiss)
        ptmiss = np.where(event % 10 == 0, np.nan, ptmiss)
        h["ptmiss"].fill(ptmiss=ptmiss, weight=evis / 10)
        h["ntrk_truth"].fill(
            flat(events, "ntrk") + event % 6,
            flat(events, "mc_truth") + 3 * (event % 5 == 0),  # beyond the categories
            weight=1 + (event % 3) * 0.5,
        )
        total = ak.to_numpy(ak.sum(events["trk_charge"], axis=1))
        labels = np.where(total == 0, "neutral", "charged")
        h["charge"].fill(np.where(event % 13 == 0, "other", labels))  # overflow: no category
        offsets, p = jagged(events, "trk_p")
        _fill_tracks(h["trk_p"].bins(), h["trk_p"].edges(), offsets, p)
"""


def write_plugin(
    where: Path, mode: str = "int", preselect: bool = False, name: str | None = None
) -> Path:
    """The histograms plugin at ``where/NAME.py``: ``select`` answers with ``mode`` (``int``
    cuts passed in a row, a ``dict`` of masks, or one ``mask`` and no cuts); with
    ``preselect``, events numbered :data:`EARLY` or more are never read further (and fail
    the first cut)."""
    path = where / f"{name or f'hists_{mode}'}.py"
    path.write_text(
        HISTS.format(
            mode=mode,
            edges=EDGES,
            branches=BRANCHES,
            preselect=["event"] if preselect else [],
            early=EARLY,
            cuts=CUTS,
        )
    )
    return path
