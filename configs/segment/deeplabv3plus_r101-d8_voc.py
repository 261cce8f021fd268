# DeepLabV3+ ResNet-101 (output stride 8) on VOC: mmseg's shipped VOC-aug recipe (20k iterations, crop 512).
# Inherits the config inside the installed mmseg package ('mmseg::' = <mmseg>/.mim/configs); our data, the class
# count and the 'segment' section are applied by wsss/segmentation/mmseg_config.py.
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb4-20k_voc12aug-512x512.py'
