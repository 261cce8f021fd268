# Sections `crf`, `ir_labels`, `affinity`, `random_walk`, `eval_pseudo`: seed refinement (dense CRF and
# IRN-style inter-pixel affinity + random walk) and the evaluation of the pseudo-labels. VOC defaults from
# docs/METHOD.md (sections 4-6). `split=None` everywhere = the split the seeds were made for.

# Background of every refinement stage (`background`, wsss/background.py): 'learned' (default, ground-truth free) =
# the BAO stage's learned background map bao/bg/<id>.npz; 'threshold' = the constants below (IRN / BAS values for
# VOC; a number, or 'calib': chosen on the declared calibration split, section `calib`).

# The learned background map b enters crf, ir_labels, random_walk and eval_seeds' BAO row as `scale * b`. 1.0: the
# map as BAO wrote it. configs/custom/ set their own value (their comment says on which data it was chosen). The
# random walk divides the walked map by its own max (the scale cancels there); it acts through ir_labels.
learned_background = dict(scale=1.0)

# CRF-only pseudo-labels from the seeds.
crf = dict(
    background="learned",  # 'learned' (BAO background map) or 'threshold' (bg_threshold)
    mode="labels",  # 'labels': IRN label unary (background, argmax, crf_labels); 'probs': softmax unary (crf_probs)
    bg_threshold=0.25,  # background='threshold': background score for the seed label map (a number or 'calib')
    bg="threshold",  # threshold + probs mode: 'threshold' (constant bg_threshold) or 'power' ((1 - max)^bg_power)
    bg_power=8.0,  # probs mode with bg='power' (PSA used 4 and 32 for low / high alpha)
    gt_prob=0.7,  # labels mode: trust in the seed label (IRN)
    gaussian=(3, 3),  # (sxy, compat)
    bilateral=(50, 5, 10),  # (sxy, srgb, compat): IRN label CRF; PSA softmax unary used (80, 13, 10)
    iters=10,
    split=None,
)

# Affinity labels (IRN cam_to_ir_label): confident fg / bg through the label CRF, the rest 255.
ir_labels = dict(
    background="learned",  # 'learned': confident fg / bg from the BAO background map b; 'threshold': the constants
    # learned: fg where a class map beats conf_fg_scale * b, bg where every map is below conf_bg_scale * b (after
    # the CRF). The published ratios of the confidence thresholds to the label threshold, not tuned on our data:
    # IRN 0.30 / 0.05 around 0.25 (1.2 / 0.2), BAS 0.30 / 0.17 around 0.22 (1.36 / 0.77)
    conf_fg_scale=1.25,
    conf_bg_scale=0.5,
    conf_fg_thres=0.30,  # threshold: foreground where a class map >= this (after the CRF); or 'calib' (t * fg_scale)
    conf_bg_thres=0.05,  # threshold: background where every map < this; BAS's code uses 0.17; or 'calib' (t * bg_scale)
    gt_prob=0.7,
    gaussian=(3, 3),
    bilateral=(50, 5, 10),
    iters=10,
    split=None,
)

# Affinity network (PSA pairwise affinity exp(-mean|f_i - f_j|) on a frozen classifier backbone; see wsss/affinity.py).
affinity = dict(
    grid_stride=4,  # IRN's stride-4 grid: backbone levels (strides 4, 8, 16, 16) are resized to it and fused
    dims=(64, 128, 256),  # per-level 1x1 conv widths, for the last len(dims) feature levels
    levels=None,  # explicit feature-level indices (None = the last len(dims) levels: strides 8, 16, 16)
    embed_dim=256,  # width of the fused embedding the affinities are computed on
    chunk=8,  # inference: offsets per chunk of pairwise_affinity
    train_chunk=8,  # training: offsets per checkpointed group of the pair loss (0 = no checkpointing: fastest)
    cache_features=False,  # True: frozen-backbone features computed once at one scale (+ mirror); no resize jitter
    train_radius=10,  # pairs within this radius on the grid (IRN: 10 at stride 4)
    epochs=3,  # IRN: 3 epochs, batch 32, lr 0.1, crop 512
    batch_size=32,
    lr=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    crop_size=512,
    resize_range=(320, 640),  # random long side before the crop (IRN)
    flip=True,
    ckpt_interval=0,  # extra checkpoints every n iterations (0 = per epoch)
    num_workers=0,  # DataLoader workers
)

# Random walk with the learned affinities (IRN make_sem_seg_labels), sparse radius-bounded transition matrix.
random_walk = dict(
    background="learned",  # 'learned': the BAO background map walks with the classes, argmax; 'threshold': bg_mode
    # below; 'seeds': 1 - max of the seed maps walks in its place (bench/README.md "The random walk's background
    # from the seeds"; BAO's map still trains the affinity net through ir_labels)
    radius=5,  # inference radius on the grid (IRN: 5)
    # an image whose long side is longer walks at this long side (affinities and walk on the scaled-down grid,
    # scores resized to full size before the argmax); None = native size (IRN). A bound for very large photos (time,
    # memory), not a default: on 640 px photos a walk at 400 px was 3x faster but 4 points lower (bench/README.md)
    max_image_side=None,
    beta=10,  # affinity ** beta
    exp_times=8,  # 2 ** exp_times walk steps (scale with the grid: diffusion spreads ~radius * sqrt(steps) cells)
    bg_mode="threshold",  # background='threshold': 'threshold' (IRN, constant sem_seg_bg_thres after the walk) or
    # 'power' (PSA bg channel (1 - max)^bg_power walked)
    sem_seg_bg_thres=0.25,  # IRN 0.25 (BAS uses 0.22 with seed_power 1.5); a number or 'calib'
    bg_power=1.0,  # 'power' mode: bg = (1 - max_k s_k) ** bg_power
    seed_power=1.0,  # seed maps ** seed_power before the walk (BAS: 1.5)
    # walked class maps before the argmax with the background: 'global' divides them by their one max (IRN);
    # 'per_class' each by its own max (a class that walked weakly beside a strong one keeps its pixels). None:
    # 'per_class' with the learned background (final DeepLab +2.0 / +5.3 mIoU on realcut_small / realcut_480,
    # bench/README.md "Random walk: each class by its own max"; their val ground truth chose it; neutral, within 0.5,
    # on the demo and a third realcut), 'global' with IRN's threshold (set for it)
    class_norm=None,
    # a dense CRF on the walked label map: IRN's label unary over the image's own classes (the crf stage's), with a
    # milder bilateral kernel than its (50, 5, 10), which cuts whole classes out of these labels. Off here (IRN's
    # labels); on in configs/custom/ (bench/README.md "The random walk's labels through a label CRF")
    label_crf=dict(enabled=False, gt_prob=0.8, gaussian=(3, 3), bilateral=(30, 5, 4), iters=10),
    seed_source="stride4",  # 'stride4': the seeds' stride-4 maps (IRN's cam); 'high': full-res maps pooled to the grid
    flip=True,  # affinities averaged over the image and its mirror
    keep_low_confidence_as_ignore=False,  # 255 where the winning score < ignore_threshold
    ignore_threshold=0.3,
    split=None,
)

# Pseudo-label evaluation (CRF-only and random-walk paths) vs ground truth, next to eval_seeds' numbers.
eval_pseudo = dict(
    split=None,
)
