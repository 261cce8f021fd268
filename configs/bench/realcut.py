# The "realcut" benchmark (tools/make_bench_data.py): real photo cut-outs with their real masks (7 classes:
# person, quokka, socks, ice_cube_tray, mouse_traps, book, soap) pasted 1-3 per image with unlabelled
# distractors on real photo backgrounds, 600 train / 150 val images of ~224 px. Pretrained MobileNetV2, CPU.
# Inherits the demo config (same method and refinement); sizes follow the ~224 px images. Build the data with
# `python tools/make_bench_data.py --out data/realcut`. Every realcut number of bench/README.md used a smaller setting
# of this config (300 images, classifier 144/128 px, 148 iterations, BAO 8 epochs; bench/bench_realcut_final.sh);
# this full setting has not been measured yet.
_base_ = ["../demo/demo.py"]
experiment = "realcut"
dataset = dict(root="data/realcut", train_split="train", val_split="val")
classify = dict(epochs=6, resize=176, crop_size=160)
seeds = dict(scales=(1.0, 1.5))
affinity = dict(crop_size=192)
# segment: iters 'auto' at 30 passes over the train split (mmseg's VOC recipe; 1125 iterations on data/realcut_small),
# not chosen with realcut's ground truth. (20 passes, the demo's 600 iterations, left realcut's ground-truth curve still
# rising: bench/README "realcut end to end".)
segment = dict(crop_size=160, img_scale=(224, 192), iters="auto", auto_epochs=30)
