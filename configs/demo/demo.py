# The embedded demo: the synthetic VOC-layout dataset of tools/make_demo_data.py (5 shape classes on real-photo
# backgrounds, ~128 px), a pretrained MobileNetV2 (offline weights: tools/get_pretrained.py), every stage, on CPU
# in minutes. Same method as the VOC config; only sizes, epochs and iterations shrink.
_base_ = [
    "../_base_/datasets/custom.py",
    "../_base_/classify.py",
    "../_base_/seeds_eval.py",
    "../_base_/refine.py",
    "../_base_/segment.py",
    "../_base_/report.py",
    "../_base_/runtime.py",
]
experiment = "demo"
dataset = dict(root="data/demo", train_split="train", val_split="val")

classify = dict(backbone="mobilenet_v2", pretrained=True, epochs=12, batch_size=16, lr=0.01, resize=144,
                crop_size=128, num_workers=0)
seeds = dict(scales=(1.0, 0.5, 1.5), flip=True)
bao = dict(epochs=4, batch_size=16, crop_size=128, lr=0.01, ema_momentum=0.99)
affinity = dict(epochs=4, batch_size=16, crop_size=128, resize_range=(112, 160), lr=0.05)
segment = dict(model="configs/segment/mobilenetv2_deeplabv3plus_demo.py", iters=300, batch_size=8, crop_size=128,
               img_scale=(160, 128), ratio_range=(0.75, 1.5), val_interval=0, checkpoint_interval=100,
               log_interval=20, num_workers=0)
eval_segment = dict(scales=(0.75, 1.0, 1.25))
