"""Sphinx configuration of the scheduler-service documentation."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

project = "scheduler-service"
author = "scheduler-service authors"
extensions = ["clickhelp"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
