"""Shared test set-up: the helpers in tests/ (golden_fixtures, media, comfy_server) are importable by name.

The pack itself is imported as the installed package `facecontrol`; the checkout root is never put on
sys.path, because its `nodes`/`models` folders would shadow ComfyUI's modules of the same names.
"""
import sys
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))
