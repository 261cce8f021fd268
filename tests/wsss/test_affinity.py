"""Pair offsets / indices, affinity labels on a hand-made label map, and the affinity loss and net."""
import pipeline.compat  # noqa: F401, I001

import numpy as np
import pytest
import torch

from tests.helpers import pair_indices
from wsss.affinity import (affinity_labels, affinity_loss, affinity_step, downsample_labels,
                           grid_size, pair_loss, pair_offsets, pair_valid_mask, pairwise_affinity)
from wsss.feature_cache import FeatureCache
from wsss.models.affinity_net import AffinityNet

torch.set_num_threads(1)


def test_pair_offsets_half_disk():
    offs = pair_offsets(5)
    assert len(offs) == 34  # PSA's radius-5 neighbourhood
    assert all(dy > 0 or (dy == 0 and dx > 0) for dy, dx in offs)  # one of d / -d only
    assert all(0 < dy * dy + dx * dx < 25 for dy, dx in offs)
    assert (4, 0) in offs and (3, 3) in offs and (0, 5) not in offs and (-1, 0) not in offs
    assert len(pair_offsets(10)) == 152  # half of the 304 lattice points with 0 < d^2 < 100
    with pytest.raises(ValueError, match="radius"):
        pair_offsets(1)


def test_pair_indices_on_small_grid():
    h, w = 3, 4
    offs = pair_offsets(2)  # (0, 1), (1, -1), (1, 0), (1, 1)
    assert offs == ((0, 1), (1, -1), (1, 0), (1, 1))
    src, dst, pos = pair_indices(h, w, offs)
    pairs = set(zip(src.tolist(), dst.tolist()))
    # horizontal 3*3, vertical 2*4, two diagonals 2*3 each
    assert len(src) == 9 + 8 + 6 + 6 == len(pairs)
    assert (0, 1) in pairs and (3, 4) not in pairs  # (0,3)->(1,0) is not a horizontal neighbour
    assert (1, 4) in pairs and (0, 5) in pairs and (3, 6) in pairs
    valid = pair_valid_mask(h, w, offs)
    assert int(valid.sum()) == len(src)
    assert valid.reshape(-1)[torch.from_numpy(pos)].all()


def test_affinity_labels_hand_made():
    # 0 = bg, 1 and 2 = classes, 255 = ignore
    lab = torch.tensor([[0, 0, 1, 1],
                        [0, 255, 1, 2],
                        [0, 0, 2, 2]])
    offs = pair_offsets(2)
    bg, fg, neg = affinity_labels(lab, offs)
    assert bg.shape == (4, 3, 4)
    k_right, k_down = offs.index((0, 1)), offs.index((1, 0))
    assert bg[k_right, 0, 0] and not fg[k_right, 0, 0] and not neg[k_right, 0, 0]  # bg-bg
    assert neg[k_right, 0, 1]  # bg | class 1
    assert fg[k_right, 0, 2]  # 1 | 1
    assert neg[k_right, 1, 2]  # 1 | 2
    assert not (bg[k_right, 1, 0] | fg[k_right, 1, 0] | neg[k_right, 1, 0])  # bg | ignore: nothing
    assert not (bg[k_right, 0, 3] | fg[k_right, 0, 3] | neg[k_right, 0, 3])  # partner outside the grid
    assert fg[k_down, 1, 3] and neg[k_down, 0, 3] and bg[k_down, 1, 0]
    assert not (bg[k_down, 0, 1] | fg[k_down, 0, 1] | neg[k_down, 0, 1])  # partner is the ignore cell
    # the three sets are disjoint and never touch out-of-grid pairs
    assert not (bg & fg).any() and not (bg & neg).any() and not (fg & neg).any()
    assert not ((bg | fg | neg) & ~pair_valid_mask(3, 4, offs)).any()
    # counted by hand over the 29 in-grid pairs (right / down / down-left / down-right); 8 touch the ignore cell
    assert int(bg.sum()) == 2 + 2 + 1 + 1 and int(fg.sum()) == 2 + 2 + 2 + 0 and int(neg.sum()) == 3 + 2 + 1 + 3
    # batch dimension
    bb, fb, nb = affinity_labels(torch.stack([lab, lab]), offs)
    assert bb.shape == (2, 4, 3, 4) and int(nb.sum()) == 18


