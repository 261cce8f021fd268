# Sections `classify` (the multi-label classifier: BAS or the CAM baseline) and `seeds` (seed maps from it).
# Defaults: the BAS WSSS settings for PASCAL VOC (docs/METHOD.md, section 1); the demo config shrinks sizes and epochs.
# resize / crop_size / epochs and seeds.scales also take 'auto': derived from the dataset (wsss/auto_settings.py).

classify = dict(
    method="bas",  # 'bas' (foreground generator + background activation suppression) or 'cam' (plain CAM)
    backbone="resnet50",  # resnet50 / resnet101 / resnet18 / resnet34 (layer4 dilated) or mobilenet_v2; stride 16
    # True = torchvision ImageNet weights from torch.hub's cache (downloaded there when missing; offline and
    # absent: an error naming the file, before any stage runs; tools/get_pretrained.py places MobileNetV2's),
    # False = random init (a warning, and the results say so), or a path to a torchvision state dict
    pretrained=True,
    classes=None,  # optional: the class names this run expects; checked against the dataset at start
    # loss = cls + 0.2 * fg_guidance + 1.0 * bas + 1.2 * area (VOC). The area weight interacts with object size:
    # lower it for data with small objects (watch `area_per_epoch` / `bg_wins_per_epoch` in results.json)
    loss_weights=dict(cls=1.0, fg=0.2, bas=1.0, area=1.2),
    cls_loss=None,  # None = 'pos_neg_softmax' for BAS (the BAS code's loss), 'soft_margin' for CAM
    # False (the public BAS code): the generator reads the mid features with their gradient, so the bas/area/fg
    # losses also shape layers 1-3; the erased features of the background branch are always detached.
    # True keeps those losses in the generator alone. On the demo data (MobileNetV2, 240 iterations) False shrank
    # the maps faster (area 0.35 vs 0.40) and gave better BAS seeds (32.2 vs 25.5 mIoU at the best threshold)
    detach_generator_input=False,
    # BAS generator and background branch (wsss/models/classifier.py; measurements: bench/README.md "realcut").
    # bias: the BAS code's generator has none; MobileNetV2's mid features are signed (a linear bottleneck) and
    # near zero-mean, so without one the map cannot be lowered as a whole and its area stays near 0.5
    generator_bias=True,
    # 'replicate' (or 'reflect'): the 3x3 generator sees no artificial zero ring at the image border
    # ('zeros', the BAS code, gives border pixels their own response)
    generator_padding="replicate",
    # BatchNorm of the background branch: 'shared' = the statistics of the un-erased forward pass of the same
    # step, so erasing removes activation; 'batch' (the BAS code's deep copy in train mode) renormalises the
    # erased batch by its own statistics, which scales what is left back up; 'running' = eval-mode statistics
    bg_norm="shared",
    fg_pool="mean",  # foreground guidance: 'mean' = GAP(cam * M) (BAS code), 'masked' = mean of cam inside M
    # lr multiplier of the generator (the classifier head has 10; the BAS code gives both 10). The area term moves
    # the map slowly: on a 148-iteration CPU schedule the mean map area ended at 0.33 with x10 and 0.18 with x50
    # (true area per present class ~0.07), and x50 gave the better seeds. Measured only on short schedules
    generator_lr_mult=50.0,
    epochs=10,
    iters=None,  # None = epochs x iterations per epoch; a number = the schedule length in iterations
    batch_size=16,  # per process (DDP: per rank)
    # backbone lr; new heads (classifier, generator) x10. Measured on the demo data (MobileNetV2, batch 8): 0.01
    # diverges (the head's step scales with the 1280-d feature norm), 0.001 trains cleanly
    lr=0.005,
    weight_decay=1e-4,
    momentum=0.9,
    poly_power=0.9,
    resize=512,  # long side before the random scale
    scale_range=(0.7, 1.3),  # random factor on `resize`
    crop_size=448,  # random crop (zero-padded = mean colour)
    flip=True,
    num_workers=4,  # DataLoader worker processes
    ckpt_interval=0,  # also checkpoint every n iterations (0 = once per epoch)
    log_interval=1,  # train_log.jsonl every n iterations
)

seeds = dict(
    # 'bas', 'cam', 'bas+cam' (each normalised, summed, normalised again), or 'external': class maps made by any
    # other method, imported from external_dir (IRN's <id>.npy format; README "Seeds from any method")
    # default 'bas+cam': above 'bas' and far above 'cam' (same classifier budget, calib-tuned or best threshold) on
    # every dataset measured: demo 67.27 / 62.26 / 55.46, realcut 58.25 / 49.87 / 41.69 (bench/README.md), and the
    # 96-image CI run (tests/test_quality_floor.py) 52.64 / 40.75 / 45.77, where BAS alone loses to CAM at 36
    # iterations. The VOC / COCO configs keep the paper's 'bas'.
    source="bas+cam",
    scales=(1.0, 0.5, 1.5, 2.0),  # plus horizontal flip; maps summed over all passes, then max-normalised
    flip=True,
    # an image whose long side is longer is labelled at this long side (the scales apply to it; maps still at full
    # size); also the BAO stage's labelling. None = every image at its native size (IRN, BAS). 'auto' (the custom
    # configs): the longest side the classifier trained at, classify.resize x classify.scale_range[1], so photos
    # larger than the training sizes (auto_limits.max_side) are labelled near the scale the nets trained at
    max_image_side=None,
    split=None,  # None = the dataset's train split
    external_dir=None,  # source='external': the folder of <id>.npy / <id>.npz maps
    external_normalize="none",  # 'none': maps must be in [0, 1]; 'max': relu + per-class max-normalisation
)
