"""Edge-frame rotations two ways: per-edge Wigner matrices (what tgkit runs) against two angles.

Any rotation taking e3nn's y axis onto an edge works for the edge frame (the roll about the
edge is free), so ``R = Ry(a) Q Ry(b) Q^T`` with ``Q`` a fixed rotation taking y onto x:
``D(R) = Y(a) D(Q) Y(b) D(Q)^T``, where ``Y(t) = D(Ry(t))`` only mixes ``m`` with ``-m``
(``cos(|m| t)`` on the diagonal, ``+-sin(|m| t)`` across), so it is elementwise on the whole
feature vector, and ``D(Q)`` is one constant matrix per degree (a plain matmul over all edges).
No per-edge Wigner matrix is built. The script checks this rotation against
``tgkit.nn.edge_frame.rotate`` with ``wigner_D_chain`` of the same R in float64 (asserted,
1e-12), then times, in float32 on one thread, a rotation into the frame and back for the
hidden and last edge irreps of ``configs/default.yaml``, and the cost of the per-edge tables
of each (Wigner matrices against cos/sin of the angles).

Usage (repository root)::

    .venv/bin/python bench/bench_rotation_angles.py [--edges 4096]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from e3nn import o3

from tgkit.irreps import wigner_D_chain
from tgkit.nn.edge_frame import edge_rotations, rotate

LMAX = 4
IRREPS = ["16x0e+8x1o+4x2e+4x3o+2x4e", "16x0e+12x1o+5x1e+4x2o+9x2e+4x3o+1x3e+2x4e"]


def ry(t: float) -> torch.Tensor:
    """Rotation by t about e3nn's y axis (its second coordinate)."""
    c, s = math.cos(t), math.sin(t)
    return torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float64)


Q = torch.tensor([[0.0, 1, 0], [-1, 0, 0], [0, 0, 1]], dtype=torch.float64)   # y -> x


def y_signs() -> dict[tuple[int, int], float]:
    """Sign of the sin entry of Y(t) that feeds component k of degree l (read off once)."""
    t = 0.37
    dy = wigner_D_chain(ry(t)[None], LMAX)
    out = {}
    for l in range(1, LMAX + 1):
        for k in range(2 * l + 1):
            m = k - l
            if m:
                out[l, k] = round(float(dy[l][0, l - m, k]) / math.sin(abs(m) * t))
    return out


