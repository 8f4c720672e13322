"""The store layout: every path under a store from one place, and run names mapped one-to-one to folders."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kdtui.config.layout import StoreLayout, run_folder_name
from kdtui.config.names import RUN_NAME, check_run_name
from tests.helpers import REPO

RUN_NAMES = st.from_regex(RUN_NAME, fullmatch=True).filter(
    lambda name: ".." not in name.split("/") and "//" not in name and not name.endswith("/"))


def test_run_names_that_looked_alike_get_their_own_folders(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path)
    names = ["a/b", "a__b", "a:b", "a_b", "a%2Fb".replace("%", "_"), "demo/SmolLM2/plain+lr-0.1"]
    folders = [layout.run_folder(check_run_name(n)) for n in names]
    assert len(set(folders)) == len(names)
    assert all(f.parent == layout.distill_runs and len(f.relative_to(layout.distill_runs).parts) == 1 for f in folders)
    assert run_folder_name("base") == "base" and run_folder_name("a+b") == "a+b"  # plain names stay readable


@given(RUN_NAMES, RUN_NAMES)
def test_the_folder_mapping_is_one_to_one_and_reads_back(a: str, b: str) -> None:
    fa, fb = run_folder_name(a), run_folder_name(b)
    assert "/" not in fa and fa not in ("", ".", "..")
    assert StoreLayout.run_of(fa) == a
    assert (fa == fb) == (a == b)


def test_an_older_stores_folder_is_found_only_by_the_run_it_names(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path)
    legacy = layout.distill_runs / "exp__base"
    legacy.mkdir(parents=True)
    (legacy / "kdtui.json").write_text(json.dumps({"run": "exp/base"}))
    assert layout.run_folder("exp/base") == legacy
    assert layout.trained_output("exp/base", lora=True) == legacy / "adapter"
    assert layout.run_folder("exp:base") == layout.distill_runs / "exp%3Abase"  # not its folder
    (legacy / "kdtui.json").write_text(json.dumps({"run": "exp:base"}))
    assert layout.run_folder("exp/base") == layout.distill_runs / "exp%2Fbase"
    fresh = layout.distill_runs / "exp%2Fbase"
    fresh.mkdir()
    (legacy / "kdtui.json").write_text(json.dumps({"run": "exp/base"}))
    assert layout.run_folder("exp/base") == fresh  # a folder in this layout wins


def test_no_module_builds_a_store_path_of_its_own() -> None:
    """Every path under the store comes from StoreLayout: no other module joins a store folder's name."""
    names = "captures|distill|models|downloads|exports|screenshots|worker\\.lock|kdtui\\.duckdb|sql_history\\.jsonl"
    joined = re.compile(rf'/ "({names})"')
    offenders = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
                 for path in sorted((REPO / "kdtui").rglob("*.py")) if path.name != "layout.py"
                 for number, line in enumerate(path.read_text().splitlines(), 1) if joined.search(line)]
    assert not offenders, "\n".join(offenders)
