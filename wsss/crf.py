"""Dense CRF (pydensecrf ``DenseCRF2D``) in the two modes the WSSS pipeline uses.

- :func:`crf_labels` (label unary, IRN's ``crf_inference_label``): a hard label map becomes a unary that trusts
  each pixel's label with probability ``gt_prob``; used to clean confident seed regions (cam_to_ir_label).
  :func:`crf_labels_many` refines several label maps of one image on one set of pairwise kernels.
- :func:`crf_probs` (softmax unary, PSA / DeepLab post-processing): class probabilities become the unary
  ``-log(max(p, 1e-5))``; returns refined probabilities.

Pairwise terms: ``gaussian=(sxy, compat)`` is the smoothness kernel, ``bilateral=(sxy, srgb, compat)`` the
appearance kernel on the RGB image. :data:`PRESETS` holds the published settings (docs/METHOD.md, section 5);
``crf_refine(image, x, 'deeplab')`` applies one by name.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_labels, unary_from_softmax

from wsss.maps import label_values

UNSURE = 255

PRESETS: dict[str, dict[str, Any]] = {
    # IRN cam_to_ir_label: label unary, 70% trust in the seed label.
    "irn_label": {"mode": "labels", "gt_prob": 0.7, "gaussian": (3, 3), "bilateral": (50, 5, 10), "iters": 10},
    # PSA family (AffinityNet): softmax unary on normalised CAM scores.
    "psa_softmax": {"mode": "probs", "gaussian": (3, 3), "bilateral": (80, 13, 10), "iters": 10},
    # DeepLab test-time post-processing of the segmentation network's softmax.
    "deeplab": {"mode": "probs", "gaussian": (1, 3), "bilateral": (67, 3, 4), "iters": 10},
}


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"CRF image must be an HxWx3 uint8 RGB array, got shape {image.shape} dtype {image.dtype}")
    # pydensecrf reads the raw buffer: a strided view (crop, flip, channel swap) must be made C-contiguous
    # C-contiguous AND writable: pydensecrf refuses read-only buffers (e.g. np.asarray of a PIL image)
    return np.require(image, requirements=("C", "W"))


def _make_crf(image: np.ndarray, n_labels: int, unary: np.ndarray | None, gaussian: tuple[float, float],
              bilateral: tuple[float, float, float]) -> dcrf.DenseCRF2D:
    """A DenseCRF2D with both pairwise kernels; ``unary=None`` leaves the unary to set before each inference."""
    h, w = image.shape[:2]
    d = dcrf.DenseCRF2D(w, h, n_labels)
    if unary is not None:
        d.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    g_sxy, g_compat = gaussian
    b_sxy, b_srgb, b_compat = bilateral
    d.addPairwiseGaussian(sxy=g_sxy, compat=g_compat)
    d.addPairwiseBilateral(sxy=b_sxy, srgb=b_srgb, rgbim=image, compat=b_compat)
    return d


def crf_labels(
    image: np.ndarray,
    labels: np.ndarray,
    n_labels: int,
    gt_prob: float = 0.7,
    gaussian: tuple[float, float] = (3, 3),
    bilateral: tuple[float, float, float] = (50, 5, 10),
    iters: int = 10,
) -> np.ndarray:
    """Refine a hard label map (values in ``[0, n_labels)``) with a dense CRF; returns HxW uint8 labels.

    ``labels`` are indices into the image's own label set (IRN passes the index into ``[bg] + present classes``).
    Pixels equal to 255 are *unsure*: they get a uniform unary and take whatever label the pairwise terms
    give them (IRN never passes 255; this makes an ignore-marked map safe instead of an IndexError).
    For valid pixels this equals ``unary_from_labels(labels, n_labels, gt_prob, zero_unsure=False)``.
    """
    return crf_labels_many(image, [labels], n_labels, gt_prob, gaussian, bilateral, iters)[0]


def crf_labels_many(
    image: np.ndarray,
    label_maps: Sequence[np.ndarray],
    n_labels: int,
    gt_prob: float = 0.7,
    gaussian: tuple[float, float] = (3, 3),
    bilateral: tuple[float, float, float] = (50, 5, 10),
    iters: int = 10,
) -> list[np.ndarray]:
    """:func:`crf_labels` of several label maps of one image: the pairwise kernels (the permutohedral lattices)
    are built once and each map's unary is inferred on them. Each result equals ``crf_labels`` of that map,
    byte for byte (pydensecrf's inference starts from the unary alone; the kernels do not depend on it)."""
    image = _check_image(image)
    if not 1 <= n_labels < UNSURE:
        raise ValueError(f"n_labels must be in [1, {UNSURE - 1}], got {n_labels}")
    if not 0 < gt_prob < 1:
        raise ValueError(f"gt_prob must be in (0, 1), got {gt_prob}")
    unaries = []
    for labels in label_maps:
        labels = np.asarray(labels)
        if labels.shape != image.shape[:2]:
            raise ValueError(f"label map shape {labels.shape} != image size {image.shape[:2]} (image {image.shape})")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"label map must be integer, got dtype {labels.dtype}")
        bad = (labels != UNSURE) & ((labels < 0) | (labels >= n_labels))
        if bad.any():
            raise ValueError(f"label map has values {np.unique(labels[bad])[:5].tolist()} outside [0, {n_labels}) "
                             f"and != {UNSURE} (unsure)")
        if n_labels > 1:
            # shift by one so that 0 means unsure and use pydensecrf's own uniform-unary handling for it
            shifted = np.where(labels == UNSURE, 0, labels.astype(np.int64) + 1)
            unaries.append(unary_from_labels(shifted, n_labels, gt_prob=gt_prob, zero_unsure=True))
    if n_labels == 1:  # one label: nothing to decide, every pixel (unsure ones included) is label 0
        return [np.zeros(image.shape[:2], dtype=np.uint8) for _ in label_maps]
    if not unaries:
        return []
    d = _make_crf(image, n_labels, None, gaussian, bilateral)
    out = []
    for unary in unaries:
        d.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
        q = np.array(d.inference(int(iters)), dtype=np.float32).reshape(n_labels, *image.shape[:2])
        out.append(np.argmax(q, axis=0).astype(np.uint8))
    return out


