# `device`, `workers` and `channels_last` change where and how fast stages run, not what they compute: they are in
# no fingerprint (CPU and GPU floats, or NCHW and NHWC kernels, can differ in the last bits: after such a change,
# --force a stage to recompute it).
# `seed`, `amp` and `cpu_bf16` change results: they are in the fingerprints of the stages that use them (classify,
# bao, affinity, segment), so changing them reruns those stages and everything downstream.
runtime = dict(
    device="auto",  # 'auto' = CUDA when present, else CPU; or 'cpu', 'cuda', 'cuda:1'
    workers=None,  # processes for per-image loops (CRF, random walk, seeds on CPU); None = all cores
    amp=True,  # automatic mixed precision where it is safe (CUDA only)
    # bfloat16 autocast of the training steps on CPU (classify, bao, affinity, segment; inference stays float32):
    # True, False, or 'auto' = True on a CPU with AMX bfloat16 units (resolved when the config loads, shown with
    # the other 'auto' values). On such a 2-core CPU, same-hour pairs on real photos trained classify in 0.69-0.79x,
    # BAO in 0.75x and DeepLab in 0.66-0.73x the float32 time (affinity on cached features: no gain), seeds and
    # pseudo-labels within 0.3 points, the final model within DeepLab's seed spread; slower on a CPU without
    # bfloat16 units; changes results
    # (bench/README.md, "bfloat16 training on CPU"). False here: the demo, VOC and COCO configs stay float32, so
    # their numbers reproduce on any CPU; configs/custom/bas_irn_cpu.py sets 'auto'.
    cpu_bf16=False,
    channels_last=True,  # conv nets in NHWC memory layout: faster on CPU (bench/README "Memory layout"), same maths
    seed=0,  # seeds model initialisation, data order and augmentation
)
