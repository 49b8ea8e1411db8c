"""docker/Dockerfile against its build context: every COPY source is sent, secrets are not, and the
image holds what the notebooks read at run time.

There is no Docker engine to build with, so this reads the files the way BuildKit does: the
Dockerfile's COPY/ADD sources, and the ignore file's rules with Docker's semantics (moby's
patternmatcher: in order, the last matching rule wins, `!` re-includes, and a rule that matches a
parent folder matches everything under it).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"


# -- the Dockerfile ----------------------------------------------------------------------------------
def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined and comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # also inside a continuation, as Docker does
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        if whole:
            keyword, _, args = whole.partition(" ")
            found.append((keyword.upper(), args.strip()))
    if pending.strip():
        keyword, _, args = pending.strip().partition(" ")
        found.append((keyword.upper(), args.strip()))
    return found


@dataclass(frozen=True)
class Copy:
    keyword: str
    flags: tuple[str, ...]
    sources: tuple[str, ...]
    dest: str
    workdir: str

    @property
    def from_stage(self) -> bool:
        return any(flag.startswith("--from=") for flag in self.flags)

    @property
    def dest_path(self) -> str:
        """The destination folder or file, absolute, as the image will have it."""
        return posixpath.normpath(posixpath.join(self.workdir, self.dest))

    def target_of(self, source: str) -> str:
        """Where one source lands: a folder's contents go into dest, a file into dest/ if dest is a folder."""
        if (ROOT / source).is_dir() or not (self.dest.endswith("/") or len(self.sources) > 1):
            return self.dest_path
        return posixpath.join(self.dest_path, posixpath.basename(source.rstrip("/")))


def parse_copy(keyword: str, args: str, workdir: str = "/") -> Copy:
    """One COPY or ADD: leading --flags, then sources and a destination (plain or JSON-array form)."""
    flags = []
    rest = args.strip()
    while match := re.match(r"(--\S+)\s+", rest):
        flags.append(match.group(1))
        rest = rest[match.end() :]
    parts = json.loads(rest) if rest.startswith("[") else rest.split()
    assert len(parts) >= 2, f"{keyword} {args}: needs a source and a destination"
    return Copy(keyword, tuple(flags), tuple(parts[:-1]), parts[-1], workdir)


def copies(dockerfile: Path) -> list[Copy]:
    """Every COPY and ADD, each with the WORKDIR in force at that point."""
    workdir, found = "/", []
    for keyword, args in instructions(dockerfile.read_text()):
        if keyword == "FROM":
            workdir = "/"
        elif keyword == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir, args))
        elif keyword in ("COPY", "ADD"):
            found.append(parse_copy(keyword, args, workdir))
    return found


def env_vars(dockerfile: Path) -> dict[str, str]:
    """ENV key=value pairs (the form this Dockerfile uses)."""
    found: dict[str, str] = {}
    for keyword, args in instructions(dockerfile.read_text()):
        if keyword == "ENV":
            for pair in args.split():
                key, sep, value = pair.partition("=")
                assert sep, f"ENV {args}: use the key=value form"
                found[key] = value.strip("\"'")
    return found


# -- the ignore file ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    pattern: str
    exclusion: bool  # a `!` rule: it re-includes what it matches
    regex: re.Pattern[str]


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: `*` and `?` stay within one path segment, `**` crosses them."""
    out, i = "^", 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
            out += ".*" if i >= len(pattern) else "(.*/)?"
            continue
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch in "[]":
            out += ch
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


def read_rules(text: str) -> list[Rule]:
    rules = []
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        line = raw.strip()
        if not line:
            continue
        exclusion = line.startswith("!")
        pattern = line[1:].strip() if exclusion else line
        pattern = posixpath.normpath(pattern)
        if len(pattern) > 1 and pattern.startswith("/"):
            pattern = pattern[1:]  # patterns are relative to the context root
        rules.append(Rule(pattern, exclusion, compile_pattern(pattern)))
    return rules


def excluded(path: str, rules: list[Rule]) -> bool:
    """True when the context leaves out this path (relative, with /)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for rule in rules:
        if any(rule.regex.match(candidate) for candidate in candidates):
            result = not rule.exclusion
    return result


