"""Sparse random walk vs IRN's dense reference, and the label/seed helpers around it."""
import pipeline.compat  # noqa: F401, I001

import numpy as np
import pytest
import torch

from tests.helpers import transition_by_sorting
from wsss.affinity import pair_offsets
from wsss.random_walk import (affinity_matrix, random_walk, random_walk_dense, scores_to_labels, seed_scores,
                              transition_matrix)

torch.set_num_threads(1)


@pytest.mark.parametrize("radius,h,w,exp_times", [(5, 11, 8, 8), (3, 6, 13, 4), (10, 9, 9, 3)])
def test_sparse_walk_equals_dense_reference(radius, h, w, exp_times):
    g = torch.Generator().manual_seed(radius * 100 + h)
    offs = pair_offsets(radius)
    aff = torch.rand(len(offs), h, w, generator=g) ** 0.3
    maps = torch.rand(4, h, w, generator=g)
    sparse = random_walk(maps, aff, offs, beta=10, exp_times=exp_times)
    dense = random_walk_dense(maps, aff, offs, beta=10, exp_times=exp_times)
    assert sparse.shape == (4, h, w)
    torch.testing.assert_close(sparse, dense, rtol=1e-4, atol=1e-5)
    # the walk averages: values stay inside the input range, and they did move
    assert sparse.min() >= maps.min() - 1e-5 and sparse.max() <= maps.max() + 1e-5
    assert (sparse - maps).abs().max() > 1e-2


@pytest.mark.parametrize("radius,h,w", [(5, 11, 8), (3, 6, 13), (10, 9, 9), (5, 3, 4), (3, 1, 7), (3, 7, 1),
                                        (5, 40, 57)])
def test_transition_matrix_is_the_sorted_constructions_bit_for_bit(radius, h, w):
    """The stencil-order CSR (no sort) holds exactly the former coalesced matrix: same pattern, same float bits
    (the walk's labels stay byte-identical), grids narrower than the radius included."""
    offs = pair_offsets(radius)
    aff = torch.rand(len(offs), h, w, generator=torch.Generator().manual_seed(h * w)) ** 0.3
    new, old = transition_matrix(aff, offs, beta=10), transition_by_sorting(aff, offs, 10)
    assert torch.equal(new.crow_indices(), old.crow_indices()) and torch.equal(new.col_indices(), old.col_indices())
    assert torch.equal(new.values(), old.values())


def test_transition_matrix_is_symmetric_affinity_row_normalised():
    offs = pair_offsets(3)
    h, w = 4, 5
    aff = torch.rand(len(offs), h, w, generator=torch.Generator().manual_seed(1))
    a = affinity_matrix(aff, offs, beta=2).to_dense()
    torch.testing.assert_close(a, a.t())
    torch.testing.assert_close(torch.diagonal(a), torch.ones(h * w))
    # pair (0,0)-(0,1) is offset (0, 1) at cell (0, 0)
    k = offs.index((0, 1))
    assert a[0, 1].item() == pytest.approx(aff[k, 0, 0].item() ** 2)
    # an out-of-grid partner never appears: cell (0, w-1) with offset (0, 1) would wrap to row 1
    assert a[w - 1, w].item() == 0.0
    # radius 3: at most 1 + 2 * len(offs) non-zeros per row
    assert int((a > 0).sum(1).max()) <= 1 + 2 * len(offs)
    t = transition_matrix(aff, offs, beta=2).to_dense()
    torch.testing.assert_close(t.sum(1), torch.ones(h * w))


def test_walk_respects_a_boundary():
    """Two regions separated by zero affinity: a seed in the left region never leaks into the right one."""
    offs = pair_offsets(3)
    h, w = 6, 10
    region = torch.zeros(h, w, dtype=torch.long)
    region[:, 5:] = 1
    aff = torch.ones(len(offs), h, w)
    for k, (dy, dx) in enumerate(offs):
        for y in range(h):
            for x in range(w):
                y2, x2 = y + dy, x + dx
                if 0 <= y2 < h and 0 <= x2 < w and region[y, x] != region[y2, x2]:
                    aff[k, y, x] = 0.0
    maps = torch.zeros(1, h, w)
    maps[0, 2, 1] = 1.0
    out = random_walk(maps, aff, offs, beta=10, exp_times=6)[0]
    assert out[:, 5:].abs().max() == 0
    assert out[:, :5].min() > 0  # spread over the whole left region
    assert out[:, :5].std() < 0.01  # ... almost uniformly after 64 steps


