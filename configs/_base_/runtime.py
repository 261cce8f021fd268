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
    # on a CPU with AMX (Intel Xeon 4th gen+) an isolated step took 0.4-0.8x, the demo's stages 0.81-0.96x (the
    # whole demo 0.88x); slower on a CPU without bfloat16 units; changes results (bench/README.md, "bfloat16 training
    # on CPU")
    cpu_bf16=False,
    channels_last=True,  # conv nets in NHWC memory layout: faster on CPU (bench/README "Memory layout"), same maths
    seed=0,  # seeds model initialisation, data order and augmentation
)