def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


# -- the repository ----------------------------------------------------------------------------------
def build() -> tuple[Path, Path, list[Rule]]:
    """The context, the Dockerfile and its ignore rules, as docker-compose.yml builds the lab's image."""
    spec = services()["worker"]["build"]
    context = (COMPOSE.parent / spec["context"]).resolve()
    dockerfile = (context / spec.get("dockerfile", "Dockerfile")).resolve()
    # BuildKit prefers <Dockerfile>.dockerignore next to the Dockerfile over the context's .dockerignore.
    for candidate in (dockerfile.with_name(dockerfile.name + ".dockerignore"), context / ".dockerignore"):
        if candidate.is_file():
            return context, dockerfile, read_rules(candidate.read_text())
    return context, dockerfile, []


def tracked(context: Path, source: str) -> list[str] | None:
    """Files git tracks under a source that are on disk, or None outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "-C", str(context), "ls-files", "-z", "--", source],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return None
    if result.returncode != 0:
        return None
    return [name for name in result.stdout.split("\0") if name and (context / name).is_file()]


def files_under(context: Path, source: str) -> list[str]:
    """The repository's files a COPY source names (a file, a folder or a wildcard), relative to context."""
    source = posixpath.normpath(source.lstrip("/"))
    if any(ch in source for ch in "*?["):
        names = [str(path.relative_to(context)) for path in context.glob(source)]
    else:
        names = [source]
    found: list[str] = []
    for name in names:
        git_files = tracked(context, name)
        if git_files is not None:  # a clean clone has only these
            found += git_files
            continue
        path = context / name
        if path.is_file():
            found.append(name)
        for folder, _, files in os.walk(path):
            found += [str((Path(folder) / file).relative_to(context)) for file in files]
    return sorted(set(found))


# -- the checks --------------------------------------------------------------------------------------
def test_ignore_matcher_follows_docker_rules() -> None:
    rules = read_rules("**\n!labapp/**\n**/__pycache__\n!/keep.txt\n*.md\n!docs/*.md\n")
    assert excluded("setup.cfg", rules) and excluded("deep/down/file.txt", rules)
    assert not excluded("labapp/cli.py", rules) and not excluded("labapp/sqsd/daemon.py", rules)
    # A rule on a folder covers what is under it; the later rule wins over the re-include.
    assert excluded("labapp/__pycache__/cli.cpython-312.pyc", rules)
    assert excluded("labapp/sqsd/__pycache__/x.pyc", rules)
    # A leading / is relative to the context root; `*` does not cross a /.
    assert not excluded("keep.txt", rules)
    assert not excluded("docs/guide.md", rules) and excluded("docs/deep/guide.md", rules)
    assert excluded("README.md", read_rules("*.md")) and not excluded("docs/README.md", read_rules("*.md"))
    assert excluded("a/b/c.pyc", read_rules("**/*.pyc")) and excluded("c.pyc", read_rules("**/*.pyc"))
    assert excluded("a/x/y/b", read_rules("a/**/b")) and excluded("a/b", read_rules("a/**/b"))
    assert not excluded("anything", read_rules("# only a comment\n\n"))


def test_copy_parser_handles_flags_stages_and_json_form() -> None:
    plain = parse_copy("COPY", "--chown=lab:lab --chmod=644 a.txt b.txt ./", "/lab")
    assert plain.sources == ("a.txt", "b.txt") and plain.dest_path == "/lab" and not plain.from_stage
    assert plain.target_of("a.txt") == "/lab/a.txt"
    listed = parse_copy("COPY", '--link ["my file.txt", "/opt/x/"]')
    assert listed.sources == ("my file.txt",) and listed.dest == "/opt/x/" and listed.flags == ("--link",)
    assert parse_copy("COPY", "--from=builder /venv /venv").from_stage
    joined = instructions("COPY a \\\n  # a comment\n\n  b /c/\nRUN true")
    assert [(keyword, args.split()) for keyword, args in joined] == [
        ("COPY", ["a", "b", "/c/"]),
        ("RUN", ["true"]),
    ]


