"""Exact verification by mixed-integer programming (Tjeng, Xiao and Tedrake 2019,
arXiv:1711.07356), solved by HiGHS through ``scipy.optimize.milp``.

Per example, cheapest first (an example decided by one step never reaches the next):

1. ``clean``: the model misclassifies ``x`` itself: not robust (``x`` is the counterexample);
2. ``bounds``: CROWN (with interval bounds where tighter) proves every margin: robust;
3. ``attack``: targeted PGD on each margin not proved (``attack.margin_attack``) finds an input
   the model misclassifies: not robust;
4. ``mip``: for each remaining target ``j`` (the attack's most promising first), is there an
   input of the domain with ``logit_y - logit_j <= tol * scale``? ReLUs are encoded exactly with
   the big-M constraints of Tjeng et al. tightened by the per-neuron CROWN bounds; stably
   active or inactive neurons need no binary. Every target infeasible: robust. A feasible
   point is a candidate counterexample, checked by a forward pass of the model in its own
   dtype after projecting it onto the threat model's box; one that does not misclassify is
   refined by PGD from it and, failing that, the program is solved again minimising the margin
   (the deepest point); still correct: unknown. Running out of ``time_limit`` (seconds per
   example, all targets together): unknown.

"Robust" here is exact up to the solver's tolerances (HiGHS's primal feasibility tolerance,
1e-7 by default, is below the proof's margin ``tol * scale``), for the float64 model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from benchbench.errors import VerifierError
from benchbench.verify import DEFAULT_TOL, NOT_ROBUST, ROBUST, UNKNOWN


@dataclass
class MIPResult:
    """Per example: the verdict code, the checked counterexample (NaN where none), the step
    that decided it and the seconds spent in the solver."""

    codes: torch.Tensor  # int8 [N]
    counterexamples: torch.Tensor  # [N, *x], model dtype
    stage: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def _dense_layers(net):
    from benchbench.verify.ops import chain_dense

    ins = [net.in_shape, *net.shapes[:-1]]
    return [tuple(t.numpy() for t in chain_dense(chain, i, o))
            for chain, i, o in zip(net.chains, ins, net.shapes, strict=True)]


class _Program:
    """The MILP of one example without its objective row: variables ``x``, each ReLU layer's
    outputs, one binary per unstable neuron."""

    def __init__(self, dense, layers, lower, upper) -> None:
        from scipy import sparse

        n0 = lower.size
        sizes = [W.shape[0] for W, _ in dense[:-1]]
        self.offsets = np.cumsum([0, n0, *sizes])
        unstable = [(lo < 0) & (hi > 0) for lo, hi in layers]
        n_bin = int(sum(u.sum() for u in unstable))
        self.n = int(self.offsets[-1]) + n_bin
        lb, ub = np.empty(self.n), np.empty(self.n)
        lb[:n0], ub[:n0] = lower, upper
        self.integrality = np.zeros(self.n)
        self.integrality[self.offsets[-1]:] = 1
        lb[self.offsets[-1]:], ub[self.offsets[-1]:] = 0, 1
        rows, cols, vals, lo_rows, hi_rows = [], [], [], [], []
        r, d = 0, int(self.offsets[-1])

        def put(row_ids, col_ids, values):
            rows.append(np.asarray(row_ids)), cols.append(np.asarray(col_ids))
            vals.append(np.asarray(values, dtype=np.float64))

        for k, ((W, b), (lo, hi), uns) in enumerate(zip(dense[:-1], layers, unstable,
                                                        strict=True)):
            prev, own = self.offsets[k], self.offsets[k + 1]
            lb[own:own + len(b)] = np.maximum(lo, 0)
            ub[own:own + len(b)] = np.maximum(hi, 0)
            active = np.flatnonzero(lo >= 0)
            uns_idx = np.flatnonzero(uns)
            # a - W a_prev = b (active); a - W a_prev >= b and a - W a_prev - l d <= b - l
            for group, kind in ((active, "eq"), (uns_idx, "ge"), (uns_idx, "le")):
                if len(group) == 0:
                    continue
                block = sparse.coo_array(-W[group])
                put(block.row + r, block.col + prev, block.data)
                put(np.arange(len(group)) + r, own + group, np.ones(len(group)))
                if kind == "le":
                    put(np.arange(len(group)) + r, d + np.arange(len(group)), -lo[group])
                lo_rows.append(b[group] if kind != "le" else np.full(len(group), -np.inf))
                hi_rows.append(b[group] if kind == "eq" else
                               (np.full(len(group), np.inf) if kind == "ge"
                                else b[group] - lo[group]))
                r += len(group)
            if len(uns_idx):  # a - u d <= 0
                put(np.arange(len(uns_idx)) + r, own + uns_idx, np.ones(len(uns_idx)))
                put(np.arange(len(uns_idx)) + r, d + np.arange(len(uns_idx)), -hi[uns_idx])
                lo_rows.append(np.full(len(uns_idx), -np.inf))
                hi_rows.append(np.zeros(len(uns_idx)))
                r += len(uns_idx)
                d += len(uns_idx)
        self.rows = r
        self.parts = (rows, cols, vals, lo_rows, hi_rows)
        self.bounds = (lb, ub)
        self.W_last, self.b_last = dense[-1]
        self.last_offset = self.offsets[-2] if len(dense) > 1 else 0
        self.n0 = n0

    def solve(self, c_row, rhs: float, time_limit: float, *, minimise: bool = False):
        """``(status, x)``: whether some point has ``c_row . logits <= rhs`` ("infeasible",
        "feasible", "limit", "error") and the point's input part."""
        from scipy import sparse
        from scipy.optimize import Bounds, LinearConstraint, milp

        rows, cols, vals, lo_rows, hi_rows = self.parts
        spec_w = c_row @ self.W_last
        spec_cols = self.last_offset + np.arange(len(spec_w))
        A = sparse.coo_array(
            (np.concatenate([*vals, spec_w]),
             (np.concatenate([*rows, np.full(len(spec_w), self.rows)]),
              np.concatenate([*cols, spec_cols]))), shape=(self.rows + 1, self.n)).tocsr()
        lo = np.concatenate([*lo_rows, [-np.inf]])
        hi = np.concatenate([*hi_rows, [rhs - c_row @ self.b_last]])
        objective = np.zeros(self.n)
        if minimise:
            objective[spec_cols] = spec_w
        res = milp(objective, integrality=self.integrality, bounds=Bounds(*self.bounds),
                   constraints=LinearConstraint(A, lo, hi),
                   options={"time_limit": max(time_limit, 1e-3), "disp": False})
        point = None if res.x is None else res.x[:self.n0]
        if res.status == 2:
            return "infeasible", None
        if point is not None:
            return "feasible", point
        return ("limit" if res.status == 1 else "error"), None


