"""CROWN's rows through a network's first convolution, cropped to where they are not zero.

The neurons after a second convolution see a small window of the first one's output (a 4x4
kernel of stride 2: 4x4 of 14x14 on MNIST), and a 10x10 window of the input. Dense coefficients
(``benchbench.verify.crown``) carry every row over the whole map, so the first ReLU's
relaxation and the first convolution's adjoint of those rows were most of CROWN's time on a
CNN. Here a block of rows is cut to the bounding box of its non-zero coefficients (computed
from the second chain's dense matrix: exactly zero outside it, so nothing is lost), relaxed
there, pulled back through the first chain on the window alone and bounded over the input
window the box reaches. auto_LiRPA's patches mode does the same for every convolution; this
does it for the first one, the only one whose pulled-back rows end at the input.

Applies where the first chain is one ``Conv`` with any ``Scale`` ops (input normalisation,
batch norm in eval mode) around it, the second chain has a dense matrix and ends in no linear
layer; ``crown._tighten`` falls back to the dense rows elsewhere.
"""

from __future__ import annotations

import torch

from benchbench.verify.ops import Conv, Linear, Scale

MAX_AREA = 0.5  # crop only where a block's box covers at most this share of the map


def croppable(net, i: int) -> bool:
    """Whether layer ``i``'s rows may take the cropped path (``i == 1``: through chain 0)."""
    from benchbench.verify.crown import _dense

    if i != 1 or len(net.shapes[0]) != 3:
        return False
    chain = net.chains[0]
    if sum(isinstance(op, Conv) for op in chain) != 1 or \
            not all(isinstance(op, Conv | Scale) for op in chain):
        return False
    # layer 1's rows come from chain 1's dense matrix (``crown._select``), not a last Linear
    return bool(net.chains[1]) and not isinstance(net.chains[1][-1], Linear) \
        and _dense(net, 1) is not None


def row_boxes(net) -> torch.Tensor:
    """``[n_out, 4]`` (y0, y1, x0, x1): the box of layer 1's row ``n`` over chain 0's output
    where its dense coefficients are not zero (an all-zero row: an empty box at 0)."""
    key = ("boxes", 1)
    if key not in net.dense:
        W, _ = net.dense[1]
        C, H, Wd = net.shapes[0]
        nz = (W != 0).reshape(-1, C, H, Wd).any(1)  # [n_out, H, W]
        rows, cols = nz.any(2), nz.any(1)  # [n_out, H], [n_out, W]

        def span(m, size):
            ar = torch.arange(size)
            first = torch.where(m, ar, size).amin(1)
            last = torch.where(m, ar + 1, 0).amax(1)
            return torch.minimum(first, last), last

        y0, y1 = span(rows, H)
        x0, x1 = span(cols, Wd)
        net.dense[key] = torch.stack([y0, y1, x0, x1], 1)
    return net.dense[key]


def order_rows(net, idx, valid):
    """``idx`` and ``valid`` with each example's valid rows in raster order of their boxes'
    corners (invalid rows last), so that consecutive rows share a small box."""
    boxes = row_boxes(net)[idx]  # [B, k, 4]
    W = net.shapes[0][2]
    key = boxes[..., 0] * (W + 1) + boxes[..., 2]
    key = torch.where(valid, key, torch.iinfo(key.dtype).max)
    order = torch.sort(key, dim=1, stable=True).indices
    return idx.gather(1, order), valid.gather(1, order)


def blocks(net, idx, valid, most: int) -> list[tuple[int, int]]:
    """``(start, stop)`` column ranges of ``order_rows``' output: one per band of rows whose
    boxes start on the same row of the map (the rows of one row of layer 1's positions), at
    most ``most`` rows each."""
    boxes = row_boxes(net)[idx]  # [B, k, 4]
    band = torch.where(valid, boxes[..., 0], -1).amax(0).tolist()  # [k]
    out, start = [], 0
    for j in range(1, len(band) + 1):
        if j == len(band) or band[j] != band[start] or j - start == most:
            out.append((start, j))
            start = j
    return out


def block_box(net, idx, valid) -> tuple[int, int, int, int] | None:
    """The union of the valid rows' boxes, or None where it covers more than ``MAX_AREA``."""
    boxes = row_boxes(net)[idx[valid]]
    if not len(boxes):
        return None
    y0, x0 = int(boxes[:, 0].min()), int(boxes[:, 2].min())
    y1, x1 = int(boxes[:, 1].max()), int(boxes[:, 3].max())
    _, H, W = net.shapes[0]
    if y1 <= y0 or x1 <= x0 or (y1 - y0) * (x1 - x0) > MAX_AREA * H * W:
        return None
    return y0, y1, x0, x1


def select_window(net, idx, box):
    """Layer 1's one-hot rows ``idx [B, k]`` pulled back to chain 0's output, on ``box``:
    ``(A [B, k, C, h, w], bias [B, k])``."""
    W, b = net.dense[1]
    C, H, Wd = net.shapes[0]
    y0, y1, x0, x1 = box
    A = W.view(-1, C, H, Wd)[:, :, y0:y1, x0:x1][idx]
    return A, b[idx]


def _window_conv_adjoint(conv: Conv, A, box, in_shape):
    """``conv``'s adjoint of ``A [B, k, C_out, h, w]`` (its output on ``box``): the input
    window it reaches, clipped to the input (padding is constant zero: no variable), as
    ``(A_in [B, k, C_in, h', w'], in_box)``."""
    B, k, c_out, h, w = A.shape
    (sy, sx), (py, px) = conv.kw["stride"], conv.kw["padding"]
    (dy, dx) = conv.kw["dilation"]
    kh, kw = conv.weight.shape[2:]
    span_y, span_x = (h - 1) * sy + (kh - 1) * dy + 1, (w - 1) * sx + (kw - 1) * dx + 1
    out = torch.nn.grad.conv2d_input(
        (B * k, in_shape[0], span_y, span_x), conv.weight, A.reshape(B * k, c_out, h, w),
        stride=(sy, sx), padding=0, dilation=(dy, dx), groups=conv.kw["groups"])
    iy0, ix0 = box[0] * sy - py, box[2] * sx - px  # input coordinates of out[..., 0, 0]
    ly, lx = max(0, -iy0), max(0, -ix0)
    hy = min(span_y, in_shape[1] - iy0)
    hx = min(span_x, in_shape[2] - ix0)
    out = out[:, :, ly:hy, lx:hx].reshape(B, k, in_shape[0], hy - ly, hx - lx)
    return out, (iy0 + ly, iy0 + hy, ix0 + lx, ix0 + hx)


def _window(t, box):
    y0, y1, x0, x1 = box
    return t[..., y0:y1, x0:x1]


def pull_back_window(net, chain_out_box, A, bias, dom):
    """Lower bounds of the rows ``A [B, r, C, h, w]`` (on chain 0's output, ``box``) plus
    ``bias``: through chain 0 on the window, then over the input window (``Domain``)."""
    box = chain_out_box
    for op in reversed(net.chains[0]):
        if isinstance(op, Scale):
            scale, shift = _window(op.scale, box), _window(op.shift, box)
            bias = bias + (A * shift).flatten(2).sum(-1)
            A = A * scale
            continue
        if op.bias is not None:
            bias = bias + A.sum(dim=(-1, -2)).matmul(op.bias)
        A, box = _window_conv_adjoint(op, A, box, op.in_shape)
    return dom.concretize_window(A, bias, box)


def relax_window(relax, box):
    """The first ReLU's ``(lower_d, upper_d, upper_b)`` on ``box``."""
    return tuple(_window(t, box) for t in relax)
