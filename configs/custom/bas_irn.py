# Your own dataset in VOC layout (see configs/_base_/datasets/custom.py for the folder layout):
#   tools/run_pipeline.sh configs/custom/bas_irn.py --cfg-options dataset.root=/data/my_dataset
_base_ = [
    "../_base_/datasets/custom.py",
    "../_base_/classify.py",
    "../_base_/seeds_eval.py",
    "../_base_/refine.py",
    "../_base_/segment.py",
    "../_base_/report.py",
    "../_base_/runtime.py",
]
experiment = "custom_bas_irn"
# No setting here was chosen with ground truth. Sizes and schedule lengths follow the dataset ('auto', derived from
# the train split's image sizes and image count when the config loads: wsss/auto_settings.py; the values and why
# are printed at the end of the run, kept in summary.json and shown in the report). The refinement stages take
# their background from the BAO stage's learned background (the default, configs/_base_/refine.py); if you switch
# one to background='threshold', give its threshold as 'calib' to choose it on the calibration split (`calib`:
# 32 train images carved off by default, excluded from every reported number).
# learned_background.scale 0.7 (base 1.0): the refinement stages read the BAO background map as 0.7 * b, so objects
# that fill the photo are covered further out. Chosen on rc_large (a benchmark realcut with photo-filling objects,
# background 67 % of the pixels, as in VOC) by its train ground truth: random-walk labels 80.25 -> 82.06 (0.8: 81.26).
# Held out: rc_large2 (another build, same object sizes) 78.96 -> 80.97; realcut_small (small objects, background
# 87 %) 80.02 -> 79.78, its CRF labels 80.65 -> 79.11 (bench/README.md "Learned background scale"). None of yours.
# Re-checked with BAO's teacher from half the schedule on rc_t13 (photo-filling, chose nothing): its CRF labels are
# still best at 0.7, on the calibration and the reported images (bench/README.md, "A photo-filling realcut ...").
# On two 64-image builds (rc_t12 small objects, rc_t14 photo-filling) the random-walk labels were 0.8 / 0.6 points
# better at 0.5 and the CRF labels best at 1.2 / 0.6: kept at 0.7 (bench/README.md, "Two 64-image builds").
learned_background = dict(scale=0.7)
classify = dict(resize="auto", crop_size="auto", epochs="auto")
seeds = dict(scales="auto", max_image_side="auto")
# bao.teacher_from_epoch 'auto': half of bao.epochs (the demo's 12 of 24) instead of the base's epoch 1, which on a
# small split is a few iterations (64 images: 4) after which the EMA teacher labelled most pixels foreground
# (bench/README.md, "BAO's EMA teacher from half the schedule").
bao = dict(epochs="auto", teacher_from_epoch="auto")
affinity = dict(crop_size="auto", resize_range="auto", train_radius="auto", epochs="auto")
# random_walk.label_crf on: the walked label map through a mild label CRF (configs/_base_/refine.py), as the random
# walk's labels bleed past their objects. Its settings were chosen on another dataset's train ground truth
# (realcut_small, bench/README.md "The random walk's labels through a label CRF"), none of yours. Final DeepLab,
# single scale: +3.0 there, +1.2 on rc_s3 (whose val decided the switch), +2.4 / +1.0 on rc_s5 / rc_large
# (independent); after DeepLab's own test-time CRF 0.2-1.9 lower on the first three, 1.5 higher on rc_large.
# random_walk.label_crf.enabled=False gives IRN's labels.
random_walk = dict(radius="auto", exp_times="auto", label_crf=dict(enabled=True))
segment = dict(model="configs/segment/deeplabv3plus_r50-d8_voc.py", crop_size="auto", img_scale="auto", iters="auto")
