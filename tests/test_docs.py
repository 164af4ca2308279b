"""The docs follow the code: every verb has help and a README section, every module is in the
README's module map (and every module there exists), every rule and problem code is documented.

(As sqlite-utils' tests/test_docs.py does; manifests/SCHEMA.md against the schema and the problem
catalogue is tests/test_manifest.py.)
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from migrate_fs.cli.main import COMMANDS, build_parser, main
from migrate_fs.config import CONFIGURABLE, RULES

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "migrate_fs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
VERBS = [command.__name__.rsplit(".", 1)[-1] for command in COMMANDS]


def section(text: str, heading: str) -> str:
    """The body of the "## heading" section, up to the next heading of level 2."""
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no '## {heading}' section"
    return match.group(1)


def tables(text: str) -> list[list[list[str]]]:
    """Every markdown table of the text: its rows (header and separator included) as cells."""
    found: list[list[list[str]]] = []
    previous_was_row = False
    for line in text.splitlines():
        is_row = line.lstrip().startswith("|")
        if is_row:
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not previous_was_row:
                found.append([])
            found[-1].append(cells)
        previous_was_row = is_row
    return found


def first_column(table: list[list[str]], what: str) -> list[str]:
    """The backticked names of a table's first column (its rows after header and separator)."""
    names = []
    for row in table[2:]:
        match = re.fullmatch(r"`([^`]+)`", row[0])
        assert match, f"{what}: first cell {row[0]!r} is not one name in backticks"
        names.append(match.group(1))
    return names


def package_modules() -> set[str]:
    """Every module file of the package as the map names it: ``x.py``, ``pkg/x.py``."""
    return {str(path.relative_to(PACKAGE_DIR)) for path in PACKAGE_DIR.rglob("*.py")
            if path.name not in {"__init__.py", "__main__.py"}}


def test_verbs_are_the_commands_subparsers():
    # the verb names used below are those the parser offers (so the tests are not vacuous)
    subparsers = next(a for a in build_parser()._actions
                      if isinstance(a, argparse._SubParsersAction))
    assert VERBS and list(subparsers.choices) == VERBS


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb, capsys):
    command = COMMANDS[VERBS.index(verb)]
    assert isinstance(command.HELP, str) and command.HELP.strip(), f"{verb}: empty HELP"
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: migrate-fs {verb}"), out
    # argparse wraps the description to the terminal width: compare with whitespace normalized
    assert " ".join(command.HELP.split()) in " ".join(out.split()), out


def test_every_verb_is_in_the_readme():
    missing = [verb for verb in VERBS if f"migrate-fs {verb}" not in README]
    assert missing == [], f"README.md never shows 'migrate-fs VERB' for: {missing}"


def test_module_map_matches_the_package():
    design = section(README, "Design")
    found = tables(design)
    assert found, "README.md's Design section has no table (the module map)"
    mapped = first_column(found[0], "README.md module map")
    missing = sorted(package_modules() - set(mapped))
    stale = sorted(name for name in mapped
                   if not (PACKAGE_DIR / name).exists()
                   or name.endswith("/") != (PACKAGE_DIR / name).is_dir())
    # both lists in one failure, so that one run says all there is to fix
    assert (missing, stale) == ([], []), (
        f"modules missing from README.md's module map (## Design): {missing}; "
        f"modules it names that do not exist under migrate_fs/: {stale}")


def test_problem_codes_are_documented():
    # manifests/SCHEMA.md holds the whole catalogue (checked by tests/test_manifest.py)
    assert "(manifests/SCHEMA.md)" in README, "README.md does not link to manifests/SCHEMA.md"


def test_every_configurable_rule_is_in_the_rules_table():
    rule_tables = [t for t in tables(README) if t and t[0][0] == "rule"]
    assert len(rule_tables) == 1, "README.md needs one table whose first column is 'rule'"
    listed = first_column(rule_tables[0], "README.md rules table")
    assert CONFIGURABLE and listed
    missing = [name for name in CONFIGURABLE if name not in listed]
    assert missing == [], f"configurable rules missing from README.md's rules table: {missing}"
    unknown = [name for name in listed if name not in RULES]
    assert unknown == [], f"README.md's rules table names rules config.RULES lacks: {unknown}"


def test_the_readme_helpers_read_tables():
    # the helpers the tests above rely on find what is there (so those cannot pass vacuously)
    text = ("# t\n\n## Design\n\nintro\n\n| module | does |\n| --- | --- |\n| `a.py` | x |\n"
            "| `pkg/b.py` | y |\n\nprose\n\n| other | t |\n| --- | --- |\n| `c` | z |\n"
            "\n## Next\n\n| rule | d |\n| --- | --- |\n| `r` | w |\n")
    design = section(text, "Design")
    assert "## Next" not in design and "`r`" not in design
    assert [first_column(t, "t") for t in tables(design)] == [["a.py", "pkg/b.py"], ["c"]]
    assert [t[0][0] for t in tables(text)] == ["module", "other", "rule"]
    with pytest.raises(AssertionError, match="not one name in backticks"):
        first_column([["module"], ["---"], ["a.py"]], "t")


def test_the_manifest_examples_run_on_a_real_run(sample_migration, tmp_path, monkeypatch):
    """The pandas and DuckDB examples of "Manifests in pandas and DuckDB", run as a user would
    (in a folder whose manifests/trial is a real run with a trial plan 'strict')."""
    import shutil

    import duckdb

    body = section(README, "Manifests in pandas and DuckDB")
    python = re.search(r"```python\n(.*?)```", body, re.S).group(1)
    sql = re.search(r"```sql\n(.*?)```", body, re.S).group(1)
    shutil.copytree(sample_migration.manifests / sample_migration.run,
                    tmp_path / "manifests" / "trial")
    config = tmp_path / "strict.toml"
    config.write_text('[rules]\nvalue_too_long = "quarantine"\n')
    assert main(["plan", "--run", "trial", "--manifests", str(tmp_path / "manifests"), "--as",
                 "strict", "--config", str(config), "--workers", "1", "--quiet"]) == 0
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(python, "README.md", "exec"), namespace)  # noqa: S102 - the README's code
    assert len(namespace["result"]) == len(sample_migration.stage("result"))
    assert len(namespace["quarantined"]) and len(namespace["changes"])
    differing = namespace["both"][(namespace["both"].action_a != namespace["both"].action_b)
                                  | (namespace["both"].reason_a.fillna("")
                                     != namespace["both"].reason_b.fillna(""))]
    statements = [q for q in sql.split(";") if q.strip()]
    found = [duckdb.sql(q).fetchall() for q in statements]
    assert sum(n for _, _, n in found[0]) == len(sample_migration.stage("result"))
    assert found[1] and found[2]  # blocking codes, changes by rule
    assert len(found[3]) == len(differing) > 0  # the strict profile changes some decisions
