"""Histograms and cut flows a plugin fills: booked with ``hist``, kept exactly (any split of
the events, any merge order, the same bits), written as TH1/TH2 with their exact state."""

from hepstream.hists.booked import Histogram
from hepstream.hists.kernels import bin_index
from hepstream.hists.store import Results, merge_all, read_results, write_results

__all__ = ["Histogram", "Results", "bin_index", "merge_all", "read_results", "write_results"]
