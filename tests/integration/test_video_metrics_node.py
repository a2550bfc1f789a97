"""Face Video Metrics in a real server: both SSIM forms, LPIPS from the metrics model folder (filled weights in the
lpips package's layout), dlib's chip identity; identical sequences score as identical."""

import json
import re

import pytest

pytestmark = pytest.mark.integration


def metrics_prompt(result_source: list) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}},
        "2": {
            "class_type": "ImageScale",
            "inputs": {"image": ["1", 0], "upscale_method": "area", "width": 256, "height": 256, "crop": "center"},
        },
        "3": {"class_type": "RepeatImageBatch", "inputs": {"image": ["2", 0], "amount": 2}},
        "4": {"class_type": "ImageBlur", "inputs": {"image": ["3", 0], "blur_radius": 3, "sigma": 2.0}},
        "5": {
            "class_type": "FaceControlVideoMetrics",
            "inputs": {"original": ["3", 0], "result": result_source, "identity": "dlib"},
        },
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}},
    }


def report_of(comfy, prompt) -> str:
    return json.dumps(comfy.run(prompt)["outputs"]["6"])


def number(report: str, pattern: str) -> float:
    match = re.search(pattern, report)
    assert match, (pattern, report)
    return float(match.group(1))


def test_video_metrics_node_on_identical_and_blurred_frames(comfy):
    same = report_of(comfy, metrics_prompt(["3", 0]))
    assert number(same, r"SSIM ([\d.]+) \(authors' zero-padded\)") == 1.0
    assert number(same, r"LPIPS ([\d.]+)") == 0.0
    assert number(same, r"TL-ID ([\d.]+)") == 1.0 and number(same, r"TG-ID ([\d.]+)") == 1.0
    assert "dlib's 150 px chip" in same
    blurred = report_of(comfy, metrics_prompt(["4", 0]))
    zero = number(blurred, r"SSIM ([\d.]+) \(authors' zero-padded\)")
    valid = number(blurred, r", ([\d.]+) \(valid\)")
    assert 0 < valid < zero < 1
    assert number(blurred, r"LPIPS ([\d.]+)") > 0 and number(blurred, r"PSNR ([\d.]+) dB") < 60
