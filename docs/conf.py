"""Sphinx configuration of the scheduler-service documentation."""

project = "scheduler-service"
author = "scheduler-service authors"
extensions = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
