"""docker-compose.yml as compose reads it: the file, with compose's variable interpolation
(``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$``) done here, since no Docker
engine runs where the tests do."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
#: What `docker compose` finds in an .env filled in as .env.example asks.
FILLED_IN = {"SCHEDULER_API_TOKEN": "0123456789abcdef0123", "API_SERVICE_ACCOUNT_TOKEN": "svc-key-42"}

VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class MissingVariable(Exception):
    def __init__(self, name, message):
        super().__init__(f"{name}: {message}")
        self.name = name


def interpolate(text: str, env: dict) -> str:
    """Compose's variable substitution of one string (``$$`` is a literal ``$``)."""
    def substitute(match):
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3) or ""
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return arg if unset else value
        if op in (":?", "?"):
            if unset:
                raise MissingVariable(name, arg)
            return value
        return value or ""

    return VARIABLE.sub(substitute, text)


def resolved(node, env):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolved(item, env) for item in node]
    if isinstance(node, dict):
        return {key: resolved(value, env) for key, value in node.items()}
    return node


def compose():
    return yaml.safe_load(COMPOSE.read_text())


def services(env=FILLED_IN):
    return resolved(compose()["services"], env)


def ours(all_services):
    """The services that run this project's image (every one but Redis)."""
    return {name: s for name, s in all_services.items() if s.get("build") == "."}
