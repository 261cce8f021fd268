"""How a reported number's settings were chosen; every table keeps the kinds apart."""

# How a reported number's settings were chosen (kept apart in every table): no ground truth at all; with ground
# truth on the declared calibration split only; with ground truth on the reported split itself (an oracle bound).
GT_FREE = "ground-truth-free"
TUNED = "tuned with ground truth (on calib)"
ORACLE = "oracle: chosen with ground truth on the reported split"