def crf_probs(
    image: np.ndarray,
    probs: np.ndarray,
    gaussian: tuple[float, float] = (3, 3),
    bilateral: tuple[float, float, float] = (80, 13, 10),
    iters: int = 10,
) -> np.ndarray:
    """Refine class probabilities ``probs`` (K, H, W) with a dense CRF; returns (K, H, W) float32 marginals.

    ``probs`` need not sum to one per pixel (PSA feeds normalised CAM scores), but must be finite and >= 0;
    values are clipped at 1e-5 before the log, as in ``unary_from_softmax``.
    """
    image = _check_image(image)
    probs = np.asarray(probs)
    if probs.ndim != 3 or probs.shape[1:] != image.shape[:2]:
        raise ValueError(f"probs must be (K, H, W) with (H, W) = image size {image.shape[:2]}, got shape {probs.shape}")
    if not np.issubdtype(probs.dtype, np.floating):
        raise ValueError(f"probs must be a float array, got dtype {probs.dtype}")
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise ValueError("probs must be finite and non-negative")
    k, h, w = probs.shape
    unary = unary_from_softmax(probs.astype(np.float32, copy=False))
    d = _make_crf(image, k, unary, gaussian, bilateral)
    return np.array(d.inference(int(iters)), dtype=np.float32).reshape(k, h, w)


def crf_refine(image: np.ndarray, x: np.ndarray, preset: str, **overrides: Any) -> np.ndarray:
    """Apply a named :data:`PRESETS` entry: labels for 'labels' presets (needs ``n_labels=``), probs otherwise."""
    if preset not in PRESETS:
        raise KeyError(f"unknown CRF preset {preset!r}; choose one of {sorted(PRESETS)}")
    kw = {k: v for k, v in PRESETS[preset].items() if k != "mode"}
    kw.update(overrides)
    if PRESETS[preset]["mode"] == "labels":
        if "n_labels" not in kw:
            raise TypeError(f"preset {preset!r} refines a label map: pass n_labels=")
        return crf_labels(image, x, **kw)
    return crf_probs(image, x, **kw)


