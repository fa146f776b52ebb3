"""A cut on the uproot big-basket layout: four branches of incompressible random numbers.

The file carries no physics; the plugin reads four of its six branches (three flat, one
jagged) and keeps about 10 % of the events, so every basket of those branches is read.
"""

import numba
import numpy as np

import hepstream

X_MAX = 0.5
R2_MAX = 0.5  # y**2 + z**2
HIT_SUM_MIN = 1.5


@numba.njit(cache=True, nogil=True)
def _keep(x, y, z, offsets, hit_e):
    keep = np.empty(len(x), np.bool_)
    for i in range(len(x)):
        total = 0.0
        for k in range(offsets[i], offsets[i + 1]):
            total += hit_e[k]
        keep[i] = (x[i] < X_MAX) & (y[i] * y[i] + z[i] * z[i] < R2_MAX) & (total > HIT_SUM_MIN)
    return keep


class BigBasket(hepstream.Selection):
    """Keep events with small x, small (y, z) radius and enough summed hit energy."""

    tree = "events"
    branches = ["x", "y", "z", "hit_e"]

    def select(self, events):
        f = hepstream.flat
        offsets, hit_e = hepstream.jagged(events, "hit_e")
        return _keep(f(events, "x"), f(events, "y"), f(events, "z"), offsets, hit_e)

    def output(self, events):
        return {"x": events.x, "y": events.y, "hit_e": events.hit_e}
