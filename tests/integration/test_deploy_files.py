"""docker-compose.yml, the Dockerfile and the PostgreSQL init script, checked offline.

No Docker engine is needed: the files are parsed and their structure is checked against what the
services expect (ports, settings, databases, start order) and against the repo itself (the modules
compose runs exist, the image installs every workspace member it needs).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
INIT_SQL = ROOT / "deploy" / "postgres" / "init-databases.sql"


class Svc:
    def __init__(self, name: str, module: str, port: int) -> None:
        self.name = name  # compose service name
        self.module = module  # python -m <module>
        self.port = port
        self.env_prefix = f"LIFECYCLE_{module.removeprefix('lifecycle_').upper()}_"
        self.distribution = f"lifecycle-{name}"  # the workspace member's project name

    def __repr__(self) -> str:
        return self.name


SERVICES = [
    Svc("ingest", "lifecycle_ingest", 8000),
    Svc("stage-engine", "lifecycle_stage_engine", 8001),
    Svc("messaging", "lifecycle_messaging", 8002),
    Svc("loyalty", "lifecycle_loyalty", 8003),
]
by_service = pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def command_of(service: dict) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def published_ports(service: dict) -> set[tuple[int, int]]:
    """(host port, container port) pairs, from short ("[ip:]host:container") or long syntax."""
    pairs = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            pairs.add((int(port["published"]), int(port["target"])))
        else:
            *_, host, container = str(port).split(":")
            pairs.add((int(host), int(container.split("/")[0])))
    return pairs


def healthcheck_command(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def migration_of(services: dict, svc: Svc) -> tuple[str, dict]:
    """The compose service that runs `python -m <module> migrate`: exactly one per service."""
    found = [(name, s) for name, s in services.items()
             if command_of(s)[:4] == ["python", "-m", svc.module, "migrate"]]
    assert len(found) == 1, f"expected one migration job for {svc.name}, found {found}"
    return found[0]


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def database_of(services: dict, svc: Svc) -> str:
    return database_name(env_of(services[svc.name])[f"{svc.env_prefix}DATABASE_URL"])


# --- the four services -------------------------------------------------------------------------


def test_compose_ships_no_admin_token_and_runs_outside_development(compose: dict, services: dict) -> None:
    with_admin_api = ("ingest", "stage-engine", "messaging")
    for svc in (s for s in SERVICES if s.name in with_admin_api):
        for name in (svc.name, migration_of(services, svc)[0]):  # the migration job reads the same settings
            token = env_of(services[name])[f"{svc.env_prefix}ADMIN_TOKEN"]
            assert re.fullmatch(rf"\$\{{{svc.env_prefix}ADMIN_TOKEN:\?[^}}]+\}}", token), (name, token)
    for svc in SERVICES:
        assert env_of(services[svc.name]).get("LIFECYCLE_ENVIRONMENT", "production") == "production"


@pytest.mark.parametrize("svc", [s for s in SERVICES if s.name != "ingest"], ids=lambda s: s.name)
def test_compose_requires_read_api_tokens_for_the_services_with_read_apis(services: dict, svc: Svc) -> None:
    # Outside development these services refuse to start without them, and so does their migration job
    # (it reads the same settings).
    for name in (svc.name, migration_of(services, svc)[0]):
        tokens = env_of(services[name])["LIFECYCLE_API_TOKENS"]
        assert re.fullmatch(r"\$\{LIFECYCLE_API_TOKENS:\?[^}]+\}", tokens), (name, tokens)  # required, no default


@by_service
def test_service_serves_its_module_on_its_own_published_port(services: dict, svc: Svc) -> None:
    service = services[svc.name]
    assert command_of(service) == ["python", "-m", svc.module, "serve"]
    assert (svc.port, svc.port) in published_ports(service)
    env = env_of(service)
    assert env[f"{svc.env_prefix}PORT"] == str(svc.port)
    assert env[f"{svc.env_prefix}HOST"] == "0.0.0.0"


@by_service
def test_service_is_built_from_the_repo_dockerfile(services: dict, svc: Svc) -> None:
    build = services[svc.name]["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert (ROOT / context).resolve() == ROOT.resolve()


@by_service
def test_service_is_healthy_only_when_its_readyz_answers(services: dict, svc: Svc) -> None:
    check = healthcheck_command(services[svc.name])
    assert "python" in check
    assert f"127.0.0.1:{svc.port}/readyz" in check


@by_service
def test_service_starts_after_healthy_kafka_and_postgres_and_its_completed_migration(
        services: dict, svc: Svc) -> None:
    depends_on = services[svc.name]["depends_on"]
    assert depends_on["kafka"]["condition"] == "service_healthy"
    assert depends_on["postgres"]["condition"] == "service_healthy"
    migration, _ = migration_of(services, svc)
    assert depends_on[migration]["condition"] == "service_completed_successfully"


@by_service
def test_migration_job_runs_once_against_the_services_database_after_postgres_is_healthy(
        services: dict, svc: Svc) -> None:
    _, job = migration_of(services, svc)
    assert job["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert str(job.get("restart", "no")) == "no"
    key = f"{svc.env_prefix}DATABASE_URL"
    assert env_of(job)[key] == env_of(services[svc.name])[key]


@by_service
def test_service_uses_its_own_database_on_the_compose_postgres(services: dict, svc: Svc) -> None:
    url = urlsplit(env_of(services[svc.name])[f"{svc.env_prefix}DATABASE_URL"])
    assert url.scheme == "postgresql+asyncpg"
    assert url.hostname == "postgres"
    assert url.port == 5432
    assert url.path == f"/{svc.module}"


def test_no_two_services_share_a_database(services: dict) -> None:
    names = [database_of(services, svc) for svc in SERVICES]
    assert len(set(names)) == len(SERVICES), names


@by_service
def test_service_talks_to_the_compose_kafka_with_the_idempotent_producer(
        services: dict, svc: Svc) -> None:
    env = env_of(services[svc.name])
    bootstrap = env["LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS"]
    assert bootstrap.split(":")[0] == "kafka"
    advertised = env_of(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    assert f"//{bootstrap}" in advertised, "bootstrap address must be a listener Kafka advertises"
    assert env["LIFECYCLE_KAFKA_ENABLE_IDEMPOTENCE"].lower() == "true"
    assert int(env["LIFECYCLE_KAFKA_REPLICATION_FACTOR"]) == 1  # a single broker
    assert int(env["LIFECYCLE_KAFKA_PARTITIONS"]) >= 1


def test_messaging_delivers_mail_to_the_dev_mail_catcher(services: dict) -> None:
    env = env_of(services["messaging"])
    host = env["LIFECYCLE_MESSAGING_SMTP_HOST"]
    assert host in services and "mailpit" in services[host]["image"]
    assert (1025, 1025) in published_ports(services[host])
    assert env["LIFECYCLE_MESSAGING_SMTP_PORT"] == "1025"
    assert env["LIFECYCLE_MESSAGING_SMTP_FROM"]


def test_every_module_compose_runs_is_a_runnable_package_in_this_repo(services: dict) -> None:
    modules = {cmd[2] for s in services.values()
               if (cmd := command_of(s))[:2] == ["python", "-m"]}
    assert modules == {s.module for s in SERVICES}
    for module in sorted(modules):
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"{module} is not importable"
        assert spec.submodule_search_locations, f"{module} is not a package"
        package_dir = Path(spec.submodule_search_locations[0]).resolve()
        assert package_dir.is_relative_to(ROOT.resolve()), f"{module} comes from {package_dir}"
        assert (package_dir / "__main__.py").is_file(), f"`python -m {module}` has no __main__"


# --- infrastructure ----------------------------------------------------------------------------


def test_kafka_runs_in_kraft_mode_without_zookeeper(services: dict) -> None:
    assert not [name for name, s in services.items()
                if "zookeeper" in name.lower() or "zookeeper" in str(s.get("image", "")).lower()]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = env_of(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert "/opt/kafka/bin/" in healthcheck_command(kafka)


def test_postgres_creates_every_services_database_on_first_start(services: dict) -> None:
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:17")
    assert "pg_isready" in healthcheck_command(postgres)
    mounts = [v for v in postgres["volumes"] if isinstance(v, str)]
    init_mounts = [v for v in mounts if ":/docker-entrypoint-initdb.d/" in v]
    assert [(ROOT / v.split(":")[0]).resolve() for v in init_mounts] == [INIT_SQL.resolve()]
    created = set(re.findall(r"(?im)^\s*CREATE\s+DATABASE\s+\"?(\w+)\"?", INIT_SQL.read_text()))
    used = {database_of(services, svc) for svc in SERVICES}
    assert used <= created
    assert created >= {"lifecycle_ingest", "lifecycle_stage_engine", "lifecycle_messaging",
                       "lifecycle_loyalty"}


def test_every_dependency_with_a_health_condition_has_a_healthcheck(services: dict) -> None:
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"


# --- the image ---------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions (KEYWORD, arguments) per build stage, line continuations joined."""
    stages: list[list[tuple[str, str]]] = []
    for line in re.sub(r"\\\n", " ", DOCKERFILE.read_text()).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword.upper(), args.strip()))
    return stages