# ------------------------------------------------------------ seed maps -> pseudo-labels (crf / ir_labels stages)
def crf_params(scfg: Any, default_bilateral: tuple) -> dict[str, Any]:
    """The CRF kernel settings of a config section (``gaussian``, ``bilateral``, ``iters``)."""
    return dict(gaussian=tuple(scfg.get("gaussian", (3, 3))), bilateral=tuple(scfg.get("bilateral", default_bilateral)),
                iters=int(scfg.get("iters", 10)))


def background_scores(background: float | np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The background channel (1, H, W): a constant threshold, or a learned HxW background map (BAO)."""
    bg = np.asarray(background, np.float32)
    if bg.ndim == 0:
        return np.full((1, *shape), float(bg), np.float32)
    if bg.shape != tuple(shape):
        raise ValueError(f"background map of shape {bg.shape} does not match the seed maps {tuple(shape)}")
    return bg[None]


def seed_label_crf(image: np.ndarray, maps: np.ndarray, keys: np.ndarray, threshold: float | np.ndarray,
                   params: dict) -> np.ndarray:
    """IRN's label CRF: argmax over [background, maps] indexes [bg] + keys, CRF'd, mapped to labels key + 1.
    ``threshold``: a constant background score (IRN) or an HxW learned background map (BAO)."""
    return seed_label_crfs(image, maps, keys, (threshold,), params)[0]


def seed_label_crfs(image: np.ndarray, maps: np.ndarray, keys: np.ndarray,
                    backgrounds: Sequence[float | np.ndarray], params: dict) -> list[np.ndarray]:
    """:func:`seed_label_crf` for several backgrounds, on one set of pairwise kernels (same results)."""
    lut = label_values(keys)
    if len(keys) == 0:
        return [np.zeros(image.shape[:2], np.uint8) for _ in backgrounds]
    idx = [np.concatenate([background_scores(b, maps.shape[1:]), maps]).argmax(0) for b in backgrounds]
    return [lut[lab] for lab in crf_labels_many(image, idx, n_labels=len(lut), **params)]


def label_map_crf(image: np.ndarray, labels: np.ndarray, keys: np.ndarray, params: dict) -> np.ndarray:
    """A finished pseudo-label map (0 = background, ``key + 1`` = class ``key``, 255 = ignore) refined by the label
    CRF over the image's own labels, ``[background] + keys``; ignore pixels stay ignore. ``params``: ``gt_prob``,
    ``gaussian``, ``bilateral``, ``iters`` (:func:`crf_labels`)."""
    lut = label_values(keys)
    index = np.full(256, UNSURE, np.uint8)
    index[lut] = np.arange(len(lut), dtype=np.uint8)
    idx = index[np.asarray(labels, np.uint8)]
    stray = (idx == UNSURE) & (labels != UNSURE)
    if stray.any():
        raise ValueError(f"label map has labels {np.unique(labels[stray])[:5].tolist()} that are not the image's "
                         f"classes (background + {lut[1:].tolist()})")
    refined = lut[crf_labels(image, idx, len(lut), **params)]
    return np.where(labels == UNSURE, UNSURE, refined).astype(np.uint8)


def seed_prob_crf(image: np.ndarray, maps: np.ndarray, keys: np.ndarray, bg: str, threshold: float | np.ndarray,
                  bg_power: float, params: dict) -> np.ndarray:
    """Softmax-unary CRF on [background, maps] normalised per pixel; argmax mapped to labels."""
    lut = label_values(keys)
    if len(keys) == 0:
        return np.zeros(image.shape[:2], np.uint8)
    if bg in ("threshold", "learned"):  # learned: ``threshold`` is the HxW background map
        bgs = background_scores(threshold, maps.shape[1:])
    elif bg == "power":
        bgs = (1.0 - maps.max(0, keepdims=True)) ** bg_power
    else:
        raise ValueError(f"crf.bg must be 'threshold', 'learned' or 'power', got {bg!r}")
    scores = np.concatenate([bgs, maps]).astype(np.float32)
    probs = scores / np.maximum(scores.sum(0, keepdims=True), 1e-5)
    return lut[crf_probs(image, probs, **params).argmax(0)]
