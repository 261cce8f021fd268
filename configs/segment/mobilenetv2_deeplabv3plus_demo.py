# DeepLabV3+ with a MobileNetV2 backbone (output stride 8), small enough to train on CPU in minutes (demo).
# Inherits mmseg's shipped MobileNetV2 DeepLabV3+ config; the backbone is mmseg's MobileNetV2 initialised from
# torchvision's ImageNet checkpoint (torch.hub's cache; segment.pretrained) by wsss.mmseg_ext.TVMobileNetV2.
_base_ = 'mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py'
crop_size = (128, 128)
model = dict(
    pretrained=None,
    backbone=dict(type='TVMobileNetV2', tv_checkpoint='imagenet'),
    decode_head=dict(channels=128, c1_channels=24, dilations=(1, 6, 12, 18)),
    auxiliary_head=dict(channels=64))
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=300, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=100)
default_hooks = dict(checkpoint=dict(interval=100))
