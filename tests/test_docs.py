"""The documentation is checked like code.

Why: a README that grows into a lab notebook, a results table typed by hand, or a CLI
reference that misses a new option are all bugs a user meets before any other. These tests
are fast (no mkdocs needed; CI builds the site separately with ``mkdocs build --strict``).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Development history that belongs in CHANGELOG.md, not in a user's documents: "Round 3",
#: "issue 14", "issues #31", "#14" (but not "#!/bin/bash", a "# Heading", an HTML entity such
#: as "&#39;" or a URL fragment), and machine load averages.
HISTORY = re.compile(
    r"\b[Rr]ound \d"
    r"|\b[Ii]ssues? #?\d+"
    r"|(?<![\w&#/])#\d+\b"
    r"|\bload average"
)


def _load_generator() -> ModuleType:
    """scripts/ is not a package: load docs_tables.py by path, once."""
    name = "docs_tables"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "docs_tables.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def user_documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_readme_is_at_most_200_lines() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_keeps_the_test_command_ci_relies_on() -> None:
    assert "python -m pytest -q" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Round 3 on real PTB-XL", True),
        ("as in round 4", True),
        ("the goal of issue 14", True),
        ("its issues #31 and #38", True),
        ("see #14", True),
        ("(#7)", True),
        ("load average 5-9", True),
        ("#!/bin/bash", False),
        ("# Heading", False),
        ("## 2. Steps", False),
        ("the benchmark&#39;s recipe", False),
        ("round(fraction x n)", False),
        ("a page#1 fragment", False),
        ("colour #fff", False),
    ],
)
def test_the_history_pattern(text: str, found: bool) -> None:
    assert bool(HISTORY.search(text)) is found


def test_no_development_history_in_user_documents() -> None:
    hits = []
    for path in user_documents():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if m := HISTORY.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {m.group(0)!r} in {line.strip()[:80]!r}")
    assert not hits, "development history belongs in CHANGELOG.md:\n" + "\n".join(hits)


def test_generated_pages_are_current() -> None:
    """What CI's `python scripts/docs_tables.py --check` checks: results tables, the README's
    headline table, the CLI reference and the model cards match their sources."""
    stale = _load_generator().stale_pages(ROOT)
    assert not stale, f"stale: {stale}; run python scripts/docs_tables.py"


@pytest.fixture
def copy_of_docs(tmp_path: Path) -> Path:
    """The documents and results in a scratch tree, to tamper with."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("*.png"))
    shutil.copytree(ROOT / "results", tmp_path / "results")
    zoo = ROOT / "ecgcli" / "pretrained"  # the shipped models' manifest and cards, which pages follow
    for path in [zoo / "manifest.json", *zoo.glob("*/MODEL_CARD.md")]:
        if path.exists():
            dest = tmp_path / path.relative_to(ROOT)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, dest)
    return tmp_path


def test_a_hand_edited_table_is_named(copy_of_docs: Path) -> None:
    gen = _load_generator()
    assert gen.stale_pages(copy_of_docs, with_cli=False) == []
    page = copy_of_docs / "docs" / "results" / "how-much-do-fewer-leads-cost.md"
    text = page.read_text(encoding="utf-8")
    assert "0.807 ± 0.006" in text
    page.write_text(text.replace("0.807 ± 0.006", "0.817 ± 0.006"), encoding="utf-8")
    assert gen.stale_pages(copy_of_docs, with_cli=False) == ["docs/results/how-much-do-fewer-leads-cost.md"]


def test_a_changed_study_makes_its_pages_stale(copy_of_docs: Path) -> None:
    gen = _load_generator()
    path = copy_of_docs / "results" / "reduced_leads.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["tables"]["auroc"]["rows"][4][1]["mean"] = 0.808
    path.write_text(json.dumps(doc), encoding="utf-8")
    stale = gen.stale_pages(copy_of_docs, with_cli=False)
    # the results page and the headline tables that quote the same cell
    assert {"README.md", "docs/index.md", "docs/results/how-much-do-fewer-leads-cost.md"} <= set(stale)


