# Settings that do not change results: they never make a stage stale.
runtime = dict(
    device="auto",  # 'auto' = CUDA when present, else CPU; or 'cpu', 'cuda', 'cuda:1'
    workers=None,  # processes for per-image loops (CRF, random walk, seeds on CPU); None = all cores
    amp=True,  # automatic mixed precision where it is safe (CUDA only)
    seed=0,
)
