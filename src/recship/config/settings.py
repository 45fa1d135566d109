"""Settings that TorchEasyRec reads from environment variables.

recship takes them as CLI flags; the environment variables are accepted as
aliases and read here only, so every other module sees plain arguments.
A flag given on the command line wins over the environment.
"""

import os

from recship.errors import ConfigError

QUANT_MODES = ("FP32", "FP16", "INT8", "INT4", "INT2")

# TorchEasyRec spells "no quantization" in several ways; all mean FP32.
_QUANT_ALIASES = {
    "0": "FP32",
    "FALSE": "FP32",
    "NONE": "FP32",
    "1": "INT8",
    "TRUE": "INT8",
}


def resolve_quant_mode(flag: str | None, env_name: str, default: str = "INT8") -> str:
    """The embedding quantization mode from a CLI flag or `env_name`."""
    raw = flag if flag is not None else os.environ.get(env_name, default)
    mode = _QUANT_ALIASES.get(raw.strip().upper(), raw.strip().upper())
    if mode not in QUANT_MODES:
        source = "flag" if flag is not None else f"environment variable {env_name}"
        raise ConfigError(
            f"{source}: quantization mode {raw!r} is not one of "
            f"{', '.join(QUANT_MODES)}"
        )
    return mode


_TRUE = ("1", "TRUE", "YES", "ON")
_FALSE = ("", "0", "FALSE", "NO", "OFF")


def resolve_flag(flag: bool | None, env_name: str) -> bool:
    """A boolean switch from a CLI flag or `env_name` (e.g. ENABLE_AOT=1)."""
    if flag is not None:
        return flag
    raw = os.environ.get(env_name, "").strip().upper()
    if raw not in _TRUE + _FALSE:
        raise ConfigError(
            f"environment variable {env_name}={raw!r}: expected 1/0 (or true/false)"
        )
    return raw in _TRUE


def resolve_export_cache_dir(flag: str | None = None) -> str:
    """Local cache of remote exports: flag, RECSHIP_EXPORT_CACHE_DIR, or
    ~/.cache/recship/exports."""
    if flag:
        return flag
    default = os.path.join(os.path.expanduser("~"), ".cache", "recship", "exports")
    return os.environ.get("RECSHIP_EXPORT_CACHE_DIR", default)


INPUT_TILE_MODES = (0, 2, 3)


def resolve_input_tile(flag: int | None, env_name: str = "INPUT_TILE") -> int:
    """User-feature tiling mode (TorchEasyRec INPUT_TILE) from a CLI flag or
    `env_name`: 0 untiled, 2 user-side FG once, 3 user-side embeddings once."""
    if flag is not None:
        raw, source = str(flag), "flag --input_tile"
    else:
        raw, source = os.environ.get(env_name, "0"), f"environment variable {env_name}"
    raw = raw.strip() or "0"
    if not raw.isdigit() or int(raw) not in INPUT_TILE_MODES:
        raise ConfigError(
            f"{source}: input tile mode {raw!r} is not one of "
            f"{', '.join(str(m) for m in INPUT_TILE_MODES)}"
        )
    return int(raw)
