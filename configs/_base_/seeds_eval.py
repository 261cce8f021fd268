# Sections `bao` (threshold-free learned background) and `eval_seeds` (seed quality vs ground truth).

# BAO (Fujimori et al., JVCIR 2025): learn an explicit background channel from the first seeds, so label maps
# need no background threshold. The student is the trained classifier's backbone plus a head that conditions
# the features on the image label vector and a 3x3 conv to C+1 channels (background first).
bao = dict(
    enabled=True,
    epochs=5,  # passes over the seed split
    batch_size=16,
    num_workers=4,  # DataLoader workers (image decoding + seed files)
    # base lr (SGD + poly, wsss.training); backbone + trained classifier head x1, new head x10 (lr_mult).
    # None = classify.lr, the lr this backbone is known to train at (demo: 0.01 made the first steps diverge)
    lr=None,
    weight_decay=1e-4,
    momentum=0.9,
    resize=None,  # long side before the random rescale; None = classify.resize (train at the classifier's scale)
    resize_range=None,  # random rescale factor range of that long side; None = classify.scale_range
    crop_size=None,  # random crop (padded with ignore) after random rescale + flip; None = classify.crop_size
    # False: the student's backbone learns too (BAO's recipe); 'mid': the backbone up to its stride-16 mid level
    # stays the classifier's, its last stage and the heads learn; True: only the label-conditioned head learns
    # (speed / quality of each: bench/README.md, "BAO student")
    freeze_backbone=False,
    # with freeze_backbone: the frozen part's output for each image (+ mirror) at one scale, computed once (memory:
    # 2 x images x that map in float16; the demo ~80 MB with True, 13x less with 'mid'); training runs the rest
    cache_features=False,
    hidden=256,  # channels of the label-conditioned head
    # with freeze_backbone=True: the backbone levels the head reads (0, 1, 2: strides 4, 8, 16 mid; 3: the high
    # map), each reduced to head_dims channels and fused at the first level's stride (the affinity net's fusion);
    # None = the high map alone (BAO's head)
    head_levels=None,
    head_dims=None,  # channels per head level; None = 64 each
    # with head_levels incl. 3: the head's logits are added to cam_prior x [1 - max normCAM, normCAM] of the frozen
    # classifier (the first teacher labels' rule), so it learns a correction of the CAM instead of the whole map;
    # 0 = off. Measured with cache_features=True only (whole images; each CAM is divided by its max over the input)
    cam_prior=0.0,
    label_smoothing=0.4,  # of the class-balanced cross-entropy on teacher labels
    cls_weight=1.0,  # multi-label classification loss weight
    seg_weight=1.0,  # class-balanced CE weight
    # teacher <- m * teacher + (1 - m) * student, every step; 0.99 = a horizon of ~100 steps, about one epoch
    # of VOC train at batch 16 (0.999 would leave the teacher near its starting point over a 5-epoch schedule)
    ema_momentum=0.99,
    # epochs (0-based) before this one use the first seeds' labels (no threshold: argmax over
    # [1 - max_c normCAM_c, normCAM_c]); from it on, the EMA teacher's predictions on the batch replace them
    teacher_from_epoch=1,
    scales=None,  # inference scales; None = cfg.seeds.scales (with horizontal flip)
    flip=True,
    infer_with="teacher",  # 'teacher' (the EMA model) or 'student' labels the images
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