def test_pairwise_affinity_values_and_checkpointing():
    f = torch.randn(2, 5, 6, 7, requires_grad=True)
    offs = pair_offsets(3)
    a = pairwise_affinity(f, offs, chunk=3)
    dy, dx = offs[4]
    expect = torch.exp(-(f[0, :, 2, 3] - f[0, :, 2 + dy, 3 + dx]).abs().mean())
    assert a.shape == (2, len(offs), 6, 7)
    torch.testing.assert_close(a[0, 4, 2, 3], expect)
    assert ((a > 0) & (a <= 1)).all()
    a.sum().backward()  # checkpointed chunks give gradients
    g1 = f.grad.clone()
    f.grad = None
    with torch.no_grad():
        b = pairwise_affinity(f.detach(), offs, chunk=100)
    torch.testing.assert_close(a.detach(), b)
    pairwise_affinity(f, offs, chunk=100).sum().backward()
    torch.testing.assert_close(g1, f.grad)


def test_affinity_loss_balanced():
    aff = torch.tensor([0.9, 0.5, 0.2, 0.1])
    bg = torch.tensor([True, True, False, False])
    fg = torch.tensor([False, False, True, False])
    neg = torch.tensor([False, False, False, True])
    out = affinity_loss(aff, bg, fg, neg)
    e_bg = -(np.log(0.9 + 1e-5) + np.log(0.5 + 1e-5)) / 2
    e_fg = -np.log(0.2 + 1e-5)
    e_neg = -np.log(1 + 1e-5 - 0.1)
    assert out["loss"].item() == pytest.approx(e_bg / 4 + e_fg / 4 + e_neg / 2, rel=1e-4)
    assert out["n_bg"].item() == 2


@pytest.mark.parametrize("chunk", [0, 3])
def test_pair_loss_equals_reference_loss_and_gradient(chunk):
    torch.manual_seed(0)
    emb = torch.randn(2, 6, 9, 11, requires_grad=True)
    lab = torch.randint(0, 3, (2, 9, 11))
    lab[lab == 2] = 255
    lab[:, :3] = 2
    offs = pair_offsets(4)
    ref = affinity_loss(pairwise_affinity(emb, offs), *affinity_labels(lab, offs))
    new = pair_loss(emb, lab, offs, chunk)
    for k in ref:
        assert new[k].item() == pytest.approx(ref[k].item(), rel=1e-5), k
    assert ref["n_neg"].item() > 0 and ref["n_fg"].item() > 0 and ref["n_bg"].item() > 0
    g_ref = torch.autograd.grad(ref["loss"], emb, retain_graph=True)[0]
    g_new = torch.autograd.grad(new["loss"], emb)[0]
    torch.testing.assert_close(g_new, g_ref, rtol=1e-4, atol=1e-7)
    # no known pair at all: zero loss, zero counts
    out = pair_loss(emb, torch.full((2, 9, 11), 255), offs)
    assert out["loss"].item() == 0 and out["n_bg"].item() == 0
    # ... and a training step on such a batch is a zero-gradient step, not a crash (it was: no grad_fn)
    assert torch.equal(torch.autograd.grad(out["loss"], emb)[0], torch.zeros_like(emb))


class TinyBackbone(torch.nn.Module):
    """A real (small) conv net with the classifier's feature API: levels at strides 4, 8, 16."""

    def __init__(self):
        super().__init__()
        self.s4 = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 4, 1), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
        self.s8 = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, 2, 1), torch.nn.ReLU())
        self.s16 = torch.nn.Sequential(torch.nn.Conv2d(16, 16, 3, 2, 1), torch.nn.ReLU())

    def backbone_features(self, x):
        a = self.s4(x)
        b = self.s8(a)
        return [a, b, self.s16(b)]


