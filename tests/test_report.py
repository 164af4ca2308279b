"""migrate-fs report: its numbers are the manifests' (counted here again with pandas), the HTML
is one self-contained file that escapes what hostile files put in the manifests, the sections
of steps not run yet say so, and a real browser shows the same totals."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import Migration

from migrate_fs import manifest
from migrate_fs.audit import report
from migrate_fs.cli.main import main
from migrate_fs.problems import PROBLEM

CHROMIUM = Path("/usr/bin/chromium")
RUN = "t"


@pytest.fixture(scope="module")
def migration(sample_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Migration:
    """A run of its own: tests copy its manifests before adding verify or reconcile tables."""
    done = Migration(sample_export, tmp_path_factory.mktemp("report_run"), run=RUN)
    assert done.exit_code == 0
    return done


def copy_run(migration: Migration, tmp_path: Path) -> Path:
    manifests = tmp_path / "m"
    shutil.copytree(manifest.run_dir(migration.manifests, RUN), manifests / RUN)
    return manifests


class Page(HTMLParser):
    """The attributes of every element, and the text of each element with an id."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[dict[str, str]] = []
        self.tags: set[str] = set()
        self.text: dict[str, str] = {}
        self.style = ""
        self._open: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        self.elements.append(found)
        self.tags.add(tag)
        self._open = "style" if tag == "style" else found.get("id")

    def handle_data(self, data: str) -> None:
        if self._open == "style":
            self.style += data
        elif self._open:
            self.text[self._open] = self.text.get(self._open, "") + data

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def value(self, ident: str) -> int:
        return int(next(e for e in self.elements if e.get("id") == ident)["data-value"])

    def rows(self, attribute: str, *keys: str) -> dict[tuple[str, ...], int]:
        return {(e[attribute], *(e[k] for k in keys)): int(e["data-objects"])
                for e in self.elements if attribute in e}


def expected_totals(stage_folder: Path) -> dict[str, Any]:
    """The totals counted independently, with pandas over the stage's Parquet dataset."""
    df = pd.read_parquet(stage_folder)
    status = df["status"] if "status" in df else pd.Series([None] * len(df))
    failed = (status == "failed").to_numpy()
    problems = df[["locator", "problems"]].explode("problems").dropna(subset=["problems"])
    pairs = {(p["code"], p["severity"] or "") for p in problems["problems"]}
    per_pair = {pair: int(problems.assign(
        hit=[(p["code"], p["severity"] or "") == pair for p in problems["problems"]])
        .groupby("locator")["hit"].any().sum()) for pair in pairs}
    return {
        "objects": len(df), "size": int(df["size"].sum()),
        "output_size": int(df["output_size"].fillna(0).sum()) if "output_size" in df else 0,
        "migrate": int(((df["action"] == "migrate").to_numpy() & ~failed).sum()),
        "quarantine": int((df["action"] == "quarantine").sum()),
        "skip": int(df["action"].isin(["skip", "skip_duplicate"]).sum()),
        "failed": int(failed.sum()),
        "by_action": {(a, r): int(n) for (a, r), n in df.fillna({"reason": ""}).groupby(
            ["action", "reason"]).size().items()},
        "problems": per_pair,
        "modality": df["modality"].fillna("(none)").value_counts().to_dict(),
        "year": df["study_date"].str.extract(report.YEAR)["year"].where(
            df["study_date"].notna(), "(none)").fillna("(not a date)").value_counts().to_dict(),
    }


def check_page(page: Page, expected: dict[str, Any], *, result: bool = True) -> None:
    """The totals the page shows (cards, table) are the expected ones."""
    for key in ("objects", "size", "migrate", "quarantine", "skip"):
        assert page.value(f"total-{key}") == expected[key], key
    assert page.text["total-objects"] == f"{expected['objects']:,}"
    assert page.value("sum-objects") == expected["objects"]
    assert page.value("sum-size") == expected["size"]
    if result:
        assert page.value("total-failed") == expected["failed"]
        assert page.value("total-output-size") == page.value("sum-output-size") \
            == expected["output_size"]
    assert page.rows("data-action", "data-reason") == expected["by_action"]
    assert page.rows("data-problem-code", "data-severity") == expected["problems"]


