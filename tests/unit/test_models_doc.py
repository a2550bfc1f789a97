"""docs/MODELS.md's file table is what model_manifest.json gives (regenerate: python scripts/make_models_doc.py)."""

from make_models_doc import BEGIN, DOC, render


def test_models_table_is_current():
    current = DOC.read_text()
    assert render(current) == current, "docs/MODELS.md is out of date: run python scripts/make_models_doc.py"


def test_models_table_states_research_only_licences():
    text = DOC.read_text().split(BEGIN, 1)[1]
    for name in ("insightface_glint360k.pth", "BFM_model_front.mat", "79999_iter.pth", "ffhq.pkl"):
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}`"))
        assert "non-commercial / research only" in row, name
