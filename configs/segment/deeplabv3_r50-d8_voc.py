# DeepLabV3 ResNet-50 (output stride 8) on VOC: mmseg's shipped VOC-aug recipe (20k iterations, crop 512).
_base_ = 'mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-20k_voc12aug-512x512.py'
