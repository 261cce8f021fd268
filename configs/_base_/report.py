# Section `report`: the run's self-contained HTML report (<work_dir>/report/index.html, PNGs next to it).
# It changes no result; these settings only choose what the contact sheets show.
report = dict(
    num_examples=6,  # fixed sample: the first N ids of the split, sorted (deterministic across runs)
    num_worst=4,  # plus the N images whose pseudo-labels (predictions, on the val sheet) score the lowest mIoU
    thumb_height=160,  # contact-sheet tiles are downscaled to this height (pixels) before drawing
)
