# The demo's DeepLabV3+ MobileNetV2 at output stride 16 (the DeepLabV3+ paper's training stride, for which its ASPP
# rates 6/12/18 are set) instead of mmseg's stride 8: half the CPU time per training step, 0.9-2.6 points lower
# (bench/README.md, "Segmentation (demo model)", "Output stride 16"). An option for configs/demo/demo.py and
# configs/custom/bas_irn_cpu.py: segment.model=configs/segment/mobilenetv2_deeplabv3plus_os16_demo.py
_base_ = './mobilenetv2_deeplabv3plus_demo.py'
model = dict(backbone=dict(strides=(1, 2, 2, 2, 1, 1, 1), dilations=(1, 1, 1, 1, 1, 2, 2)))
