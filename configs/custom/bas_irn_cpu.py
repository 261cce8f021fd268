# Your own dataset in VOC layout on a CPU (or a small GPU): the method of configs/custom/bas_irn.py with the demo's
# light models, a pretrained MobileNetV2 classifier and a DeepLabV3+ MobileNetV2.
#   tools/run_pipeline.sh configs/custom/bas_irn_cpu.py --cfg-options dataset.root=/data/my_dataset
# As in bas_irn.py, no setting here was chosen with ground truth: sizes and schedule lengths are 'auto' (derived from
# the train split, printed with the reason at the end of the run), the refinement stages take their background from
# BAO's learned background. The values below were chosen by training behaviour or on other datasets:
# - classify.lr 0.001: 0.01 diverges with MobileNetV2 (training loss; its 1280-d features make the x10 head step
#   large);
# - affinity: MobileNetV2's four levels incl. stride 4, slim widths, cached frozen features, lr 0.5 (0.05 left the
#   affinity loss at 0.58, near the 0.69 of a constant affinity);
# - segment: iters 'auto' at the base's 30 passes (mmseg's VOC recipe). 20 passes were enough on the demo but not on
#   real photos: on realcut the ground-truth curve was still rising at 20 (bench/README, "realcut end to end").
# - segment.ratio_range and eval_segment.scales: the demo config's values, kept as they are (not compared against
#   others on any dataset).
# - random_walk.class_norm (base default: each walked class map by its own max with the learned background): chosen
#   with the ground truth of two realcut benchmark datasets, by the final DeepLab's val mIoU (bench/README.md,
#   "Random walk: each class by its own max"), none of your data;
# - auto_limits.max_side 320 (the base: 512, the published VOC sizes): a bound on the cost, not a quality choice.
#   On 2 cores the BAS classifier step at VOC size (512 resize, 448 crop, batch 16) took ~11 s, at 320 / 288 2.2 s.
#   Images whose median long side is at most 320 px (the demo, realcut) get the same values as without the bound;
#   larger photos train on smaller rescaled crops and are still labelled and evaluated at their own size
#   (bench/README.md, "Large photos on a CPU").
# - runtime.cpu_bf16 'auto': bfloat16 autocast of the training steps where the CPU has AMX bfloat16 units (Intel
#   Xeon 4th generation and later), float32 elsewhere; the value taken is printed with the other 'auto' values.
#   Same-hour pairs on two realcut builds (bench/README.md, "bfloat16 training on CPU"): classify, BAO and DeepLab
#   trained in 0.66-0.79x the float32 time; seeds and pseudo-labels stayed within 0.3 points, the final model within
#   DeepLab's own seed-to-seed spread (rc_s21, docs/RESULTS.md).
#   Set runtime.cpu_bf16=False for float32 results that reproduce on any CPU.
_base_ = ["./bas_irn.py"]
experiment = "custom_bas_irn_cpu"
auto_limits = dict(max_side=320)
runtime = dict(cpu_bf16="auto")
classify = dict(backbone="mobilenet_v2", pretrained=True, lr=0.001, batch_size=16, num_workers=0)
bao = dict(batch_size=16, num_workers=0)
affinity = dict(batch_size=8, lr=0.5, levels=(0, 1, 2, 3), dims=(32, 32, 64, 64), embed_dim=64, cache_features=True,
                train_chunk=0)
segment = dict(model="configs/segment/mobilenetv2_deeplabv3plus_demo.py", batch_size=8,
               ratio_range=(0.75, 1.5), val_interval=0, checkpoint_interval=200, log_interval=20, num_workers=0)
eval_segment = dict(scales=(0.75, 1.0, 1.25))