def test_check_exits_1_and_names_the_page(copy_of_docs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gen = _load_generator()
    assert gen.main(["--check"], root=copy_of_docs) == 0
    page = copy_of_docs / "docs" / "results" / "how-fast-is-it.md"
    page.write_text(page.read_text(encoding="utf-8").replace("| onnx |", "| ONNX |"), encoding="utf-8")
    assert gen.main(["--check"], root=copy_of_docs) == 1
    assert "stale: docs/results/how-fast-is-it.md" in capsys.readouterr().err
    assert gen.main([], root=copy_of_docs) == 0  # rewriting repairs it
    assert gen.main(["--check"], root=copy_of_docs) == 0


def test_an_unknown_table_is_an_error(copy_of_docs: Path) -> None:
    gen = _load_generator()
    page = copy_of_docs / "docs" / "results" / "how-fast-is-it.md"
    page.write_text(
        page.read_text(encoding="utf-8") + "\n<!-- results:speed_pipeline/nope -->\n"
        "<!-- /results:speed_pipeline/nope -->\n",
        encoding="utf-8",
    )
    with pytest.raises(gen.DocsError, match="no table 'nope'"):
        gen.stale_pages(copy_of_docs, with_cli=False)


def test_model_cards_follow_the_manifest(copy_of_docs: Path) -> None:
    """A model the manifest lists gets its card as a page, and a card
    of a model that no longer ships is stale."""
    gen = _load_generator()
    zoo = copy_of_docs / "ecgcli" / "pretrained"
    (zoo / "ptbxl-demo").mkdir(parents=True)
    (zoo / "ptbxl-demo" / "MODEL_CARD.md").write_text("# ptbxl-demo\n\nA card.\n", encoding="utf-8")
    manifest = {
        "format": "ecgcli-pretrained",
        "version": 1,
        "default": "ptbxl-demo",
        "models": {
            "ptbxl-demo": {
                "kind": "classifier",
                "task": "superdiagnostic",
                "summary": "a demo",
                "files": {"card": {"path": "ptbxl-demo/MODEL_CARD.md", "sha256": "", "bytes": 1}},
            }
        },
    }
    (zoo / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert "docs/models/ptbxl-demo.md" in gen.stale_pages(copy_of_docs, with_cli=False)
    p = gen.plan(copy_of_docs, with_cli=False)
    card = p.files[Path("docs/models/ptbxl-demo.md")]
    assert card.endswith("# ptbxl-demo\n\nA card.\n")
    assert "[ptbxl-demo](../models/ptbxl-demo.md)" in p.files[Path("docs/reference/models.md")]
    (zoo / "manifest.json").write_text(json.dumps({**manifest, "models": {}}), encoding="utf-8")
    (copy_of_docs / "docs" / "models").mkdir(exist_ok=True)
    (copy_of_docs / "docs" / "models" / "ptbxl-demo.md").write_text(card, encoding="utf-8")
    stale = gen.stale_pages(copy_of_docs, with_cli=False)
    assert "docs/models/ptbxl-demo.md (no such shipped model)" in stale


def _commands() -> list[tuple[str, list[str]]]:
    """Every command of the Typer app as 'ecg data verify', with its option flags."""
    import typer

    from ecgcli.cli.app import app

    out: list[tuple[str, list[str]]] = []

    def walk(command: object, path: str) -> None:
        flags = [
            o for p in getattr(command, "params", []) for o in getattr(p, "opts", []) if o.startswith("-")
        ]
        out.append((path, flags))
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "ecg")
    return out


def test_the_cli_reference_lists_every_command_and_option() -> None:
    reference = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    commands = _commands()
    assert len(commands) > 15
    missing = [path for path, _ in commands if f"`{path}`" not in reference]
    assert not missing, f"commands missing from docs/reference/cli.md: {missing}"
    missing_flags = [
        f"{path} {flag}"
        for path, flags in commands
        for flag in flags
        if f"`{flag}" not in reference and f" {flag}" not in reference
    ]
    assert not missing_flags, f"options missing from docs/reference/cli.md: {missing_flags}"


def test_studies_are_data_with_their_commands() -> None:
    gen = _load_generator()
    studies = gen.load_studies(ROOT)
    assert len(studies) >= 10
    for name, doc in studies.items():
        if doc.get("kind") == "summary":
            continue
        assert isinstance(doc["archived"], bool) and doc["commands"], name
        assert "commit" in doc, name
        if not doc["archived"]:  # measured for this version: it names the commit it ran at
            assert doc["commit"], name
        assert doc["data"]["version"] == "1.0.1", name
    pages = "\n".join(p.read_text(encoding="utf-8") for p in user_documents())
    unused = [
        f"{s}/{t}"
        for s, doc in studies.items()
        for t in doc.get("tables", {})
        if f"<!-- results:{s}/{t} -->" not in pages
    ]
    assert not unused, f"tables no page shows: {unused}"


@pytest.mark.parametrize(
    ("cell", "text"),
    [
        (0.88, "0.880"),
        (0.8934, "0.8934"),
        ({"mean": 0.873, "sd": 0.005, "ci": [0.867, 0.88]}, "0.873 ± 0.005 [0.867, 0.880]"),
        ({"delta": 0.0073, "ci": [0.0042, 0.0104], "p": 0.003}, "+0.0073 [+0.0042, +0.0104], p = 0.003"),
        ({"delta": -0.061, "ci": [-0.068, -0.055], "p": 1e-5}, "-0.061 [-0.068, -0.055], p = 1e-5"),
        ({"factor": 1.82, "ci": [0.93, 3.7]}, "1.82× [0.93, 3.70]"),
        ({"factor": 1.0, "bound": "lower", "note": "beats it at 1%"}, ">1.00× (beats it at 1%)"),
        ({"value": 0.926, "ci": [0.918, 0.932], "bold": True}, "**0.926 [0.918, 0.932]**"),
    ],
)
def test_cells_read_as_the_study_states_them(cell: object, text: str) -> None:
    assert _load_generator().fmt_cell(cell) == text


def test_the_site_builds_offline() -> None:
    """Material fetches Google Fonts unless told not to; no plugin may need the network."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^\s+font: false", config, re.M)
    plugins = re.search(r"^plugins:\n((?:\s+- .*\n)+)", config, re.M)
    assert plugins and [p.split("#")[0].strip() for p in plugins.group(1).splitlines()] == ["- search"]


def test_every_page_is_in_the_navigation() -> None:
    """mkdocs only mentions a page left out of `nav`; a page nobody can click to is a bug.
    Model cards (docs/models/) are generated and linked from the model-cards page instead."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    in_nav = set(re.findall(r":\s+(\S+\.md)\s*$", config, re.M))
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    missing = sorted(p for p in pages - in_nav if not p.startswith("models/"))
    assert not missing, f"pages missing from mkdocs.yml nav: {missing}"
    assert not in_nav - pages, f"nav entries without a page: {sorted(in_nav - pages)}"


def _study_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("study_from_grid", ROOT / "scripts" / "study_from_grid.py")
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_a_grid_becomes_a_study_the_generator_renders() -> None:
    """scripts/study_from_grid.py: the arms chosen on fold 9, paired differences and factors of
    `ecg compare`, written as a study whose tables the generator renders."""
    import argparse

    from ecgcli import SUPERCLASSES
    from ecgcli.experiments.compare import compare
    from ecgcli.experiments.inputs import Method

    script = _study_script()

    def method(name: str, kind: str, lf: float, val: float, test: list[float]) -> Method:
        scores = [{"auroc": a, "auprc": a - 0.3} for a in test]
        return Method(
            name, kind, lf, "multiseed", "x", list(SUPERCLASSES), {"n": 10}, [42, 52, 62], scores,
            val=[{"auroc": val}] * 3,
        )

    methods = [
        method("a", "supervised", 0.01, 0.70, [0.70, 0.72, 0.74]),
        method("b", "supervised", 0.01, 0.75, [0.75, 0.77, 0.76]),  # scratch's pick at 1% (fold 9)
        method("p", "finetune", 0.01, 0.80, [0.80, 0.81, 0.83]),
        method("a", "supervised", 0.1, 0.85, [0.85, 0.86, 0.87]),
        method("b", "supervised", 0.1, 0.80, [0.90, 0.90, 0.90]),  # best on fold 10, not chosen
        method("p", "finetune", 0.1, 0.88, [0.88, 0.89, 0.89]),
    ]
    comp = compare(methods, arms=["scratch=a", "scratch=b", "byol=p"])
    args = argparse.Namespace(study="s", commit="abc1234", title="t", task="superdiagnostic",
                              command=["ecg multiseed ..."], notes="n")
    doc = script.build_study(comp, args)
    assert [r[:3] for r in doc["tables"]["selection"]["rows"]] == [
        ["1%", "scratch", "b"], ["1%", "byol", "p"], ["10%", "scratch", "a"], ["10%", "byol", "p"]
    ]
    rows = {r[0]: r[1:] for r in doc["tables"]["auroc"]["rows"]}
    assert rows["scratch (baseline)"][0]["mean"] == pytest.approx(0.76)
    delta = rows["paired Δ AUROC [95% t-CI], p"]
    assert delta[0]["delta"] == pytest.approx(0.053) and delta[0]["bold"]
    assert delta[1]["delta"] == pytest.approx(0.027)  # 0.8867 - 0.86: against a, the choice
    assert "label-efficiency factor" in rows
    assert doc["per_seed"]["values"]["byol, 1%"] == [0.80, 0.81, 0.83]
    gen = _load_generator()
    studies = {"s": doc}
    table = gen.render_table(studies, "s", "auroc")
    assert "| byol | 0.813 [" in table and "| **+0.053 [" in table
    assert "ecg multiseed ..." in gen.render_source(studies, "s")


def test_grids_of_other_seeds_merge_when_their_options_agree() -> None:
    from ecgcli import SUPERCLASSES
    from ecgcli.errors import ConfigError
    from ecgcli.experiments.inputs import Method

    script = _study_script()

    def grid(seeds: list[int], lr: float, root: str) -> tuple[list[Method], dict]:
        scores = [{"auroc": 0.8, "auprc": 0.5} for _ in seeds]
        m = Method("a", "supervised", 0.02, "multiseed", "x", list(SUPERCLASSES), {"n": 10}, seeds, scores)
        return [m], {"a": {"lr": lr, "data_root": root}}

    methods = script.merge_grids([grid([42, 52], 0.01, "/a/PTB-XL"), grid([62], 0.01, "/b/PTB-XL")])
    assert len(methods) == 1 and methods[0].seeds == [42, 52, 62] and len(methods[0].scores) == 3
    with pytest.raises(ConfigError, match="a at 2%: the grids differ in lr"):
        script.merge_grids([grid([42], 0.01, "/a"), grid([62], 0.001, "/a")])
    with pytest.raises(ConfigError, match=r"seed\(s\) \[42\] are in two grids"):
        script.merge_grids([grid([42], 0.01, "/a"), grid([42, 62], 0.01, "/a")])


def test_the_leaderboard_runs_become_a_study_the_generator_renders(tmp_path: Path, monkeypatch) -> None:
    """scripts/study_from_leaderboard.py: a row per task with ours beside the published 2020 and
    2026 values; a task not run here refers to the archived 50-epoch cell; each run's cost."""
    from ecgcli.experiments.benchmark import Cell

    spec = importlib.util.spec_from_file_location("study_from_leaderboard",
                                                  ROOT / "scripts" / "study_from_leaderboard.py")
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    empty = Cell(None, None, None, 0, None, None)

    def fake_leaderboard(out: Path, encoders: list[str], tasks: tuple[str, ...]) -> dict:
        table = {e: dict.fromkeys(tasks, empty) for e in encoders}
        if out.name == "e50":
            table["resnet1d_wang"]["all"] = Cell(0.9151, 0.905, 0.925, 1, 0.919, 0.008, (50,))
            table["resnet1d_wang"]["rhythm"] = Cell(0.90, 0.88, 0.92, 1, 0.946, 0.010, (50,))
            table["ensemble wang+s4"] = {**dict.fromkeys(tasks, empty),
                                         "all": Cell(0.93, 0.92, 0.94, 1, None, None, members=2)}
        return table

    monkeypatch.setattr(script, "leaderboard", fake_leaderboard)
    run = tmp_path / "e50" / "all" / "bce_standard_encoder=resnet1d_wang" / "lf1" / "seed42"
    run.mkdir(parents=True)
    history = [{"epoch": e, "seconds": s} for e, s in enumerate([90.0, 100.0, 80.0, 200.0, 95.0], 1)]
    (run / "metrics.json").write_text(json.dumps({
        "history": history, "epochs_run": 5, "best_epoch": 4, "timing": {"threads": 2},
        "class_names": ["A", "B", "C"], "data": {"n_train": 1000},
        "class_frequencies": {"train": [0.01, 0.6, 0.65]},  # 10, 600 and 650 positives
        "test": {"per_class": {"A": {"auroc": 0.7}, "B": {"auroc": 0.9}, "C": {"auroc": 0.8}}},
    }))
    tables = script.build(tmp_path)
    rows = {r[0]: r[1:] for r in tables["auroc"]["rows"]}
    assert rows["all"][0] == {"value": 0.915, "ci": [0.905, 0.925], "bold": True}  # >= 0.919 - 0.008
    assert "bold" not in rows["rhythm"][0]  # 0.900 < 0.946 - 0.010
    assert rows["form"][0] == {"ref": "benchmark_tasks/auroc", "row": 3, "col": 3}
    assert rows["diagnostic"][0] is None and rows["all"][3]["value"] == 0.93
    assert tables["cost"]["rows"] == [["all", "resnet1d_wang", 2, 95, 5, 0.2, "4 of 5"]]
    assert tables["by_prevalence"]["rows"] == [["all, resnet1d_wang (1, 0, 0, 2)", 0.7, None, None, 0.85]]
    gen = _load_generator()
    studies = {**gen.load_studies(ROOT), "lb": {"tables": tables}}
    table = gen.render_table(studies, "lb", "auroc")
    assert "| all | **0.915 [0.905, 0.925]** | 0.919 ± 0.008 |" in table
    assert "| 0.9411 [0.9090, 0.9428] | 0.9493 [0.9162, 0.9511] ECG-CPC |" in table
    assert "| form | 0.874 [0.851, 0.894] |" in table
