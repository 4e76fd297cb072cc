"""One-to-one assignment over sparse candidate pairs (the Hungarian method per component).

Linking is a maximum-weight bipartite matching: every candidate pair (row i, column j) that
passed the gates has weight ``max_cost - cost > 0``, and pairs that are not candidates
cannot be matched at all. This is what ``linear_sum_assignment`` on the dense matrix would
give with "no link" worth 0 -- but most pairs are gated out, so the graph falls apart into
small connected components (typically one resting insect = one pair). Isolated pairs are
taken directly; each remaining component is solved with ``linear_sum_assignment`` on its
own small dense matrix, which gives the same optimum (components share no rows or columns)
at a fraction of the cost.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def max_weight_matching(rows: np.ndarray, cols: np.ndarray,
                        weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The chosen (row, column) pairs, each row and column at most once, maximising the
    total weight. Inputs: K candidate pairs with positive weights; row and column ids are
    non-negative integers (any range). Deterministic for the same input."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    if len(rows) == 0:
        return rows[:0], cols[:0]
    if np.any(weights <= 0):
        keep = weights > 0
        rows, cols, weights = rows[keep], cols[keep], weights[keep]
        if len(rows) == 0:
            return rows, cols
    # Compact ids so the component graph is small.
    urow, r = np.unique(rows, return_inverse=True)
    ucol, c = np.unique(cols, return_inverse=True)
    nr, nc = len(urow), len(ucol)
    row_deg = np.bincount(r, minlength=nr)
    col_deg = np.bincount(c, minlength=nc)
    isolated = (row_deg[r] == 1) & (col_deg[c] == 1)
    chosen_r = [r[isolated]]
    chosen_c = [c[isolated]]
    rest = np.flatnonzero(~isolated)
    if len(rest):
        rr, cc, ww = r[rest], c[rest], weights[rest]
        graph = coo_matrix((np.ones(len(rr)), (rr, cc + nr)), shape=(nr + nc, nr + nc))
        _, label = connected_components(graph, directed=False)
        comp = label[rr]
        order = np.argsort(comp, kind="stable")
        rr, cc, ww, comp = rr[order], cc[order], ww[order], comp[order]
        bounds = np.flatnonzero(np.diff(comp)) + 1
        for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(comp)]):
            cr, ci = np.unique(rr[start:stop], return_inverse=True)
            kr, ki = np.unique(cc[start:stop], return_inverse=True)
            dense = np.zeros((len(cr), len(kr)))
            dense[ci, ki] = ww[start:stop]
            ar, ac = linear_sum_assignment(dense, maximize=True)
            real = dense[ar, ac] > 0  # a zero entry is "not a candidate": no link
            chosen_r.append(cr[ar[real]])
            chosen_c.append(kr[ac[real]])
    out_r = np.concatenate(chosen_r)
    out_c = np.concatenate(chosen_c)
    order = np.argsort(out_r, kind="stable")
    return urow[out_r[order]], ucol[out_c[order]]
