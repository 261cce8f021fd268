"""Runs the toy pipeline in a subprocess (the kill/lock tests need a real separate process)."""
import json
import sys

from mmengine.config import Config

from pipeline.runner import run_stages
from tests.pipeline.toy_stages import STAGES

cfg = Config(json.loads(sys.argv[1]))
run_stages(cfg, STAGES)