def test_every_copy_source_is_in_the_build_context() -> None:
    context, dockerfile, rules = build()
    assert rules, f"no ignore file for {dockerfile.relative_to(context)}: everything would be sent"
    checked = 0
    for copy in copies(dockerfile):
        if copy.from_stage:
            continue  # comes from another stage, not the context
        for source in copy.sources:
            if copy.keyword == "ADD" and re.match(r"[a-z]+://|git@", source):
                continue
            where = f"{copy.keyword} {source} (docker/Dockerfile)"
            assert not posixpath.normpath(source.lstrip("/")).startswith(".."), (
                f"{where}: outside the context"
            )
            files = files_under(context, source)
            assert files, (
                f"{where}: nothing by that name in the repository (a clean clone has only git's files)"
            )
            sent = [name for name in files if not excluded(name, rules)]
            assert sent, (
                f"{where}: the ignore file leaves out all {len(files)} files (e.g. {files[0]}), so the "
                f'build fails with "{source}": not found; re-include it with a `!` rule'
            )
            checked += 1
    assert checked >= 5


def test_secrets_and_bytecode_stay_out_of_the_context() -> None:
    _, _, rules = build()
    # Places a learner's secret could land, inside folders the image re-includes too.
    for name in (
        ".env",
        ".env.local",
        "deploy/.env",
        "solutions/.env",
        "labapp/.env",
        "deploy/.platform/server.key",
        "labapp/dev.pem",
    ):
        assert excluded(name, rules), f"{name} would be sent to the builder and could land in a layer"
    for name in (
        "labapp/__pycache__/cli.cpython-312.pyc",
        "labapp/sqsd/__pycache__/daemon.cpython-312.pyc",
        "solutions/__pycache__/x.pyc",
        "labapp/stray.pyc",
        "solutions/.ipynb_checkpoints/00_setup_check-checkpoint.ipynb",
    ):
        assert excluded(name, rules), f"{name} is a local artifact and should not be sent"
    # The ones the image needs must survive those rules.
    for name in ("labapp/__init__.py", "deploy/.ebextensions/sqsd.config", "solutions/00_setup_check.ipynb"):
        assert not excluded(name, rules), name


def test_image_has_what_the_notebooks_read_at_run_time() -> None:
    context, dockerfile, rules = build()
    found = {source.rstrip("/"): copy for copy in copies(dockerfile) for source in copy.sources}
    assert "deploy" in found and "solutions" in found, "the Dockerfile must COPY deploy and solutions"
    lab = found["deploy"].workdir

    # ex.solution() reads the solution notebooks; labapp is installed, not editable, so it needs the env.
    solutions_dir = found["solutions"].target_of("solutions")
    assert env_vars(dockerfile).get("LAB_SOLUTIONS_DIR") == solutions_dir
    notebooks = [name for name in files_under(context, "solutions") if name.endswith(".ipynb")]
    left_out = [name for name in notebooks if excluded(name, rules)]
    assert notebooks and not left_out, f"solution notebooks missing from the image: {left_out}"

    # The periodic exercises find deploy/cron.yaml next to the notebooks' folder (the kernel's cwd),
    # and the daemon's relative --config/--cron paths resolve against the WORKDIR.
    assert found["deploy"].target_of("deploy") == posixpath.join(lab, "deploy")
    jupyter = services()["jupyter"]
    root_dir = next(
        arg.split("=", 1)[1] for arg in jupyter["command"] if arg.startswith("--ServerApp.root_dir=")
    )
    assert "./notebooks:" + root_dir in jupyter["volumes"], "notebooks are bind-mounted, not baked in"
    assert posixpath.dirname(root_dir) == lab
    assert "working_dir" not in services()["daemon"]
    command = services()["daemon"]["command"]
    for flag in ("--config", "--cron"):
        path = command[command.index(flag) + 1]
        assert path.startswith("deploy/"), f"daemon {flag} {path} is not in the image"
        shipped = files_under(context, path)
        assert shipped and not [name for name in shipped if excluded(name, rules)], f"daemon {flag} {path}"
