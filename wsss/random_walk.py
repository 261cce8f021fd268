"""Random walk on a radius-bounded affinity graph (IRN's ``propagate_to_edge`` / PSA's ``trans_mat``).

The transition matrix ``T = D^-1 A`` with ``A = aff ** beta`` made symmetric and given unit self-loops
(PSA / IRN), ``D`` its row sums. Seed maps ``x`` (K, h, w) are propagated ``2 ** exp_times`` steps:
``x <- T x``, each output cell becoming an affinity-weighted average of its neighbourhood.

IRN builds ``A`` as a dense (hw)x(hw) matrix and squares it ``exp_times`` times: O((hw)^2) memory and
O((hw)^3) time (users report OOM on 11 GB GPUs). Here ``A`` is a sparse CSR matrix with only the
radius-bounded pairs (~2 * n_off + 1 non-zeros per row) and the walk is ``2 ** exp_times`` sparse
mat-vecs on the K columns at once: O(hw * n_off) memory, O(2^exp_times * hw * n_off * K) time. Repeated
*squaring* of the sparse matrix is not used: ``T^(2^j)`` has radius ``2^j * r`` and fills in to dense.
:func:`random_walk_dense` is IRN's dense algorithm, kept as the reference for tests and the benchmark.

The walk spreads seed mass ~``radius * sqrt(steps)`` cells, so its length must follow the grid size
(``random_walk.exp_times='auto'``); the measurements behind that are in docs/DEVLOG.md.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .affinity import pair_valid_mask
from .maps import label_values


def _affinity_csr(aff: Tensor, offsets: Sequence[tuple[int, int]], beta: float) -> tuple[Tensor, Tensor, Tensor]:
    """``A`` of :func:`affinity_matrix` as CSR arrays (crow, col, values), built in row-major, column-sorted order.

    Cell ``r`` pairs with ``r - d_k`` and ``r + d_k`` for each half-plane offset's flat step ``d_k = dy*w + dx``;
    among in-grid partners the flat order is the offsets' (lexicographic) order, so a row's candidates
    ``[r - d_K .. r - d_1, r, r + d_1 .. r + d_K]`` are already sorted: keeping the in-grid ones row by row is the
    coalesced order, without sorting ``2 * n * n_off`` indices (on a 3760 px photo's grid: 30.3 s -> 7.8 s, peak
    memory 6.6 -> 4.2 GB; bench/README.md). ``aff ** beta`` is computed once over the pairs in pair order
    (offset-major, as the former pair list held them), so every value has the same bits as before."""
    n_off, h, w = aff.shape
    if n_off != len(offsets):
        raise ValueError(f"affinity tensor has {n_off} offsets but {len(offsets)} were given")
    n, dev = h * w, aff.device
    cells = torch.arange(n, device=dev)
    forward = list(pair_valid_mask(h, w, offsets, dev).reshape(n_off, n))  # pair (r, r + d_k) in the grid
    pair_vals = torch.cat([aff[k].reshape(-1)[forward[k]] for k in range(n_off)] or [aff.new_zeros(0)])
    pair_vals = pair_vals.float().clamp(min=0) ** beta
    by_source = []  # (n,) per offset: the pair value at its source cell r (0 where no pair)
    for k, part in enumerate(torch.split(pair_vals, [int(f.sum()) for f in forward])):
        full = torch.zeros(n, device=dev, dtype=pair_vals.dtype)
        full[forward[k]] = part
        by_source.append(full)
    cols, values, keep = [], [], []
    steps = [dy * w + dx for dy, dx in offsets]
    for k in reversed(range(n_off)):  # partners r - d_k, the largest step first
        step = steps[k]
        cols.append(cells - step)
        values.append(by_source[k].roll(step))  # [r] = the value at source r - d_k
        keep.append(forward[k].roll(step) & (cells >= step))  # source r - d_k in the grid, its pair (r - d_k, r)
    cols.append(cells)
    values.append(torch.ones(n, device=dev, dtype=pair_vals.dtype))
    keep.append(torch.ones(n, device=dev, dtype=torch.bool))
    for k in range(n_off):  # partners r + d_k
        cols.append(cells + steps[k])
        values.append(by_source[k])
        keep.append(forward[k])
    kept = torch.stack(keep, 1)  # (n, 2 * n_off + 1): each row's candidates in column order
    crow = torch.zeros(n + 1, device=dev, dtype=torch.int64)
    crow[1:] = kept.sum(1).cumsum(0)
    return crow, torch.stack(cols, 1)[kept], torch.stack(values, 1)[kept]


def affinity_matrix(aff: Tensor, offsets: Sequence[tuple[int, int]], beta: float = 10.0) -> Tensor:
    """Symmetric sparse ``A`` (COO, coalesced) of ``aff ** beta`` for aff (n_off, h, w), with unit diagonal."""
    crow, col, value = _affinity_csr(aff, offsets, beta)
    n = crow.numel() - 1
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, value, (n, n), check_invariants=False).to_sparse_coo().coalesce()


def transition_matrix(aff: Tensor, offsets: Sequence[tuple[int, int]], beta: float = 10.0) -> Tensor:
    """Row-normalised sparse transition matrix ``D^-1 A`` in CSR layout (n, n)."""
    crow, col, value = _affinity_csr(aff, offsets, beta)
    n = crow.numel() - 1
    rows = torch.repeat_interleave(torch.arange(n, device=value.device), crow.diff())
    deg = torch.zeros(n, device=value.device, dtype=value.dtype).index_add_(0, rows, value)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, value / deg[rows], (n, n), check_invariants=False)


def random_walk(maps: Tensor, aff: Tensor, offsets: Sequence[tuple[int, int]], beta: float = 10.0,
                exp_times: int = 8) -> Tensor:
    """Propagate maps (K, h, w) ``2 ** exp_times`` steps over the sparse graph; returns (K, h, w) float32."""
    k, h, w = maps.shape
    if aff.shape[-2:] != (h, w):
        raise ValueError(f"seed maps {tuple(maps.shape)} and affinities {tuple(aff.shape)} are on different grids")
    if k == 0:
        return maps.float()
    t = transition_matrix(aff, offsets, beta)
    x = maps.reshape(k, h * w).t().contiguous().float()  # (n, K): all channels in one SpMM per step
    for _ in range(2 ** int(exp_times)):
        x = t @ x
    return x.t().reshape(k, h, w)


def random_walk_dense(maps: Tensor, aff: Tensor, offsets: Sequence[tuple[int, int]], beta: float = 10.0,
                      exp_times: int = 8) -> Tensor:
    """IRN's dense reference: (hw)x(hw) matrix squared ``exp_times`` times. Tests and benchmarks only."""
    k, h, w = maps.shape
    a = affinity_matrix(aff, offsets, beta).to_dense()
    t = a / a.sum(1, keepdim=True)
    for _ in range(int(exp_times)):
        t = t @ t
    return (t @ maps.reshape(k, h * w).t().float()).t().reshape(k, h, w)


