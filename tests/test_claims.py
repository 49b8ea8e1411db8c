"""No known-wrong sentence about AWS anywhere a learner reads: notebooks, docs, the README, the package.

Each `WrongClaim` is a regex for a sentence the kit once got wrong (or that articles get wrong) and
the fact that replaces it (docs/aws-behaviour.md). A claim quoted in order to refute it is fine:
`allow` names the words that label it (claim, does not exist, not valid, ...), looked for in the
hit's block, which is its paragraph in a text file, or its cell and the cell before it in a
notebook (an experiment's claim is quoted in the markdown above it). Add a claim by adding one
`WrongClaim`; a file that is known to fail today is listed in KNOWN_WRONG, so it is an expected
failure until it is fixed (strict: the fix then asks for the entry to go).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABELLED = (
    r"claim|claimed|articles?|wrong|myth|does not exist|do not exist|doesn.t exist|none of these exist|no such"
    r"|not an? sqsd option"
)


@dataclasses.dataclass(frozen=True)
class WrongClaim:
    """A sentence that is wrong, the fact instead, and the words that show it is quoted to refute it."""

    name: str
    pattern: str
    fact: str
    allow: str | None = None

    def matches(self, line: str) -> bool:
        """Return True when the line says the wrong thing (before looking at its block)."""
        return re.search(self.pattern, line, re.IGNORECASE) is not None

    def allowed(self, block: str) -> bool:
        """Return True when the block labels the claim as a claim (or as not valid)."""
        return self.allow is not None and re.search(self.allow, block, re.IGNORECASE) is not None


CLAIMS = (
    WrongClaim(
        "maxReceiveCount has no default",
        r"no default for maxReceiveCount|\bSQS (itself )?(has|documents) no default",
        "SQS uses maxReceiveCount 10 when it is left out (docs/aws-behaviour.md#dlq-max-receive-default)",
    ),
    WrongClaim(
        "maxReceiveCount = 3 on AWS",
        r"(?=.*\bon AWS\b).*maxReceiveCount ?= ?3\b",
        "on AWS maxReceiveCount is MaxRetries, default 10; 3 is only the lab profile "
        "(docs/aws-behaviour.md#dlq-max-retries)",
    ),
    WrongClaim(
        "gone after a 202",
        r"the message is already gone",
        "after a 202 sqsd does not delete: the message comes back (docs/aws-behaviour.md#status-202-redelivered)",
    ),
    WrongClaim(
        "QueueDepth as a MeasureName",
        r"QueueDepth",
        "QueueDepth is not a MeasureName of aws:autoscaling:trigger (docs/aws-behaviour.md#claim-queuedepth)",
        allow=rf"{LABELLED}|not (a )?valid|invalid|not an accepted|rejects|no SQS metric|accepted: False|on it\?",
    ),
    WrongClaim(
        "options that do not exist",
        r"MaxConcurrentAPIConnections|MimetypeJSON",
        "the options are HttpConnections and MimeType (docs/aws-behaviour.md#opt-names-invalid)",
        allow=rf"{LABELLED}|does not know|not (a )?real",
    ),
    WrongClaim(
        "eb-engine.log as sqsd's log",
        r"eb-engine\.log",
        "sqsd logs to /var/log/aws-sqsd/default.log (docs/aws-behaviour.md#log-file)",
        allow=rf"{LABELLED}|aws-sqsd/default\.log|deploy",
    ),
    WrongClaim(
        "256 KiB message limit",
        r"262[,_ ]?144|256 ?KiB|256 ?KB\b",
        "an SQS message may be up to 1 MiB since 2025 (docs/aws-behaviour.md#sqs-message-size)",
        allow=r"raised from|used to|until 2025|before 2025|\bwas\b|\bold\b|former|previous",
    ),
)

#: Files that say a wrong thing today, and what; each is an expected failure until it is fixed.
KNOWN_WRONG = {}


# -- reading files as (where, line, block) -----------------------------------------------------------------
def scanned_files() -> list[Path]:
    """Return every file a learner or a contributor reads as course text, in a stable order."""
    files = [*sorted((ROOT / "solutions").glob("*.ipynb")), *sorted((ROOT / "notebooks").glob("*.ipynb"))]
    files += [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    files += sorted((ROOT / "labapp").rglob("*.py"))
    return files


def _paragraphs(lines: list[str]) -> Iterator[tuple[int, str, str]]:
    """Yield (line number, line, its paragraph) for a text: a paragraph ends at a blank line."""
    start = 0
    for end in [*(n for n, line in enumerate(lines) if not line.strip()), len(lines)]:
        block = "\n".join(lines[start:end])
        for number in range(start, end):
            yield number + 1, lines[number], block
        start = end + 1


def _cell_text(cell: dict[str, object]) -> tuple[list[str], list[str]]:
    source = cell.get("source", "")
    text = "".join(source) if isinstance(source, list) else str(source)
    outputs: list[str] = []
    for output in cell.get("outputs", []) or []:  # type: ignore[attr-defined]
        value = output.get("text") or output.get("data", {}).get("text/plain", "")
        outputs += ("".join(value) if isinstance(value, list) else str(value)).splitlines()
    return text.splitlines(), outputs


def lines_of(path: Path) -> Iterator[tuple[str, str, str]]:
    """Yield (where, line, block) for every line of a file; notebook cells with their outputs."""
    if path.suffix != ".ipynb":
        for number, line, block in _paragraphs(path.read_text(encoding="utf-8").splitlines()):
            yield f"line {number}", line, block
        return
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    previous = ""
    for index, cell in enumerate(cells, start=1):
        source, outputs = _cell_text(cell)
        block = "\n".join([previous, *source, *outputs])
        for number, line in enumerate(source, start=1):
            yield f"cell {index} line {number}", line, block
        for number, line in enumerate(outputs, start=1):
            yield f"cell {index} output line {number}", line, block
        previous = "\n".join(source)


def findings(path: Path) -> list[str]:
    """Return one line per wrong sentence in a file: where, the claim, the fact, the text."""
    found = []
    for where, line, block in lines_of(path):
        for claim in CLAIMS:
            if claim.matches(line) and not claim.allowed(block):
                found.append(f"{where}: {claim.name} ({claim.fact}): {line.strip()[:160]}")
    return found


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _cases() -> list[object]:
    cases: list[object] = []
    for path in scanned_files():
        name = _relative(path)
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_WRONG[name])] if name in KNOWN_WRONG else []
        cases.append(pytest.param(path, id=name, marks=marks))
    return cases


@pytest.mark.parametrize("path", _cases())
def test_no_known_wrong_sentence(path: Path) -> None:
    found = findings(path)
    assert not found, f"{_relative(path)} says what is not so:\n" + "\n".join(found)


def test_every_known_wrong_file_exists() -> None:
    missing = sorted(name for name in KNOWN_WRONG if not (ROOT / name).exists())
    assert not missing, f"KNOWN_WRONG names files that are gone: {missing}"


# -- the claims themselves --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sentence",
    [
        "SQS documents no default for maxReceiveCount.",
        "SQS itself has no default.",
        "dead-letter queue  lab-00-dlq  <- on AWS: RedrivePolicy maxReceiveCount=3",
        "if the instance stops, that work is lost: the message is already gone.",
        "Scale on MeasureName: QueueDepth.",
        "Set MaxConcurrentAPIConnections: 1 for one message at a time.",
        "Set MimetypeJSON to true.",
        "sqsd writes its log to /var/log/eb-engine.log.",
        "An SQS message holds at most 256 KiB (262,144 bytes).",
    ],
)
def test_each_wrong_sentence_is_caught(sentence: str, tmp_path: Path) -> None:
    text = tmp_path / "text.md"
    text.write_text(sentence + "\n", encoding="utf-8")
    assert findings(text), sentence


@pytest.mark.parametrize(
    "paragraph",
    [
        "> **Claim** (seen in articles): set `MeasureName: QueueDepth`.",
        "`QueueDepth` is not a valid value.",
        "- `HttpConnections` sets the concurrency. `MaxConcurrentAPIConnections` does not exist.",
        "# Names that articles use but EB does not know\nWRONG = {'MimetypeJSON': 'MimeType'}",
        "The daemon logs to `/var/log/aws-sqsd/default.log`, not `eb-engine.log`.",
        "A message may be up to 1 MiB, raised from 256 KiB in 2025.",
    ],
)
def test_a_claim_quoted_to_refute_it_passes(paragraph: str, tmp_path: Path) -> None:
    text = tmp_path / "text.md"
    text.write_text(paragraph + "\n", encoding="utf-8")
    assert findings(text) == []


def test_a_notebook_hit_names_its_cell_and_line(tmp_path: Path) -> None:
    notebook = {"cells": [{"cell_type": "markdown", "source": ["Intro\n", "SQS has no default.\n"]}]}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    assert findings(path)[0].startswith("cell 1 line 2: maxReceiveCount has no default")
