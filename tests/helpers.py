"""Small VOC-layout datasets made by the tests themselves."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from wsss.maps import save_label_png


def make_voc_layout(root: Path, masks: dict[str, np.ndarray], split: str = "train", classes: list[str] | None = None,
                    images: dict[str, np.ndarray] | None = None, mask_dir: str = "SegmentationClass",
                    seed: int = 0) -> Path:
    """Write JPEGImages/, <mask_dir>/, ImageSets/Segmentation/<split>.txt (and classes.txt if given)."""
    rng = np.random.default_rng(seed)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets/Segmentation").mkdir(parents=True, exist_ok=True)
    for id_, mask in masks.items():
        img = images[id_] if images and id_ in images else (
            rng.integers(0, 60, (*mask.shape, 3)) + (mask[..., None] % 255) * 37 % 190).astype(np.uint8)
        Image.fromarray(img).save(root / "JPEGImages" / f"{id_}.jpg", quality=95)
        save_label_png(root / mask_dir / f"{id_}.png", mask)
    split_file = root / "ImageSets/Segmentation" / f"{split}.txt"
    split_file.write_text("".join(f"{i}\n" for i in masks))
    if classes:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


def blob_mask(h: int, w: int, objects: list[tuple[int, int, int, int, int]]) -> np.ndarray:
    """A mask with rectangles (label, y0, x0, y1, x1) and a 1-px ignore border around each."""
    m = np.zeros((h, w), np.uint8)
    for lab, y0, x0, y1, x1 in objects:
        m[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1] = 255
        m[y0:y1, x0:x1] = lab
    return m


def link_stage_dirs(work_dir: Path, shared_work: Path, stages: tuple[str, ...]) -> None:
    """Make ``work_dir`` and link its input stage folders ``stages`` to the finished ones under ``shared_work``
    (a second run of one stage with other options, without recomputing its inputs)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        if not (work_dir / stage).exists():
            (work_dir / stage).symlink_to(shared_work / stage)


def pair_indices(h: int, w: int, offsets: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All in-grid pairs as flat indices: ``src``, ``dst`` (into ``h*w``) and ``pos`` (into the flattened
    ``(n_off, h, w)`` affinity tensor), int64, offset-major order. The reference pair list: the random walk built
    its matrix from it until 2026-12-07 (tests/wsss/test_random_walk.py compares the two constructions)."""
    ys, xs = np.mgrid[0:h, 0:w]
    flat = ys * w + xs
    src, dst, pos = [], [], []
    for k, (dy, dx) in enumerate(offsets):
        valid = (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)
        s = flat[valid]
        src.append(s)
        dst.append(s + dy * w + dx)
        pos.append(s + k * h * w)
    cat = (lambda a: np.concatenate(a).astype(np.int64)) if offsets else (lambda a: np.zeros(0, np.int64))
    return cat(src), cat(dst), cat(pos)


def transition_by_sorting(aff, offsets, beta):
    """The random walk's former transition matrix (until 2026-12-07): the pair list as COO, coalesced (sorted)
    twice, then CSR; ``wsss.random_walk.transition_matrix`` must equal it bit for bit."""
    import torch

    n = aff.shape[1] * aff.shape[2]
    src, dst, pos = (torch.from_numpy(a) for a in pair_indices(aff.shape[1], aff.shape[2], offsets))
    vals = aff.reshape(-1)[pos].float().clamp(min=0) ** beta
    diag = torch.arange(n)
    a = torch.sparse_coo_tensor(torch.stack([torch.cat([src, dst, diag]), torch.cat([dst, src, diag])]),
                                torch.cat([vals, vals, torch.ones(n)]), (n, n)).coalesce()
    idx, v = a.indices(), a.values()
    deg = torch.zeros(n).index_add_(0, idx[0], v)
    return torch.sparse_coo_tensor(idx, v / deg[idx[0]], a.shape).coalesce().to_sparse_csr()
