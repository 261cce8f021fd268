# The "realcut" benchmark (tools/make_bench_data.py): real photo cut-outs with their real masks (7 classes:
# person, quokka, socks, ice_cube_tray, mouse_traps, book, soap) pasted 1-3 per image with unlabelled
# distractors on real photo backgrounds, 600 train / 150 val images of ~224 px. Pretrained MobileNetV2, CPU.
# Inherits the demo config (same method and refinement); sizes follow the ~224 px images.
_base_ = ["../demo/demo.py"]
experiment = "realcut"
dataset = dict(root="data/realcut", train_split="train", val_split="val")
classify = dict(epochs=6, resize=176, crop_size=160)
seeds = dict(scales=(1.0, 1.5))
affinity = dict(crop_size=192)
segment = dict(crop_size=160, img_scale=(224, 192))
