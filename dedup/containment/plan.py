"""R2D2 deletion plan: which contained tables to delete so storage plus expected rebuild cost is smallest.

Each candidate edge t -> c (t contained in c) may delete t and rebuild it from c on access. Deleting t saves
`storage_cost_per_byte * bytes(t)` per period and costs `access_frequency(t) * scan_cost_per_byte * bytes(c)`
per period (every access scans c); the edge is usable only when the rebuild latency `bytes(c) /
scan_bytes_per_second` is within `max_rebuild_seconds`. A deleted table's container must be kept, and a table is
deleted at most once. Choosing edges is an integer program: maximise the total saving of chosen edges subject to
"at most one edge out of t" and "an edge into c excludes every edge out of c". It is solved exactly with HiGHS
(scipy.optimize.milp) up to `milp_max_edges` edges. A greedy (edges by decreasing saving) always runs too; it is the
answer beyond `milp_max_edges`, or when HiGHS stops at its time limit with a worse plan, and then the LP relaxation
(also HiGHS) gives an upper bound on the optimum, so the plan's distance from optimal is reported in stats.json.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

# scipy (HiGHS) is imported where a solver runs: `sift contain` solves on its side worker, so the main process
# never pays the import.


@dataclass
class PlanEdge:
    table: int
    container: int
    saving: float
    rebuild_cost: float
    rebuild_seconds: float


def plan_edges(
    edges: list[tuple[int, int]],
    nbytes: list[int],
    freq: list[float],
    storage_cost: float,
    scan_cost: float,
    scan_bps: float,
    max_seconds: float | None,
) -> tuple[list[PlanEdge], dict]:
    """Usable edges with a positive saving."""
    out, too_slow, no_saving = [], 0, 0
    for t, c in edges:
        seconds = nbytes[c] / scan_bps
        if max_seconds is not None and seconds > max_seconds:
            too_slow += 1
            continue
        rebuild = freq[t] * scan_cost * nbytes[c]
        saving = storage_cost * nbytes[t] - rebuild
        if saving <= 0:
            no_saving += 1
            continue
        out.append(PlanEdge(t, c, saving, rebuild, seconds))
    return out, {"edges": len(edges), "over_latency": too_slow, "no_saving": no_saving, "usable": len(out)}


def _scale(cands: list[PlanEdge]) -> float:
    return max((e.saving for e in cands), default=1.0) or 1.0


def _scaled(cands: list[PlanEdge]) -> np.ndarray:
    """Savings divided by the largest one: costs per byte are tiny numbers, and HiGHS's tolerances (1e-7) would
    otherwise treat whole tables' savings as zero."""
    return np.array([e.saving for e in cands]) / _scale(cands)


def _matrix(cands: list[PlanEdge], n_tables: int):
    """Constraint rows: one per table (out-degree <= 1) and one per edge (edge + edges out of its container <= 1)."""
    from scipy import sparse

    out_of: dict[int, list[int]] = {}
    for i, e in enumerate(cands):
        out_of.setdefault(e.table, []).append(i)
    rows, cols = [], []
    r = 0
    for _t, idx in sorted(out_of.items()):
        for i in idx:
            rows.append(r)
            cols.append(i)
        r += 1
    for i, e in enumerate(cands):
        rows.append(r)
        cols.append(i)
        for j in out_of.get(e.container, []):
            rows.append(r)
            cols.append(j)
        r += 1
    a = sparse.csr_array((np.ones(len(rows)), (rows, cols)), shape=(r, len(cands)))
    return a, r


def solve_exact(cands: list[PlanEdge], n_tables: int, time_limit: float) -> tuple[list[int], dict]:
    from scipy.optimize import Bounds, LinearConstraint, milp

    if not cands:
        return [], {"solver": "none", "objective": 0.0}
    a, r = _matrix(cands, n_tables)
    c = -_scaled(cands)
    res = milp(
        c,
        constraints=LinearConstraint(a, -np.inf, np.ones(r)),
        integrality=np.ones(len(cands)),
        bounds=Bounds(0, 1),
        options={"time_limit": time_limit, "disp": False},
    )
    if res.x is None:
        raise RuntimeError(f"HiGHS found no plan: {res.message}")
    chosen = [i for i, v in enumerate(res.x) if v > 0.5]
    return chosen, {
        "solver": "milp (HiGHS)",
        "optimal": bool(res.status == 0),
        "objective_saving": float(sum(cands[i].saving for i in chosen)),
        "mip_gap": float(getattr(res, "mip_gap", 0.0) or 0.0),
        "message": str(res.message),
    }