def mip_verdicts(model, x, y, *, eps: float, bounds=(0.0, 1.0), tol: float | None = None,
                 time_limit: float = 10.0, attack_steps: int = 100, attack_restarts: int = 2,
                 seed: int = 0, net=None) -> MIPResult:
    """The verdicts of ``x`` (model dtype, eval mode) at one L-inf ``eps``: see the module."""
    from benchbench.attacks.harness import linf_limits
    from benchbench.verify.api import _chunk, bound_chunk, threshold
    from benchbench.verify.attack import first_break, margin_attack, misclassified
    from benchbench.verify.bounds import build_network
    from benchbench.verify.domain import make_domain

    if not (isinstance(time_limit, int | float) and time_limit > 0):
        raise VerifierError(f"time_limit must be a positive number of seconds; got "
                            f"{time_limit!r}")
    tol = DEFAULT_TOL if tol is None else tol
    net = net or build_network(model, x.shape[1:], verifier="mip")
    N = len(x)
    codes = torch.zeros(N, dtype=torch.int8)
    cex = torch.full_like(x, float("nan"))
    stage, seconds = ["mip"] * N, [0.0] * N
    wrong = misclassified(model, x, y)
    codes[wrong], cex[wrong] = NOT_ROBUST, x[wrong]
    for i in wrong.nonzero().flatten().tolist():
        stage[i] = "clean"
    thr = threshold(model, x, tol)
    margins, layers = [], []
    step = _chunk(net, N)
    with torch.no_grad():
        for s in range(0, N, step):
            m, lay = bound_chunk(net, make_domain(x[s:s + step], eps, bounds), y[s:s + step],
                                 "crown")
            margins.append(m), layers.append(lay)
    margins = torch.cat(margins) if margins else torch.empty((0, 0), dtype=torch.float64)
    layer_of = [[torch.cat([lay[k][j] for lay in layers]) for j in (0, 1)]
                for k in range(net.relus)]
    proved = margins > thr.unsqueeze(1)
    done = proved.all(1) & ~wrong
    codes[done] = ROBUST
    for i in done.nonzero().flatten().tolist():
        stage[i] = "bounds"
    todo = (codes == UNKNOWN).nonzero().flatten()
    if len(todo) == 0:
        return MIPResult(codes, cex, stage, seconds)
    found, points = margin_attack(model, x[todo], y[todo], eps=eps, bounds=bounds,
                                  targets=~proved[todo], steps=attack_steps,
                                  restarts=attack_restarts, seed=seed)
    broken, where = first_break(model, x[todo], y[todo], points)
    codes[todo[broken]], cex[todo[broken]] = NOT_ROBUST, where[broken]
    for i in todo[broken].tolist():
        stage[i] = "attack"
    dense = _dense_layers(net)
    lo_box, hi_box = linf_limits(x, eps, bounds)
    dom = make_domain(x, eps, bounds)
    classes = net.shapes[-1][0]
    eye = np.eye(classes)
    for t_i, i in enumerate(todo.tolist()):
        if broken[t_i]:
            continue
        start = time.perf_counter()
        program = _Program(dense, [(layer_of[k][0][i].flatten().numpy(),
                                    layer_of[k][1][i].flatten().numpy())
                                   for k in range(net.relus)],
                           dom.lower[i].flatten().numpy(), dom.upper[i].flatten().numpy())
        verdict, why = ROBUST, "mip"
        order = sorted((j for j in range(classes) if not proved[i, j]),
                       key=lambda j: float(found[t_i, j]))
        for j in order:
            left = time_limit - (time.perf_counter() - start)
            c_row = eye[int(y[i])] - eye[j]
            status, point = program.solve(c_row, float(thr[i]), left) if left > 0 else (
                "limit", None)
            if status == "infeasible":
                continue
            if status != "feasible":
                verdict, why = UNKNOWN, "timeout" if status == "limit" else "solver"
                break
            checked = _check(model, x, y, i, j, point, lo_box, hi_box, eps, bounds)
            if checked is None:
                left = time_limit - (time.perf_counter() - start)
                status, point = program.solve(c_row, float(thr[i]), left, minimise=True)
                if status == "feasible":
                    checked = _check(model, x, y, i, j, point, lo_box, hi_box, eps, bounds)
            if checked is not None:
                verdict, why = NOT_ROBUST, "mip"
                cex[i] = checked
            else:
                verdict, why = UNKNOWN, "unchecked"
            break
        codes[i], stage[i] = verdict, why
        seconds[i] = time.perf_counter() - start
    return MIPResult(codes, cex, stage, seconds)


def _check(model, x, y, i, j, point, lo_box, hi_box, eps, bounds):
    """The solver's point in the model's dtype, projected onto the threat model's box, if the
    model misclassifies it (or a PGD step from it towards ``j`` does); else None."""
    from benchbench.verify.attack import margin_attack, misclassified

    z = torch.as_tensor(point, dtype=x.dtype).view(1, *x.shape[1:])
    z = torch.clamp(z, lo_box[i:i + 1], hi_box[i:i + 1])
    if bool(misclassified(model, z, y[i:i + 1])):
        return z[0]
    targets = torch.zeros((1, int(model(z).shape[1])), dtype=torch.bool)
    targets[0, j] = True
    _, points = margin_attack(model, x[i:i + 1], y[i:i + 1], eps=eps, bounds=bounds,
                              targets=targets, steps=20, restarts=1, start=z)
    z = points[0, j:j + 1]
    return z[0] if bool(misclassified(model, z, y[i:i + 1])) else None