def render(manifests: Path, tmp_path: Path, *extra: str) -> tuple[Path, str]:
    path = tmp_path / "report.html"
    assert main(["report", "--run", RUN, "--manifests", str(manifests), "--html", str(path),
                 *extra]) == 0
    return path, path.read_text(encoding="utf-8")


def assert_self_contained(text: str) -> None:
    """Nothing the page could load or run: no element that fetches or scripts, no attribute
    that points anywhere or handles an event, no url() or @import in the style."""
    page = Page(text)
    assert not page.tags & {"script", "link", "img", "iframe", "object", "embed", "base",
                            "image", "use", "foreignobject", "form", "a"}
    for element in page.elements:
        assert not {k for k in element if k in {"src", "href", "xlink:href", "srcset", "action",
                                                "background"} or k.startswith("on")}, element
    assert "url(" not in page.style and "@import" not in page.style
    assert not re.search(r"https?://", text.replace("&lt;", "<"))
    assert "default-src 'none'" in text  # and the page forbids loading anything anyway


def test_report_counts_equal_the_manifest(migration: Migration, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    path, text = render(migration.manifests, tmp_path, "--json")
    found = json.loads(capsys.readouterr().out)
    assert found["html"] == str(path) and found["stage"] == "result"
    expected = expected_totals(manifest.stage_dir(migration.manifests, RUN, "result"))
    check_page(Page(text), expected)
    assert_self_contained(text)
    # the JSON holds the same numbers
    assert found["total"] == {"objects": expected["objects"], "size": expected["size"],
                              "output_size": expected["output_size"]}
    assert {b["label"]: b["amount"]["objects"] for b in found["by_modality"]} \
        == expected["modality"]
    assert {b["label"]: b["amount"]["objects"] for b in found["by_year"]} == expected["year"]
    assert [b["label"] for b in found["by_year"]] == sorted(
        expected["year"], key=lambda y: (y.startswith("("), y))
    problems = {(p["code"], p["severity"] or ""): p for p in found["problems"]}
    assert {k: p["objects"] for k, p in problems.items()} == expected["problems"]
    for p in problems.values():  # up to three different objects, each with that problem
        assert 1 <= len(p["examples"]) == min(3, p["objects"])
        assert len({e["locator"] for e in p["examples"]}) == len(p["examples"])
    rows = {r["locator"]: r for r in migration.stage("result")}
    for p in problems.values():
        for e in p["examples"]:
            assert {"code": p["code"], "message": e["message"], "severity": p["severity"]} \
                in rows[e["locator"]]["problems"]
    # verify and reconcile have not run: their sections say what to run
    page = Page(text)
    assert page.text["verify-missing"] == f"not run yet: migrate-fs verify --run {RUN}"
    assert page.text["reconcile-missing"] == f"not run yet: migrate-fs reconcile --run {RUN}"
    assert found["verification"] is None and found["reconciliation"] is None
    # throughput: each stage's parts, and the write's rate from run.json's figures
    timings = {t["stage"]: t for t in found["timings"]}
    assert set(timings) == {"inventory", "plan", "result"}
    assert all(t["objects"] == expected["objects"] == t["points"][-1][1]
               for t in timings.values())
    info = manifest.read_run_info(migration.manifests, RUN)["write"]
    assert timings["result"]["per_minute"] == pytest.approx(
        info["objects"] / info["seconds"] * 60)


def test_the_text_form_and_the_default_path(migration: Migration,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["report", "--run", RUN, "--manifests", str(migration.manifests)]) == 0
    out = capsys.readouterr().out
    path = manifest.run_dir(migration.manifests, RUN) / "report" / "report.html"
    assert f"html: {path}" in out and path.read_text().startswith("<!DOCTYPE html>")
    assert f"{len(migration.stage('result'))} source objects" in out
    path.unlink()


def test_usage_and_run_errors(migration: Migration, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["report", "--run", "nothing", "--manifests", str(tmp_path)]) == 1
    assert "no plan manifest for run 'nothing'" in capsys.readouterr().err
    assert main(["report", "--run", RUN, "--manifests", str(migration.manifests),
                 "--html", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_a_test_migration_reports_its_plan(migration: Migration, tmp_path: Path) -> None:
    manifests = copy_run(migration, tmp_path)
    shutil.rmtree(manifest.stage_dir(manifests, RUN, "result"))
    _, text = render(manifests, tmp_path)
    page = Page(text)
    check_page(page, expected_totals(manifest.stage_dir(manifests, RUN, "plan")), result=False)
    assert any(e.get("id") == "plan-only" for e in page.elements)
    assert "total-failed" not in text


def hostile_row(i: int, **extra: Any) -> dict[str, Any]:
    return {"object_id": f"{i:024x}", "locator": f"/x/<script>alert({i})</script>\x07",
            "size": 10, "kind": "part10", "action": "quarantine", "reason": "not_dicom",
            "status": "not_written", "modality": "<b>MR</b>", "study_date": "1/2/2001",
            "problems": [{"code": "not_dicom", "severity": "blocking",
                          "message": "<img src=x onerror=alert(1)> \x00 & 'q' \"dq\""}],
            **extra}


def test_hostile_text_is_escaped(tmp_path: Path) -> None:
    manifests = tmp_path / "m"
    for stage in ("plan", "result"):
        manifest.write_part(manifest.stage_dir(manifests, RUN, stage), "part-0",
                            [hostile_row(i) for i in range(4)], stage)
    _, text = render(manifests, tmp_path)
    assert "<script>alert" not in text and "<img" not in text and "<b>MR" not in text
    assert "&lt;script&gt;alert(0)&lt;/script&gt;\\x07" in text
    assert "&lt;img src=x onerror=alert(1)&gt; \\x00 &amp; &#x27;q&#x27; &quot;dq&quot;" in text
    assert "&lt;b&gt;MR&lt;/b&gt;" in text
    assert_self_contained(text)
    # a lone surrogate or a huge value cannot break the file either
    assert report._text("a\ud800b") == "a\\ud800b"
    assert len(report._text("x" * 100_000)) <= 401


def test_parts_are_read_one_by_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three parts, counted part by part with the columns the report needs only; examples
    are the first objects in part order; a result that holds fewer objects than the plan is
    an unfinished write; distinct modalities are capped."""
    manifests = tmp_path / "m"
    rows = [hostile_row(i, locator=f"/x/{i}", modality=f"M{i % 6}",
                        study_date=None if i % 7 == 0 else f"{1990 + i % 3}0101")
            for i in range(30)]
    for n in range(3):
        manifest.write_part(manifest.stage_dir(manifests, RUN, "result"), f"part-{n}",
                            rows[n * 10:(n + 1) * 10], "result")
    manifest.write_part(manifest.stage_dir(manifests, RUN, "plan"), "part-0",
                        rows + [hostile_row(99)], "plan")
    asked: list[list[str] | None] = []
    iter_stage = manifest.iter_stage

    def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append(args[3] if len(args) > 3 else kwargs.get("columns"))
        return iter_stage(*args, **kwargs)

    def whole(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the report read a whole stage")

    monkeypatch.setattr(manifest, "iter_stage", spy)
    monkeypatch.setattr(manifest, "read_stage", whole)
    monkeypatch.setattr(report, "MAX_LABELS", 4)
    found = report.collect(manifests, RUN)
    assert asked and all(c and "elements" not in c and "changes" not in c for c in asked)
    assert found.total.objects == 30 and found.planned == 31
    assert "write-unfinished" in report.render_html(found)
    [problem] = found.problems
    assert problem.objects == 30
    assert [e.locator for e in problem.examples] == ["/x/0", "/x/1", "/x/2"]
    modalities = {b.label: b.amount.objects for b in found.by_modality}
    assert len(modalities) == 5 and modalities["(other)"] == 10  # 4 of 6 kept, 2 x 5 others
    assert sum(modalities.values()) == 30
    years = {b.label: b.amount.objects for b in found.by_year}
    assert years == {"1990": 8, "1991": 8, "1992": 9, "(none)": 5}
    assert [t.parts for t in found.timings] == [1, 3]


def write_side_tables(manifests: Path) -> None:
    """verify, verify_strays and reconcile tables of the shape those steps write."""
    folder = manifest.run_dir(manifests, RUN)
    result = manifest.read_stage(manifests, RUN, "result", ["object_id", "locator"])
    n = result.num_rows
    failed = {1: [("hash_mismatch", "output sha256 differs")],
              2: [("hash_mismatch", "output sha256 differs"), ("missing", "no file")],
              3: [("pixel_data", "<b>pixels</b> differ")]}
    problems = [[{"code": c, "message": m, "severity": "blocking"} for c, m in failed.get(i, [])]
                for i in range(n)]
    (folder / "verify").mkdir()
    pq.write_table(pa.table({
        "object_id": result.column("object_id"), "locator": result.column("locator"),
        "verify_status": ["failed" if i in failed else "ok" for i in range(n)],
        "problems": pa.array(problems, pa.list_(PROBLEM))}), folder / "verify" / "part-0.parquet")
    pq.write_table(pa.table({"path": ["a/x.tmp", "b/<y>.dcm", "c/z"], "size": [5, 7, 9],
                             "kind": ["temporary", "unknown_dcm", "other"]}),
                   folder / "verify_strays.parquet")
    (folder / "reconcile").mkdir()
    pq.write_table(pa.table({
        "study_instance_uid": ["1.2.1", "1.2.2", "1.2.3", "1.2.4", "1.2.5", "1.2.6"],
        "status": ["ok", "ok", "missing", "orphan", "count_mismatch", "incomplete"],
        "expected_instances": [3, 2, 4, 0, 5, 6], "found_instances": [3, 2, 0, 2, 4, 6],
        "migrated_instances": [3, 2, 0, 2, 4, 5],
        "quarantined_instances": [0, 0, 0, 0, 0, 1]}), folder / "reconcile" / "studies.parquet")


def test_verify_and_reconcile_sections(migration: Migration, tmp_path: Path) -> None:
    manifests = copy_run(migration, tmp_path)
    write_side_tables(manifests)
    _, text = render(manifests, tmp_path)
    page = Page(text)
    assert "verify-missing" not in page.text and "reconcile-missing" not in page.text
    n = len(migration.stage("result"))
    assert {e["data-verify-status"]: int(e["data-value"]) for e in page.elements
            if "data-verify-status" in e} == {"ok": n - 3, "failed": 3}
    assert page.rows("data-verify-code", "data-severity") == {
        ("hash_mismatch", "blocking"): 2, ("missing", "blocking"): 1,
        ("pixel_data", "blocking"): 1}
    assert page.value("verify-strays") == 3 and "b/&lt;y&gt;.dcm" in text
    assert "&lt;b&gt;pixels&lt;/b&gt; differ" in text
    assert {e["data-study-status"]: int(e["data-value"]) for e in page.elements
            if "data-study-status" in e} == {"ok": 2, "missing": 1, "orphan": 1,
                                             "count_mismatch": 1, "incomplete": 1}
    assert {e["data-instances"]: int(e["data-value"]) for e in page.elements
            if "data-instances" in e} == {"expected_instances": 20, "found_instances": 17,
                                          "migrated_instances": 16, "quarantined_instances": 1}
    for uid in ("1.2.3", "1.2.4", "1.2.5", "1.2.6"):
        assert f">{uid}<" in text
    assert ">1.2.1<" not in text  # studies that are ok are not listed
    assert_self_contained(text)


def chromium(profile: Path, page: Path, *args: str) -> str:
    done = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True, text=True, timeout=180, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent: install the "
                    "Debian package chromium (.ci/run does) to open the report in a browser")
def test_a_browser_shows_the_manifest_totals(migration: Migration, tmp_path: Path) -> None:
    manifests = copy_run(migration, tmp_path)
    write_side_tables(manifests)
    path, _ = render(manifests, tmp_path)
    profile = tmp_path / "chromium-profile"
    dom = chromium(profile, path, "--dump-dom")
    assert "<html" in dom[:100] and 'id="totals"' in dom
    check_page(Page(dom), expected_totals(manifest.stage_dir(manifests, RUN, "result")))
    shot = tmp_path / "report.png"
    chromium(profile, path, f"--screenshot={shot}", "--window-size=1280,2400")
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (1280, 2400)
    assert len(png) > 50_000  # a page drawn, not a blank one (that compresses to a few KB)
