# Sections `segment` (DeepLab in MMSegmentation 1.x trained on the pseudo-labels) and `eval_segment`.
# Keys left None take the value of the mmseg model config (`segment.model`), which inherits mmseg's shipped
# config (20k iterations, batch 4 per GPU x 4 GPUs, SGD lr 0.01 + poly, crop 512x512 for VOC aug).

segment = dict(
    # mmseg model config (path relative to the repository root, or absolute); configs/segment/ has
    # DeepLabV3+ / DeepLabV3 with ResNet-101 / ResNet-50 for VOC and COCO, and MobileNetV2 for the CPU demo.
    model="configs/segment/deeplabv3plus_r101-d8_voc.py",
    # training labels: a stage name (reads <work_dir>/<stage>/labels/<id>.png), any folder path of
    # <id>.png label maps, or 'gt' (ground-truth masks of the training split: the fully supervised upper bound)
    labels_from="random_walk",
    check_labels=True,  # every training image has a label PNG in range and of the image's size (before training)
    num_classes=None,  # None = from the dataset; a value that disagrees with the dataset is an error
    # training iterations (None: the model config's, 20k for VOC, 80k for COCO; 'auto': auto_epochs passes over
    # the train split at batch_size x processes, wsss/auto_settings.py)
    iters=None,
    auto_epochs=30,  # for iters='auto' (mmseg's VOC recipe: 20k x 16 / 10582 = ~30 passes)
    # ... and at least this many iterations: on a small train split 30 passes are too few steps for DeepLab to learn
    # the classes (realcut_small: 750 iterations left two classes unlearnt, 1125 did not; 96 photos at 30 passes =
    # 360 iterations gave 13 mIoU; bench/README.md)
    auto_min_iters=1000,
    batch_size=4,  # images per process (mmseg's VOC recipe: 4 per GPU on 4 GPUs = 16)
    lr=None,  # SGD base lr (None: the model config's, 0.01)
    crop_size=None,  # random crop (None: the model config's, 512; 'auto': median short side of the train images)
    # (long, short) resize target; training rescales it by ratio_range, testing uses it ('auto': the images' own
    # scale, (95th-percentile long side, crop_size))
    img_scale=(2048, 512),
    ratio_range=(0.5, 2.0),
    # backbone weights: True = the ones the model config names (mmseg's recipe: open-mmlab://resnet101_v1c via
    # mmengine; ImageNet MobileNetV2 via torchvision), from torch.hub's cache or downloaded there (offline and
    # absent: an error naming the file, before any stage runs); a path = that checkpoint; False = random init
    pretrained=True,
    val_interval=None,  # validate on the val split's ground truth every n iterations (None: model config's; 0: never)
    checkpoint_interval=None,  # None: the model config's (2000)
    max_keep_ckpts=2,
    log_interval=50,
    num_workers=4,  # data-loader workers per process
    amp=None,  # None = runtime.amp (mixed precision on CUDA only)
    tensorboard=True,  # TensorBoard scalars in <out>/mmseg/<timestamp>/vis_data (also scalars.json)
)

eval_segment = dict(
    split=None,  # None = the dataset's val split (needs ground truth)
    ms_flip=True,  # also evaluate multi-scale + horizontal flip (softmax averaged, as mmseg's SegTTAModel)
    scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75),  # relative to the single-scale size (segment.img_scale)
    crf=True,  # dense-CRF post-processing (wsss.crf PRESETS['deeplab']) of the ms+flip (else single-scale) probs
    crf_preset="deeplab",
)