def lp_bound(cands: list[PlanEdge], n_tables: int, saving: float) -> dict:
    """The LP relaxation's optimum: an upper bound on the best possible saving, so `saving / bound` is a
    guarantee on how far a plan is from optimal."""
    from scipy.optimize import linprog

    a, r = _matrix(cands, n_tables)
    scaled = _scaled(cands)
    lp = linprog(-scaled, A_ub=a, b_ub=np.ones(r), bounds=(0, 1), method="highs")
    if lp.status != 0:
        return {}
    bound = float(-lp.fun) * _scale(cands)
    return {"lp_upper_bound": bound, "fraction_of_bound": saving / bound if bound > 0 else 1.0}


def solve_greedy(
    cands: list[PlanEdge], n_tables: int, names: list[str], bound: bool = True
) -> tuple[list[int], dict]:
    order = sorted(
        range(len(cands)), key=lambda i: (-cands[i].saving, names[cands[i].table], names[cands[i].container])
    )
    deleted: set[int] = set()
    container_of_kept: set[int] = set()
    chosen = []
    for i in order:
        e = cands[i]
        if e.table in deleted or e.table in container_of_kept or e.container in deleted:
            continue
        deleted.add(e.table)
        container_of_kept.add(e.container)
        chosen.append(i)
    saving = float(sum(cands[i].saving for i in chosen))
    info: dict = {"solver": "greedy", "objective_saving": saving}
    if bound and cands:
        info.update(lp_bound(cands, n_tables, saving))
    return sorted(chosen), info


def choose_deletions(
    edges: list[tuple[int, int]],
    names: list[str],
    nbytes: list[int],
    freq: list[float],
    *,
    storage_cost: float,
    scan_cost: float,
    scan_bps: float,
    max_seconds: float | None,
    milp_max_edges: int,
    time_limit: float,
) -> tuple[dict[int, PlanEdge], dict]:
    """Deleted table -> the edge (container) it is rebuilt from, plus solver statistics."""
    t0 = time.perf_counter()
    cands, info = plan_edges(edges, nbytes, freq, storage_cost, scan_cost, scan_bps, max_seconds)
    # The greedy is cheap and always run; the exact MILP replaces it when it finishes at least as well (HiGHS
    # may stop at its time limit on adversarial graphs). A final greedy answer comes with the LP bound.
    chosen, sinfo = solve_greedy(cands, len(names), names, bound=False)
    if cands and len(cands) <= milp_max_edges:
        try:
            exact, einfo = solve_exact(cands, len(names), time_limit)
            if einfo["objective_saving"] >= sinfo["objective_saving"] - 1e-12 * abs(
                sinfo["objective_saving"]
            ):
                chosen, sinfo = exact, {**einfo, "greedy_saving": sinfo["objective_saving"]}
            else:
                sinfo = {**sinfo, "milp_saving_at_time_limit": einfo["objective_saving"]}
        except RuntimeError as exc:  # no feasible point within the time limit
            sinfo = {**sinfo, "milp_failed": str(exc)}
    if sinfo["solver"] == "greedy" and cands:
        sinfo.update(lp_bound(cands, len(names), sinfo["objective_saving"]))
    plan = {cands[i].table: cands[i] for i in chosen}
    bad = [t for t, e in plan.items() if e.container in plan]
    if bad:  # cannot happen with a correct solver: refuse rather than lose data
        raise RuntimeError(f"plan would delete containers of deleted tables: {sorted(names[t] for t in bad)}")
    return plan, {**info, **sinfo, "deleted": len(plan), "seconds": time.perf_counter() - t0}
