# deeplabv3 ResNet-50 on COCO 2014 (81 classes from the dataset): mmseg's 40k VOC recipe, schedule raised to 80k
# iterations for COCO's 82k training images (crop 512).
_base_ = 'mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-40k_voc12aug-512x512.py'
iters = 80000
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=iters, by_epoch=False)]
train_cfg = dict(max_iters=iters, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
