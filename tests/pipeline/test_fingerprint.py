"""Issue 11 findings 1 and 2: data changes invalidate, the root's spelling does not; every result-changing setting
and every imported project module is in a stage's fingerprint."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from mmengine.config import Config
from PIL import Image

import stages  # noqa: F401  registers the data hooks the engine reads datasets through
from pipeline.config import load_config
from pipeline.fingerprint import FileHashes, code_version, project_imports
from pipeline.runner import plan_stages, run_stages
from tests.helpers import blob_mask, make_voc_layout
from tests.pipeline.toy_stages import STAGES
from wsss.maps import save_label_png

ROOT = Path(__file__).resolve().parents[2]


def _dataset(root: Path) -> Path:
    masks = {f"im{k}": blob_mask(32, 40, [(1 + k % 2, 4, 4, 20, 20 + k)]) for k in range(4)}
    return make_voc_layout(root, masks, classes=["background", "cat", "dog"])


def _cfg(work_dir: Path, root: str, cache: Path) -> Config:
    return Config(dict(work_dir=str(work_dir), numbers=dict(n=3, scale=1.0, delay=0.0), total=dict(factor=2.0),
                       dataset=dict(type="custom", root=root, cache_dir=str(cache))))


def _actions(cfg: Config) -> dict[str, tuple[str, str]]:
    return {p.name: (p.action, p.reason) for p in plan_stages(cfg, STAGES, Path(cfg.work_dir))}


def test_data_changes_invalidate_and_the_root_spelling_does_not(tmp_path, monkeypatch):
    root = _dataset(tmp_path / "data")
    monkeypatch.setattr(STAGES[0], "CONFIG_KEYS", ("numbers", "dataset"))  # a stage that reads the dataset
    cfg = _cfg(tmp_path / "w", str(root), tmp_path / "cache")
    run_stages(cfg, STAGES)
    assert _actions(cfg) == {"numbers": ("skip", "up to date"), "total": ("skip", "up to date")}

    # the same root spelled with a trailing slash, or through a symlink: nothing to do
    (tmp_path / "link").symlink_to(root)
    for spelling in (str(root) + "/", str(tmp_path / "link"), str(tmp_path / "link") + "/"):
        assert _actions(_cfg(tmp_path / "w", spelling, tmp_path / "cache"))["numbers"][0] == "skip", spelling
    # a touched file (same content, new mtime): nothing to do
    mask = root / "SegmentationClass/im1.png"
    os.utime(mask, ns=(mask.stat().st_atime_ns, mask.stat().st_mtime_ns + 10**9))
    assert _actions(cfg)["numbers"][0] == "skip"

    # a mask whose class changed: the stage and its downstream rerun, naming the split
    original = mask.read_bytes()
    lab = np.asarray(Image.open(mask)).copy()
    lab[lab == 2] = 1
    save_label_png(mask, lab)
    plan = _actions(cfg)
    assert plan["numbers"][0] == "rerun" and "data changed: split train" in plan["numbers"][1], plan
    assert plan["total"][0] == "rerun" and "input changed: numbers" in plan["total"][1]
    mask.write_bytes(original)
    assert _actions(cfg)["numbers"][0] == "skip"

    # a JPEG replaced by another image
    img = root / "JPEGImages/im2.jpg"
    Image.fromarray(np.full((32, 40, 3), 200, np.uint8)).save(img, quality=95)
    assert _actions(cfg)["numbers"][0] == "rerun"
    shutil.copy(root / "JPEGImages/im3.jpg", img)
    assert _actions(cfg)["numbers"][0] == "rerun"
    # a split file or class list that changes is data too
    _dataset(tmp_path / "data2")
    (tmp_path / "data2/classes.txt").write_text("background\ncat\nbird\n")
    assert "data changed" in _actions(_cfg(tmp_path / "w", str(tmp_path / "data2"), tmp_path / "cache"))["numbers"][1]


def test_content_hashes_are_computed_once_and_cached(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 1000)
    cache = tmp_path / "hashes.json"
    first = FileHashes(cache)
    h = first.hash(f)
    first.save()
    entries = json.loads(cache.read_text())
    (key,) = entries
    entries[key][3] = "cached-value"  # same size/mtime/inode: the cached hash is used, the file is not read again
    cache.write_text(json.dumps(entries))
    assert FileHashes(cache).hash(f) == "cached-value"
    f.write_bytes(b"y" * 1001)  # changed: read again
    assert FileHashes(cache).hash(f) not in ("cached-value", h)


def _demo_plan(tmp_path: Path, **options) -> dict[str, dict]:
    from stages import load_stages
    from tools.demo_data import make_demo_dataset

    root = tmp_path / "data"
    if not root.exists():  # the demo config derives 'auto' sizes from the train split: a real (tiny) one
        make_demo_dataset(root, seed=0, n_train=4, n_val=2, size=48)
    cfg = load_config(ROOT / "configs/demo/demo.py", {"dataset.root": str(root), **options})
    cfg.work_dir = str(tmp_path / "w")
    return {p.name: p.fingerprint for p in plan_stages(cfg, load_stages(), tmp_path / "w") if p.fingerprint}


def test_runtime_seed_and_amp_are_in_the_fingerprints_of_the_stages_that_use_them(tmp_path):
    base = _demo_plan(tmp_path)
    users = {"classify", "bao", "affinity", "segment"}  # the stages that read runtime.seed / amp / cpu_bf16
    for key, value in (("runtime.seed", 1), ("runtime.amp", False), ("runtime.cpu_bf16", True)):
        changed = _demo_plan(tmp_path, **{key: value})
        own = {n for n in base if base[n]["config"] != changed[n]["config"]}
        assert own == users, (key, own)
        assert all(base[n] != changed[n] for n in changed)  # every stage is downstream of classify
    for key, value in (("runtime.workers", 1), ("runtime.device", "cpu")):  # where, not what
        assert _demo_plan(tmp_path, **{key: value}) == base, key


def test_code_versions_follow_the_imports_not_hand_lists():
    # modules the hand-written CODE lists missed (issue 11): random_walk rebuilds the classifier through
    # wsss.models; crf / ir_labels read images through wsss.datasets (the reader the stage package registers
    # for the stage context: stages/__init__.py, a parent of every stage module)
    assert {"wsss.models", "wsss.models.classifier"} <= set(project_imports("stages.random_walk"))
    assert {"wsss.crf", "wsss.datasets"} <= set(project_imports("stages.crf"))
    assert "wsss.datasets" not in project_imports("pipeline.stage")  # the engine does not read data itself
    from stages import load_stages

    assert not any(hasattr(m, "CODE") for m in load_stages())


def test_each_trainer_fingerprints_its_own_data_and_model_code_only():
    # the trainers' datasets were one module (wsss.train_data) importing BAO's model and the affinity labels: an
    # edit to BAO's head retrained the classifier and everything after it. Each dataset is now its own module.
    classify, bao, affinity = (set(project_imports(f"stages.{s}")) for s in ("classify", "bao", "affinity"))
    assert "wsss.train_data" in classify
    assert not classify & {"wsss.models.bao", "wsss.bao_data", "wsss.affinity", "wsss.affinity_data",
                           "wsss.models.affinity_net", "wsss.models.fusion"}
    assert {"wsss.models.bao", "wsss.bao_data", "wsss.models.fusion"} <= bao
    assert not bao & {"wsss.affinity_data", "wsss.models.affinity_net"}
    assert {"wsss.affinity_data", "wsss.models.affinity_net", "wsss.models.fusion"} <= affinity
    assert not affinity & {"wsss.models.bao", "wsss.bao_data"}


def test_a_change_in_a_transitively_imported_module_changes_the_code_version(tmp_path):
    pkg = tmp_path / "proj"
    (pkg / "stages").mkdir(parents=True)
    (pkg / "wsss").mkdir()
    (pkg / "stages/__init__.py").write_text("")
    (pkg / "wsss/__init__.py").write_text("")
    (pkg / "stages/s.py").write_text("def run(ctx):\n    from wsss import a\n    return a.f()\n")
    (pkg / "wsss/a.py").write_text("from .b import g\n\ndef f():\n    return g()\n")
    (pkg / "wsss/b.py").write_text("def g():\n    return 1\n")
    (pkg / "wsss/unrelated.py").write_text("x = 1\n")
    args = dict(root=pkg, packages=("stages", "wsss"), context=())
    v0 = code_version("stages.s", **args)
    assert set(project_imports("stages.s", pkg, ("stages", "wsss"))) == {"stages", "stages.s", "wsss", "wsss.a",
                                                                          "wsss.b"}
    (pkg / "wsss/unrelated.py").write_text("x = 2\n")
    assert code_version("stages.s", **args) == v0
    (pkg / "wsss/b.py").write_text("def g():\n    return 2\n")  # imported by a module the stage imports
    assert code_version("stages.s", **args) != v0


def test_docstrings_comments_and_layout_keep_the_code_version_what_runs_changes_it(tmp_path):
    # a `git pull` of documentation must not rerun hours of finished stages; any edit to what runs must
    pkg = tmp_path / "proj"
    (pkg / "stages").mkdir(parents=True)
    (pkg / "stages/__init__.py").write_text("")
    src = pkg / "stages/s.py"
    args = dict(root=pkg, packages=("stages",), context=())
    src.write_text('"""A stage."""\n\ndef run(ctx):\n    """Run it."""\n    return {"x": 1}  # one\n')
    v0 = code_version("stages.s", **args)
    same = ['"""A stage, described at more length.\n\nTwo paragraphs."""\n\n\ndef run(ctx):\n'
            '    # a new comment\n    return {"x": 1}\n',
            'def run(ctx):\n    return {\n        "x": 1,\n    }\n']
    for text in same:
        src.write_text(text)
        assert code_version("stages.s", **args) == v0, text
    changed = ['def run(ctx):\n    return {"x": 2}\n',  # a value
               'def run(ctx):\n    return {"y": 1}\n',  # a string that is data, not a docstring
               'def run(ctx, n=0):\n    return {"x": 1}\n',  # a signature
               'def run(ctx):\n    raise ValueError("x")\n']
    for text in changed:
        src.write_text(text)
        assert code_version("stages.s", **args) != v0, text


def test_a_work_dir_from_before_docstring_free_code_versions_stays_valid_while_its_sources_are_unchanged(tmp_path):
    # manifests written before the rule hold the sources' byte hash: the planner accepts it, so an upgrade does
    # not rerun finished stages; a stored version that matches neither rule (the code really changed) still reruns
    from pipeline.config import digest
    from stages import load_stages
    from tools.demo_data import make_demo_dataset

    root, work = tmp_path / "data", tmp_path / "w"
    make_demo_dataset(root, seed=0, n_train=4, n_val=2, size=48)
    cfg = load_config(ROOT / "configs/demo/demo.py", {"dataset.root": str(root)})
    cfg.work_dir = str(work)
    modules = load_stages()
    first = plan_stages(cfg, modules, work)[0]
    assert first.name == "classify" and first.action == "run"
    legacy = code_version(first.module, legacy=True)
    assert legacy != first.fingerprint["code"]
    for code, same in ((legacy, True), ("0123456789abcdef", False)):
        fp = {**first.fingerprint, "code": code}
        (work / "classify").mkdir(parents=True, exist_ok=True)
        (work / "classify/manifest.json").write_text(json.dumps(
            {"stage": "classify", "state": "done", "fp_hash": digest(fp), "fingerprint": fp}))
        again = plan_stages(cfg, modules, work)[0]
        # same fingerprint: the stored one is kept (the stage is then skipped, or resumed for missing outputs)
        assert (again.fp_hash == digest(fp)) is same and (again.action == "rerun") is not same, again.reason
    assert again.reason == "code changed"