class AngleRotation:
    """``x @ D(R)`` and ``x @ D(R)^T`` for features of ``irreps`` from the angle tables."""

    def __init__(self, irreps: str, dtype: torch.dtype) -> None:
        self.irreps = o3.Irreps(irreps)
        sign = y_signs()
        mabs, partner, sg = [], [], []
        off = 0
        for mul, ir in self.irreps:
            for u in range(mul):
                for k in range(ir.dim):
                    m = k - ir.l
                    mabs.append(abs(m))
                    partner.append(off + u * ir.dim + ir.l - m)
                    sg.append(sign.get((ir.l, k), 0.0))
            off += mul * ir.dim
        self.mabs, self.partner = torch.tensor(mabs), torch.tensor(partner)
        self.sign = torch.tensor(sg, dtype=dtype)
        self.dq = [d[0].to(dtype) for d in wigner_D_chain(Q[None], LMAX)]

    @staticmethod
    def tables(vec: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """cos and sin of m a and m b, m = 0..LMAX: four ``(E, LMAX+1)`` tables."""
        n = vec.norm(dim=-1)
        u = vec / n.clamp_min(1e-30)[:, None]
        ux, uy, uz = u.unbind(-1)
        sb = torch.sqrt(ux * ux + uz * uz)
        ok = sb > 1e-7
        ca = torch.where(ok, uz / sb.clamp_min(1e-30), torch.ones_like(sb))
        sa = torch.where(ok, ux / sb.clamp_min(1e-30), torch.zeros_like(sb))
        cb = torch.where(n > 1e-8, uy, torch.ones_like(uy))   # a self-loop: the identity

        def powers(c, s):
            cs, ss = [torch.ones_like(c)], [torch.zeros_like(c)]
            for _ in range(LMAX):
                cs, ss = cs + [cs[-1] * c - ss[-1] * s], ss + [ss[-1] * c + cs[-1] * s]
            return torch.stack(cs, -1), torch.stack(ss, -1)

        return (*powers(ca, sa), *powers(cb, sb))

    def _y(self, x, cos, sin, inverse):
        s = sin.index_select(1, self.mabs) * (-self.sign if inverse else self.sign)
        return x * cos.index_select(1, self.mabs) + x.index_select(1, self.partner) * s

    def _q(self, x, transpose):
        e, out = x.shape[0], []
        for (mul, ir), xs in zip(self.irreps, x.split([m * i.dim for m, i in self.irreps], 1),
                                 strict=True):
            if ir.l > 0:
                d = self.dq[ir.l].T if transpose else self.dq[ir.l]
                xs = (xs.reshape(e * mul, ir.dim) @ d).reshape(e, mul * ir.dim)
            out.append(xs)
        return torch.cat(out, 1)

    def to_frame(self, x, tab):
        ca, sa, cb, sb = tab
        return self._q(self._y(self._q(self._y(x, ca, sa, False), False), cb, sb, False), True)

    def from_frame(self, x, tab):
        ca, sa, cb, sb = tab
        return self._y(self._q(self._y(self._q(x, False), cb, sb, True), True), ca, sa, True)


def cpu_ms(fn, reps: int = 20) -> float:
    fn()
    t0 = time.process_time()
    for _ in range(reps):
        fn()
    return (time.process_time() - t0) / reps * 1e3


def compare(irreps: str, vec: torch.Tensor, g: torch.Generator, edges: int) -> None:
    """Check the angle rotation against the Wigner one, then time both (printed)."""
    rot = AngleRotation(irreps, torch.float64)
    tab = rot.tables(vec)
    a = torch.atan2(tab[1][:, 1], tab[0][:, 1])
    b = torch.atan2(tab[3][:, 1], tab[2][:, 1])
    r = torch.stack([ry(float(x)) @ Q @ ry(float(y)) @ Q.T for x, y in zip(a, b, strict=True)])
    x = torch.randn(edges, rot.irreps.dim, dtype=torch.float64, generator=g)
    ref = rotate(x, rot.irreps, wigner_D_chain(r, LMAX), to_frame=True)
    err = (rot.to_frame(x, tab) - ref).abs().max().item()
    back = (rot.from_frame(rot.to_frame(x, tab), tab) - x).abs().max().item()
    assert err < 1e-12 and back < 1e-12, (err, back)
    rot32, v32, x32 = AngleRotation(irreps, torch.float32), vec.float(), x.float()
    t32 = rot32.tables(v32)
    wig = wigner_D_chain(edge_rotations(v32), LMAX)
    with torch.no_grad():
        t_w = cpu_ms(lambda: rotate(rotate(x32, rot.irreps, wig, True), rot.irreps, wig,
                                    False))
        t_a = cpu_ms(lambda: rot32.from_frame(rot32.to_frame(x32, t32), t32))
        tab_w = cpu_ms(lambda: wigner_D_chain(edge_rotations(v32), LMAX))
        tab_a = cpu_ms(lambda: rot32.tables(v32))
    print(f"{irreps} ({edges} edges, float64 error {err:.1e}): into the frame and back "
          f"{t_w:.2f} CPU ms (Wigner) vs {t_a:.2f} (angles); per-edge tables "
          f"{tab_w:.2f} vs {tab_a:.2f}")



def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--edges", type=int, default=4096)
    args = p.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    vec = torch.randn(args.edges, 3, dtype=torch.float64, generator=g)
    vec[0] = 0.0                                          # a self-loop
    vec[1] = torch.tensor([0.0, -2.0, 0.0], dtype=torch.float64)   # along -y
    for irreps in IRREPS:
        compare(irreps, vec, g, args.edges)

if __name__ == "__main__":
    main()
