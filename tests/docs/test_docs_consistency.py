"""The documented steps match the code: every config key, stack output, URN and file the docs name exists.

Docs are README.md and docs/*.md. Config keys are found as `aichat:<path>` anywhere and as the first
column of the README's config reference table; they are compared with the keys the config models
(components/config.py) define. Outputs are found in `pulumi stack output <name>` commands and in tables
whose first column is headed `output`; they are compared with what the program exports under mocks.
"""

from __future__ import annotations

import re

import pytest

from tools.config_reference import stack_file_keys
from tools.offline import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
# `aichat:` then a key path; a following `:` means a type token (`aichat:jobs:IngestionJob`), not a key.
CONFIG_KEY = re.compile(r"(?<![\w:])aichat:([A-Za-z][\w.]*(?:\[\d+\][\w.]*)*)(?![\w.]*:)")
OUTPUT_COMMAND = re.compile(r"pulumi stack output (?:(?:--stack|-s) \S+ )?([a-zA-Z]\w*)")
URN = re.compile(r"urn:pulumi:[^:\s']+::aichat::[^\s'\"`]+")
# Files (with an extension) inside the repository, e.g. `components/ingestion_job.py`.
REPO_PATH = re.compile(r"`((?:apps|components|tools|policy|tests|docs|\.github|\.ci)/[\w./-]*\.\w+)`")


def doc_texts() -> dict[str, str]:
    return {path.relative_to(REPO_ROOT).as_posix(): path.read_text() for path in DOCS if path.exists()}


def normalize(key: str) -> str:
    """`postgres.extraAdmins[0].objectId` -> `postgres.extraAdmins` (list items are checked by the parser)."""
    return key.split("[", 1)[0].rstrip(".")


def documented_config_keys() -> set[tuple[str, str]]:
    found = {(name, normalize(key)) for name, text in doc_texts().items() for key in CONFIG_KEY.findall(text)}
    readme = doc_texts().get("README.md", "")
    reference = (
        readme.split("## Config reference", 1)[-1].split("\n## ", 1)[0] if "## Config reference" in readme else ""
    )
    for row in re.findall(r"^\| `([^`]+)` \|", reference, flags=re.MULTILINE):
        found.add(("README.md", normalize(row.removeprefix("aichat:"))))
    return found


def documented_outputs() -> set[tuple[str, str]]:
    found = set()
    for name, text in doc_texts().items():
        found |= {(name, output) for output in OUTPUT_COMMAND.findall(text)}
        for table in re.findall(r"^\| output \|.*?(?=^\s*$|\Z)", text, flags=re.MULTILINE | re.DOTALL):
            found |= {(name, output) for output in re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE)}
    return found


def keys_the_models_define() -> set[str]:
    """Every key path the config models define: objects, lists and the keys of list items included."""
    return {normalize(key.path) for key in stack_file_keys()}


def test_the_docs_name_config_keys_and_outputs_at_all():
    assert len(documented_config_keys()) > 20
    assert len(documented_outputs()) > 5


def test_every_documented_config_key_is_one_the_program_reads():
    known = keys_the_models_define()
    unknown = sorted(f"{doc}: aichat:{key}" for doc, key in documented_config_keys() if key not in known)
    assert unknown == [], "documented keys the config parser does not know:\n" + "\n".join(unknown)


def test_every_documented_stack_output_is_exported(program_runs):
    # Some outputs belong to a mode one stack uses (ingressFqdn: ingress mode applicationGateway, prod's).
    exported = {name for run in program_runs.values() for name in run.outputs}
    missing = sorted(f"{doc}: {name}" for doc, name in documented_outputs() if name not in exported)
    assert missing == [], "no stack exports:\n" + "\n".join(missing)


def test_every_output_the_stack_exports_is_documented(program):
    documented = {name for _, name in documented_outputs()}
    assert set(program.outputs) - documented == set()


def test_every_urn_the_docs_give_exists_in_each_stack(program):
    # The engine leaves the root stack out of a top-level resource's type chain; the SDK's mocks keep it.
    urns = {r.urn.replace("::pulumi:pulumi:Stack$", "::", 1) for r in program.resources}
    for doc, text in doc_texts().items():
        for urn in URN.findall(text):
            concrete = re.sub(r"^urn:pulumi:[^:]+::", f"urn:pulumi:{program.stack}::", urn)
            assert concrete in urns, f"{doc} names {urn}, which {program.stack} does not have"


@pytest.mark.parametrize("doc", sorted(doc_texts()))
def test_every_repository_file_the_docs_name_exists(doc):
    missing = [p for p in REPO_PATH.findall(doc_texts()[doc]) if "<" not in p and not (REPO_ROOT / p).exists()]
    assert missing == [], f"{doc} names files that do not exist: {missing}"


def test_the_key_finder_tells_keys_from_type_tokens():
    text = "set `aichat:ingestion.documentPaths[0]` and `aichat:registry.buildAgentPool.count`; not aichat:jobs:IngestionJob"
    assert [normalize(k) for k in CONFIG_KEY.findall(text)] == [
        "ingestion.documentPaths",
        "registry.buildAgentPool.count",
    ]