def test_affinity_net_loss_decreases_on_fixed_batch():
    torch.manual_seed(0)
    net = AffinityNet(TinyBackbone(), grid_stride=4, dims=(8, 8), embed_dim=16, chunk=8)
    assert net.levels == [1, 2]
    assert not any(p.requires_grad for p in net.backbone.parameters())
    # image: left half dark, right half bright; labels: bg left, class 1 right, a band of ignore
    img = torch.zeros(2, 3, 32, 48)
    img[:, :, :, 24:] = 2.0
    img += 0.1 * torch.randn_like(img)
    lab = torch.zeros(2, 32, 48, dtype=torch.long)
    lab[:, :, 24:] = 1
    lab[:, :, 22:26] = 255
    grid = torch.from_numpy(np.stack([downsample_labels(x.numpy(), 4) for x in lab]))
    assert grid.shape == (2, *grid_size(32, 48, 4))
    offs = pair_offsets(4)
    targets = affinity_labels(grid, offs)
    assert all(int(t.sum()) > 0 for t in targets)
    opt = torch.optim.SGD(net.trainable_parameters(), lr=0.1, momentum=0.9)
    net.train()
    assert not net.backbone.s4[1].training  # the frozen backbone stays in eval mode
    losses = []
    for _ in range(15):
        out = affinity_loss(net(img, offs), *targets)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.6 * losses[0], losses
    aff = net.eval().infer(img[:1], radius=3)
    assert aff.shape == (1, len(pair_offsets(3)), 8, 12)


def test_downsample_labels_centres():
    lab = np.arange(10 * 9, dtype=np.uint8).reshape(10, 9)
    g = downsample_labels(lab, 4)
    assert g.shape == (3, 3)
    assert g[0, 0] == lab[2, 2] and g[2, 2] == lab[9, 8]  # last cell clamps to the border


class _Crops(torch.utils.data.Dataset):
    """The minimal AffinityDataset interface FeatureCache reads: fixed-size image crops and grid labels."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def set_epoch(self, epoch):
        pass

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "labels": self.labels[i]}


def test_feature_cache_matches_backbone_and_trains():
    torch.manual_seed(0)
    net = AffinityNet(TinyBackbone(), grid_stride=4, dims=(8, 8, 8), embed_dim=16, levels=[0, 1, 2])
    images = torch.randn(5, 3, 32, 48)
    labels = torch.randint(0, 2, (5, 8, 12))
    cache = FeatureCache(net.frozen_features, _Crops(images, labels), batch_size=2, flip=True, seed=0)
    assert len(cache) == 5
    plain, mirror = cache.items[3]
    for f, g in zip(plain["feats"], net.frozen_features(images[3:4])):
        torch.testing.assert_close(f, g[0])
    for f, g in zip(mirror["feats"], net.frozen_features(images[3:4].flip(-1))):
        torch.testing.assert_close(f, g[0])
    assert torch.equal(mirror["labels"], labels[3].flip(-1)) and torch.equal(plain["labels"], labels[3])
    picks = set()
    for epoch in range(6):  # the mirrored copy is picked per (seed, epoch, index), deterministically
        cache.set_epoch(epoch)
        picks |= {torch.equal(cache[i]["labels"], labels[i]) for i in range(5)}
        assert torch.equal(cache[0]["labels"], cache[0]["labels"])
    assert picks == {True, False}
    # the step on cached features equals the step on the images (same embedding, same loss)
    batch = torch.utils.data.default_collate([cache.items[i][0] for i in range(2)])
    step = affinity_step(pair_offsets(3))
    on_feats = step(net, {"feats": batch["feats"], "labels": batch["labels"]})
    on_images = step(net, {"image": images[:2], "labels": labels[:2]})
    assert on_feats["loss"].item() == pytest.approx(on_images["loss"].item(), rel=1e-5)
