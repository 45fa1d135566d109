"""Load a pipeline config from protobuf text or JSON, and save it back.

Both formats share one schema (`protos/pipeline.proto`), whose message and
field names follow TorchEasyRec's `pipeline.config`. A field the schema does
not know fails loading with its name and line; what parses is then checked by
`validation.validate_pipeline_config`.
"""

import json
import logging
from pathlib import Path

from google.protobuf import json_format, text_format

from recship.config.protos import pipeline_pb2
from recship.config.validation import validate_pipeline_config
from recship.errors import ConfigError

logger = logging.getLogger(__name__)

PipelineConfig = pipeline_pb2.EasyRecConfig


def parse_pipeline_config(text: str, source: str = "<string>") -> PipelineConfig:
    """Parse and validate a pipeline config held in a string.

    Args:
        text: protobuf text, or JSON when it starts with "{".
        source: where the text came from, for error messages.

    Raises:
        ConfigError: naming the source, the line and the field at fault.
    """
    config = PipelineConfig()
    try:
        if text.lstrip().startswith("{"):
            json_format.Parse(text, config, ignore_unknown_fields=False)
        else:
            text_format.Parse(text, config)
    except (text_format.ParseError, json_format.ParseError) as exc:
        raise ConfigError(
            f"{source}: {str(exc).rstrip('.')}. Check the field name and its "
            "value against "
            "docs/config.md; recship rejects fields it does not support."
        ) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: invalid JSON: {exc}") from exc

    missing = config.FindInitializationErrors()
    if missing:
        raise ConfigError(f"{source}: required field(s) missing: {', '.join(missing)}")
    validate_pipeline_config(config, source)
    return config


def load_pipeline_config(path: str | Path) -> PipelineConfig:
    """Read, parse and validate the pipeline config file at `path`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline config {path}: {exc}") from exc
    return parse_pipeline_config(text, source=str(path))


def format_pipeline_config(config: PipelineConfig) -> str:
    """Render a config as protobuf text, the format `load_pipeline_config` reads."""
    return text_format.MessageToString(config)


def save_pipeline_config(config: PipelineConfig, path: str | Path) -> None:
    """Write `config` as protobuf text to `path`."""
    Path(path).write_text(format_pipeline_config(config), encoding="utf-8")
