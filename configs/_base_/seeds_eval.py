# Sections `bao` (threshold-free learned background) and `eval_seeds` (seed quality vs ground truth).

# BAO (Fujimori et al., JVCIR 2025): learn an explicit background channel from the first seeds, so label maps
# need no background threshold. The student is the trained classifier's backbone plus a head that conditions
# the features on the image label vector and a 3x3 conv to C+1 channels (background first).
bao = dict(
    enabled=True,
    epochs=5,  # passes over the seed split
    batch_size=16,
    lr=0.01,  # base lr (SGD + poly, wsss.training); backbone x1, head x10 (lr_mult)
    weight_decay=1e-4,
    momentum=0.9,
    crop_size=448,  # random crop (padded with ignore) after random rescale + flip
    resize_range=(0.7, 1.3),  # random rescale factor range before the crop
    label_smoothing=0.4,  # of the class-balanced cross-entropy on teacher labels
    cls_weight=1.0,  # multi-label classification loss weight
    seg_weight=1.0,  # class-balanced CE weight
    ema_momentum=0.999,  # teacher <- m * teacher + (1 - m) * student, every step
    # epochs (0-based) before this one use the first seeds' labels (no threshold: argmax over
    # [1 - max_c normCAM_c, normCAM_c]); from it on, the EMA teacher's predictions on the batch replace them
    teacher_from_epoch=1,
    scales=None,  # inference scales; None = cfg.seeds.scales (with horizontal flip)
    flip=True,
    split=None,  # None = the split the seeds were made for
)

# Seed evaluation: mIoU of seed label maps over a sweep of background thresholds (one pass over the images),
# plus the threshold-free BAO labels when the `bao` stage is enabled. The best threshold is chosen WITH the
# ground truth: it is an upper bound for a threshold, not a number a weakly supervised method may report.
eval_seeds = dict(
    threshold_range=(0.05, 0.60, 0.05),  # (start, stop, step), stop included
    thresholds=None,  # an explicit list overrides threshold_range
    split=None,  # None = the split the seeds were made for
)