def uv_sync_commands() -> list[str]:
    """Each `uv sync ...` in a RUN, with ARG defaults substituted."""
    commands = []
    for stage in dockerfile_stages():
        args: dict[str, str] = {}
        for keyword, rest in stage:
            if keyword == "ARG" and "=" in rest:
                name, value = rest.split("=", 1)
                args[name] = value.strip().strip('"')
            elif keyword == "RUN":
                for name, value in args.items():
                    rest = re.sub(rf"\$\{{{name}\}}|\${name}\b", value, rest)
                commands += [c.strip() for c in re.split(r"&&|;", rest) if "uv sync" in c]
    return commands


def test_image_installs_the_locked_environment_without_dev_tools() -> None:
    commands = uv_sync_commands()
    assert commands, "the Dockerfile never runs uv sync"
    for command in commands:
        assert "--frozen" in command and "--no-dev" in command, command
        excludes_devstack = ("--no-install-package lifecycle-devstack" in command
                             or ("--package" in command and "lifecycle-devstack" not in command))
        assert excludes_devstack, f"dev-only lifecycle-devstack would be installed: {command}"
    final = commands[-1]
    if "--package" in final:
        for svc in SERVICES:
            assert f"--package {svc.distribution}" in final


def test_image_copies_what_uv_needs_for_every_workspace_member() -> None:
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    members = sorted({p.parent.relative_to(ROOT).as_posix() for pattern in workspace["members"]
                      for p in ROOT.glob(f"{pattern}/pyproject.toml")})
    copied = {src for stage in dockerfile_stages() for keyword, rest in stage
               if keyword == "COPY" and not rest.startswith("--from") for src in rest.split()[:-1]}
    assert {"pyproject.toml", "uv.lock"} <= copied
    for member in members:
        assert f"{member}/pyproject.toml" in copied, f"{member}/pyproject.toml is not copied"
    for member in ["shared", *(f"services/{p.name}" for p in (ROOT / "services").iterdir()
                               if (p / "pyproject.toml").is_file())]:
        assert f"{member}/src" in copied, f"{member}/src is not copied"
    assert "tools/devstack/src" not in copied


def test_image_runs_python_311_slim_as_a_non_root_user_with_the_venv_on_path() -> None:
    stages = dockerfile_stages()
    assert all(stage[0][1].split()[0] == "python:3.11-slim" for stage in stages)
    final = stages[-1]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the final stage never switches away from root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    env = " ".join(rest for keyword, rest in final if keyword == "ENV")
    assert re.search(r"PATH=/app/\.venv/bin:\$PATH", env)