BG_MODES = ("threshold", "power", "learned")


def to_grid(x: Tensor, grid: tuple[int, int], stride: int | None) -> Tensor:
    """(1, K, H, W) -> (1, K, *grid): average-pooled by ``stride`` (full resolution) or bilinearly resized."""
    if stride is not None and stride > 1:
        x = F.avg_pool2d(x, stride, stride, ceil_mode=True)
    if tuple(x.shape[-2:]) != tuple(grid):
        x = F.interpolate(x, size=grid, mode="bilinear", align_corners=False)
    return x


def seed_scores(seeds: np.ndarray, grid: tuple[int, int], stride: int | None = None, bg_mode: str = "threshold",
                bg_power: float = 1.0, seed_power: float = 1.0, background: np.ndarray | None = None,
                background_stride: int | None = None) -> np.ndarray:
    """Seed maps (K, H', W') in [0, 1] on the walk grid.

    Full-resolution maps (``stride`` given) are average-pooled by ``stride`` (partial border cells average
    their pixels); maps on another grid are bilinearly resized to it (the seeds' ``stride4`` maps are already on it).
    ``seed_power`` raises the maps to a power first (BAS uses 1.5). With ``bg_mode='power'`` a background
    channel ``(1 - max_k s_k) ** bg_power`` (PSA) is prepended and walked with the classes; in
    ``'threshold'`` mode (IRN) only the class maps walk and the constant background is added after.
    ``'learned'``: the learned background map ``background`` (full resolution, pooled by ``background_stride``)
    is the first channel and walks with the classes (no threshold, no power).
    """
    if bg_mode not in BG_MODES:
        raise ValueError(f"random_walk.bg_mode must be one of {BG_MODES}, got {bg_mode!r}")
    x = to_grid(torch.from_numpy(np.ascontiguousarray(seeds, np.float32))[None], grid, stride)
    x = x[0].clamp(0, 1) ** seed_power
    if bg_mode == "learned":
        if background is None:
            raise ValueError("bg_mode='learned' needs the learned background map (background=)")
        b = to_grid(torch.from_numpy(np.ascontiguousarray(background, np.float32))[None, None], grid,
                    background_stride)
        x = torch.cat([b[0].clamp(0, 1), x])
    elif bg_mode == "power":
        top = x.max(0, keepdim=True).values if len(x) else torch.zeros(1, *grid)
        x = torch.cat([(1 - top) ** bg_power, x])
    return x.numpy()


