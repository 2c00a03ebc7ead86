"""The Docker images and compose stack, checked without a Docker engine: schema, commands, settings, COPY sources."""

from __future__ import annotations

import importlib.resources
import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from meetbot.cli import build_parser
from meetbot.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yml"
DOCKERFILES = sorted(DOCKER.glob("*Dockerfile"))
SETTING_NAMES = {f"MEETBOT_{name.upper()}" for name in Settings.model_fields}
LONG_RUNNING = {"postgres", "redis", "minio", "api", "bot-worker", "transcriber", "webhooks", "maintenance"}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    pairs = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def meetbot_commands() -> list[list[str]]:
    """Every `meetbot …` command line the stack runs: compose commands, Dockerfile CMDs, Procfile lines."""
    commands = [service["command"] for service in compose()["services"].values() if "command" in service]
    for path in DOCKERFILES:
        commands += [json.loads(args) for keyword, args in dockerfile_instructions(path) if keyword == "CMD"]
    for line in (REPO / "Procfile").read_text().splitlines():
        if ":" in line:
            expanded = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", line.split(":", 1)[1])
            commands.append(shlex.split(expanded))
    return [command for command in commands if command and command[0] == "meetbot"]


def test_compose_file_matches_the_compose_specification() -> None:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(compose())]
    assert not errors, errors
    broken = dict(compose(), services={"api": {"build": {"context": "..", "dockerfil": "x"}}})  # a typo is caught
    assert list(validator.iter_errors(broken))


def test_every_meetbot_command_exists_in_the_cli() -> None:
    commands = meetbot_commands()
    assert len(commands) >= 8
    parser = build_parser()
    for command in commands:
        try:
            parser.parse_args(command[1:])
        except SystemExit:
            pytest.fail(f"`{' '.join(command)}` is not a valid meetbot command")
    subcommands = {command[1] for command in commands}
    assert {"api", "worker", "migrate"} <= subcommands
    with pytest.raises(SystemExit):
        parser.parse_args(["worker", "--no-such-flag"])  # the check would notice a command that does not exist


def test_every_meetbot_variable_is_a_setting() -> None:
    used: set[str] = set()
    for path in [COMPOSE, *DOCKERFILES]:
        used |= set(re.findall(r"\bMEETBOT_[A-Z0-9_]+", path.read_text()))
    assert "MEETBOT_DATABASE_URL" in used
    unknown = sorted(used - SETTING_NAMES)
    assert not unknown, f"not in meetbot/settings.py: {unknown}"


def test_every_copy_source_exists_in_the_build_context() -> None:
    builds = [service["build"] for service in compose()["services"].values() if "build" in service]
    assert {(DOCKER / build["context"]).resolve() for build in builds} == {REPO}  # COPY paths are repo-relative
    built = {REPO / build["dockerfile"] for build in builds}
    for path in DOCKERFILES:
        for keyword, args in dockerfile_instructions(path):
            if keyword == "COPY" and not args.startswith("--from"):
                *sources, _target = shlex.split(args)
                missing = [source for source in sources if not (REPO / source).exists()]
                assert not missing, f"{path.name} copies what the repository lacks: {missing}"
    named = {(DOCKER / name).resolve() for name in ("api.Dockerfile", "worker.Dockerfile", "transcriber.Dockerfile")}
    assert named <= {path.resolve() for path in built}


def test_the_stack_has_what_a_fleet_needs() -> None:
    services = compose()["services"]
    assert set(services) >= LONG_RUNNING
    for name in LONG_RUNNING:
        assert "healthcheck" in services[name], f"{name} has no health check"
    bot_worker = services["bot-worker"]
    assert "container_name" not in bot_worker and "ports" not in bot_worker  # --scale needs both absent
    assert bot_worker["shm_size"]
    assert "--appendonly" in services["redis"]["command"]
    assert services["api"]["environment"]["MEETBOT_REGISTRATION"] == "closed"
    assert services["transcriber"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    for path in DOCKERFILES:
        if path.name != "Dockerfile":
            users = [args for keyword, args in dockerfile_instructions(path) if keyword == "USER"]
            assert users and users[-1] not in ("root", "0"), f"{path.name} runs as root"
    worker_packages = (DOCKER / "worker.Dockerfile").read_text()
    for package in ("chromium", "chromium-driver", "xvfb", "pulseaudio", "ffmpeg", "fonts-"):
        assert package in worker_packages
    assert (DOCKER / "README.md").exists()


def test_the_bot_worker_image_records_with_the_lean_ffmpeg() -> None:
    """meetbot-ffmpeg is built in a stage of the same Debian release (its libraries must match) and put on PATH."""
    instructions = dockerfile_instructions(DOCKER / "worker.Dockerfile")
    bases = [args for keyword, args in instructions if keyword == "FROM"]
    assert bases == ["debian:12-slim AS recorder-ffmpeg", "debian:12-slim"]
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    assert any("scripts/build-recorder-ffmpeg.sh /usr/local/bin" in run for run in runs)
    copies = [shlex.split(args) for keyword, args in instructions if keyword == "COPY"]
    assert ["--from=recorder-ffmpeg", "/usr/local/bin/meetbot-ffmpeg", "/usr/local/bin/meetbot-ffmpeg"] in copies
    final_stage = instructions[[keyword for keyword, _ in instructions].index("FROM", 1) :]
    assert any(keyword == "RUN" and " ffmpeg " in args for keyword, args in final_stage)  # its shared libraries