def test_seed_scores_and_labels():
    keys = np.array([2, 0])
    high = np.zeros((2, 10, 14), np.float32)
    high[0, :, :7] = 0.9  # class 2 on the left
    high[1, :, 7:] = 0.6  # class 0 on the right
    grid = (3, 4)  # ceil(10/4), ceil(14/4)
    s = seed_scores(high, grid, stride=4)
    assert s.shape == (2, 3, 4) and s[0, 0, 0] == pytest.approx(0.9)
    assert s[0, 0, 1] == pytest.approx(0.9 * 3 / 4)  # columns 4..7, class 2 on 4..6
    # partial border cells average only their real pixels (rows 8-9, columns 12-13)
    assert s[1, 2, 3] == pytest.approx(0.6) and s[0, 2, 0] == pytest.approx(0.9)
    lab = scores_to_labels(s, keys, (10, 14), stride=4, bg_threshold=0.25)
    assert lab.shape == (10, 14) and lab.dtype == np.uint8
    assert (lab[:, :6] == 3).all() and (lab[:, 8:] == 1).all()
    # low confidence as ignore: normalised right side scores 0.6/0.9 < 0.7
    lab2 = scores_to_labels(s, keys, (10, 14), stride=4, bg_threshold=0.25, ignore_below=0.7)
    assert (lab2[:, :6] == 3).all() and (lab2[:, 9:] == 255).all()
    # power mode: the background channel is walked with the classes and comes first
    p = seed_scores(high, grid, stride=4, bg_mode="power", bg_power=1.0)
    assert p.shape == (3, 3, 4) and p[0, 0, 0] == pytest.approx(0.1, abs=1e-5)
    lab3 = scores_to_labels(p, keys, (10, 14), stride=4, bg_mode="power")
    assert (lab3[:, :6] == 3).all()
    with pytest.raises(ValueError, match="bg_mode"):
        seed_scores(high, grid, stride=4, bg_mode="nope")
    # a walk on a half-size image: the scores are resized to the full size before the argmax
    big = scores_to_labels(s, keys, (10, 14), stride=4, bg_threshold=0.25, out_size=(20, 28))
    assert big.shape == (20, 28) and (big[:, :12] == 3).all() and (big[:, 16:] == 1).all()


def test_learned_background_walks_and_decides_without_a_threshold():
    """bg_mode='learned': the background map is the first walked channel; argmax after per-source max-norm."""
    seeds = np.zeros((1, 8, 8), np.float32)
    seeds[0, :, :4] = 0.9  # class on the left half
    bg = np.zeros((8, 8), np.float32)
    bg[:, 4:] = 0.8  # learned background on the right half
    x = seed_scores(seeds, (4, 4), 2, "learned", background=bg, background_stride=2)
    assert x.shape == (2, 4, 4)
    np.testing.assert_allclose(x[0, :, 2:], 0.8)
    np.testing.assert_allclose(x[1, :, :2], 0.9)
    labels = scores_to_labels(x, np.array([3]), (8, 8), 2, "learned", bg_threshold=0.99)
    assert (labels[:, :4] == 4).all() and (labels[:, 4:] == 0).all()  # the threshold argument is not used
    with pytest.raises(ValueError, match="needs the learned background map"):
        seed_scores(seeds, (4, 4), 2, "learned")


def test_class_norm_per_class_keeps_a_weakly_walked_class():
    """class_norm: a class whose walked peak (0.3) is a third of another's (0.9) falls below a learned background
    of 0.6 under the global max (IRN) and keeps its pixels when each class is divided by its own max."""
    walked = np.zeros((3, 4, 6), np.float32)
    walked[0] = 0.6  # learned background: 0.6 under both classes ...
    walked[0, :, 2:4] = 1.0  # ... its max in the gap between them
    walked[1, :, :2] = 0.9  # strong class on the left
    walked[2, :, 4:] = 0.3  # weak class on the right
    keys = np.array([0, 4])
    glob = scores_to_labels(walked, keys, (4, 6), 1, "learned", class_norm="global")
    per = scores_to_labels(walked, keys, (4, 6), 1, "learned", class_norm="per_class")
    assert (glob[:, :2] == 1).all() and (glob[:, 2:] == 0).all()  # weak class: 0.3 / 0.9 < 0.6, lost
    assert (per[:, :2] == 1).all() and (per[:, 2:4] == 0).all() and (per[:, 4:] == 5).all()  # 1.0 > 0.6
    # threshold mode (IRN's constant, 0.5 here): the same loss under 'global', kept under 'per_class'
    t_glob = scores_to_labels(walked[1:], keys, (4, 6), 1, "threshold", 0.5, class_norm="global")
    t_per = scores_to_labels(walked[1:], keys, (4, 6), 1, "threshold", 0.5, class_norm="per_class")
    assert (t_glob[:, :2] == 1).all() and (t_glob[:, 2:] == 0).all()
    assert (t_per[:, :2] == 1).all() and (t_per[:, 2:4] == 0).all() and (t_per[:, 4:] == 5).all()
    with pytest.raises(ValueError, match="class_norm"):
        scores_to_labels(walked, keys, (4, 6), 1, "learned", class_norm="local")