CLASS_NORMS = ("global", "per_class")


def _max_normalised(maps: Tensor, class_norm: str) -> Tensor:
    """Class maps (K, H, W) divided by their global max ('global') or each by its own max ('per_class')."""
    if not len(maps):
        return maps
    if class_norm == "global":
        return maps / maps.max().clamp(min=1e-5)
    return maps / maps.flatten(1).max(1).values.clamp(min=1e-5)[:, None, None]


def scores_to_labels(walked: np.ndarray, keys: np.ndarray, size: tuple[int, int], stride: int,
                     bg_mode: str = "threshold", bg_threshold: float = 0.25,
                     ignore_below: float | None = None, out_size: tuple[int, int] | None = None,
                     class_norm: str = "global") -> np.ndarray:
    """Walked scores on the grid -> full-resolution uint8 label map (labels ``key + 1``, 0 = background).

    Upsampled by ``stride`` and cropped to ``size`` (IRN: cell i covers pixels [s*i, s*i + s)), the size of the
    image the walk ran on; then bilinearly resized to ``out_size`` when the walk ran on a scaled-down image.
    ``'threshold'`` (IRN): divide the classes by their max, prepend the constant ``bg_threshold``.
    ``'power'``: the walked background channel is the first one; channels are normalised per pixel.
    ``'learned'``: the walked learned background is the first channel, divided by its own max; the classes by
    their max; argmax: no threshold.
    ``class_norm`` (threshold and learned modes): ``'global'`` divides all class maps by their one global max
    (IRN), so a class that walked weakly beside a strong one can fall below the background everywhere;
    ``'per_class'`` divides each class map by its own max, as the seeds (CAMs) are before the walk.
    ``ignore_below``: pixels whose winning score is below it become 255 (keep low confidence as ignore).
    """
    if class_norm not in CLASS_NORMS:
        raise ValueError(f"random_walk.class_norm must be one of {CLASS_NORMS}, got {class_norm!r}")
    x = torch.from_numpy(np.ascontiguousarray(walked, np.float32))[None]
    gh, gw = x.shape[-2:]
    if gh * stride < size[0] or gw * stride < size[1]:
        raise ValueError(f"walk grid {gh}x{gw} at stride {stride} does not cover the image size {size}")
    x = F.interpolate(x, size=(gh * stride, gw * stride), mode="bilinear", align_corners=False)
    x = x[0, :, :size[0], :size[1]]
    if out_size is not None and tuple(out_size) != tuple(size):
        x = F.interpolate(x[None], size=tuple(out_size), mode="bilinear", align_corners=False)[0]
        size = tuple(out_size)
    if bg_mode == "threshold":
        x = torch.cat([torch.full((1, *size), float(bg_threshold)), _max_normalised(x, class_norm)])
    elif bg_mode == "learned":
        if len(x) < 1:
            raise ValueError("bg_mode='learned': the walked scores have no background channel")
        bg, fg = x[:1], x[1:]
        x = torch.cat([bg / bg.max().clamp(min=1e-5), _max_normalised(fg, class_norm)])
    else:
        x = x / x.sum(0, keepdim=True).clamp(min=1e-5)
    score, idx = x.max(0)
    lut = label_values(keys)
    labels = lut[idx.numpy()]
    if ignore_below is not None:
        labels[score.numpy() < ignore_below] = 255
    return labels
