"""The YAML config: one typed tree, strict about unknown keys and wrong types.

Errors are turned into one line per problem that names the key path and what was expected, so a
user's typo never surfaces as a traceback.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from llmtail.agent.endpoint import project_in_front
from llmtail.parsers.mask import STARS, CustomRule, MaskConfigError, Masker, MaskSettings
from llmtail.parsers.payload import DEFAULT_FEEDBACK_FIELDS, DEFAULT_FIELDS
from llmtail.parsers.record import DEFAULT_PATTERN


class ConfigError(Exception):
    """A config the agent cannot run with; the message is meant for the user as is."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PayloadField(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
    type: Literal["str", "int"] = "str"


DEFAULT_PAYLOAD_FIELDS: tuple[PayloadField, ...] = tuple(
    PayloadField(name=name, type=kind)  # type: ignore[arg-type]  # kind is "str" | "int"
    for name, kind in DEFAULT_FIELDS
)


class PayloadConfig(_Strict):
    """The comma-separated payload of an llm_call record; the last field takes the rest."""

    separator: Annotated[str, Field(min_length=1)] = ","
    fields: tuple[PayloadField, ...] = DEFAULT_PAYLOAD_FIELDS


class FeedbackConfig(_Strict):
    """`feedback:<payload>` messages (a user's rating of an answer), split like the payload."""

    fields: Annotated[tuple[PayloadField, ...], Field(min_length=1)] = tuple(
        PayloadField(name=name, type=kind)  # type: ignore[arg-type]  # kind is "str" | "int"
        for name, kind in DEFAULT_FEEDBACK_FIELDS
    )


_ASCII_PROBE = b"\n\t\\u -:.,[]()#%@0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class InputConfig(_Strict):
    paths: Annotated[list[str], Field(min_length=1)]
    exclude: list[str] = []
    encoding: str = "utf-8"
    start_at: Literal["end", "beginning"] = "end"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        return check_encoding(value)


def check_encoding(value: str) -> str:
    """`value` if llmtail can read files in it; ValueError saying why not (the config's check,
    also for `--encoding`)."""
    try:
        info = codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown encoding {value!r} (try utf-8 or gbk)") from None
    # Lines and record headers are found by their ASCII bytes (`\n`, digits, brackets)
    # before anything is decoded: UTF-16/32 and EBCDIC files cannot be framed.
    try:
        ascii_compatible = (
            info._is_text_encoding
            and info.name not in ("idna", "punycode")  # host names, not file contents
            and _ASCII_PROBE.decode(value) == _ASCII_PROBE.decode("ascii")
        )
    except (UnicodeError, LookupError):
        ascii_compatible = False
    if not ascii_compatible:
        raise ValueError(
            f"encoding {value!r} cannot be read: llmtail needs an encoding that writes ASCII "
            "as ASCII (utf-8, gbk, gb18030, big5, shift_jis, euc-kr, latin-1, cp1252, ...)"
        )
    return value


class ParserConfig(_Strict):
    pattern: str = DEFAULT_PATTERN
    timezone: str | None = None  # the JVM's zone; None: the host's
    payload: PayloadConfig = PayloadConfig()
    feedback: FeedbackConfig = FeedbackConfig()
    max_record_bytes: Annotated[int, Field(ge=1024)] = 512 * 1024

    @field_validator("pattern")
    @classmethod
    def _logback_property_spelling(cls, value: str) -> str:
        r"""`%method\\(\\)` is how a pattern reads inside a logback `<property>` (its escapes
        are doubled there); copied as is, it means the same as `%method\(\)`."""
        return value.replace("\\\\(", "\\(").replace("\\\\)", "\\)")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r} (use an IANA name such as Asia/Shanghai)"
            ) from None
        return value


class TailConfig(_Strict):
    """Timings of the tailing daemon, in seconds."""

    partial_line_flush: Annotated[float, Field(gt=0)] = 60.0
    multiline_flush: Annotated[float, Field(gt=0)] = 5.0
    rescan_interval: Annotated[float, Field(gt=0)] = 10.0
    poll_interval: Annotated[float, Field(gt=0)] = 0.25
    deleted_open_warning: Annotated[float, Field(gt=0)] = 300.0
    rotate_wait: Annotated[float, Field(gt=0)] = 5.0  # quiet time before a rotated file is let go
    max_open_files: Annotated[int, Field(ge=1)] = 256  # idle followed files beyond are closed


class BatchConfig(_Strict):
    max_records: Annotated[int, Field(ge=1, le=4096)] = 4096
    max_bytes: Annotated[int, Field(ge=1024, le=5 * 1024 * 1024)] = 3 * 1024 * 1024
    linger: Annotated[float, Field(ge=0)] = 1.0


class _OutputBase(_Strict):
    """What every output stamps on a LogGroup, so a file output holds what SLS would receive."""

    topic: str = ""
    source: str | None = None  # default: the host's IP
    tags: dict[str, str] = {}


class FileOutput(_OutputBase):
    type: Literal["file"]
    path: str


class StdoutOutput(_OutputBase):
    type: Literal["stdout"]


class SlsOutput(_OutputBase):
    type: Literal["sls"]
    endpoint: str
    project: str
    logstore: str
    credentials_file: str | None = None  # default: ALIBABA_CLOUD_* environment variables
    # env (or file, with credentials_file) | ecs_ram_role | chain (alibabacloud-credentials'
    # default chain: environment, OIDC/RRSA, profiles, ECS RAM role, credentials URI)
    credentials_provider: Literal["env", "file", "ecs_ram_role", "chain"] | None = None
    ecs_role_name: str | None = None  # for ecs_ram_role; default: asked from the metadata service
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    request_timeout: Annotated[float, Field(gt=0)] = 30.0
    time_policy: Literal["restamp", "reject"] = "restamp"
    compress: Literal["lz4", "none"] = "lz4"
    max_backoff: Annotated[float, Field(gt=0)] = 30.0  # seconds, for network errors and 5xx
    hold_probe_interval: Annotated[float, Field(gt=0)] = 30.0  # bad keys, missing logstore
    give_up_after: Annotated[float, Field(gt=0)] | None = None  # None: hold data until delivered

    @model_validator(mode="after")
    def _one_credentials_source(self) -> SlsOutput:
        if self.credentials_provider == "file" and not self.credentials_file:
            raise ValueError("credentials_provider file needs credentials_file")
        if self.credentials_file and self.credentials_provider not in (None, "file"):
            raise ValueError(
                f"credentials_file and credentials_provider {self.credentials_provider} "
                "are two sources: keep one"
            )
        return self

    @model_validator(mode="after")
    def _no_project_in_endpoint(self) -> SlsOutput:
        problem = project_in_front(self.endpoint, self.project)
        if problem is not None:
            raise ValueError(problem)
        return self


OutputConfig = Annotated[FileOutput | StdoutOutput | SlsOutput, Field(discriminator="type")]


class MaskRuleConfig(_Strict):
    """A user's masking rule: `regex` is replaced, text matching `prefix` before it is kept."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    regex: Annotated[str, Field(min_length=1)]
    prefix: str = ""
    replace: str = STARS  # "***", a fixed text, or "hmac:sha256"


class MaskConfig(_Strict):
    """Masking of secrets and personal data before records leave the host (parsers/mask.py)."""

    enabled: bool = True
    rules: dict[str, bool] = {}  # built-in rule -> on/off; unnamed rules keep their default
    replace: dict[str, str] = {}  # built-in rule -> replacement other than "***"
    hmac_key_file: str | None = None  # key of "hmac:sha256" replacements; mode 0600
    custom: list[MaskRuleConfig] = []

    def settings(self, max_field_bytes: int) -> MaskSettings:
        return MaskSettings(
            enabled=self.enabled,
            rules=dict(self.rules),
            replace=dict(self.replace),
            custom=tuple(CustomRule(r.name, r.regex, r.prefix, r.replace) for r in self.custom),
            max_field_bytes=max_field_bytes,
        )

    @model_validator(mode="after")
    def _rules_compile(self) -> MaskConfig:
        # Build the masker once with a stand-in key: every rule problem is found at load time.
        try:
            Masker.from_config(self.settings(1024), b"check" if self.hmac_key_file else None)
        except MaskConfigError as exc:
            raise ValueError(str(exc)) from None
        return self


class MetricsConfig(_Strict):
    listen: str | None = "127.0.0.1:9631"  # host:port; null disables the endpoint
    max_label_sets: Annotated[int, Field(ge=10, le=1_000_000)] = 2000  # beyond: label "other"


class Quota(_Strict):
    """The QPM/TPM a model may use in one workspace (the provider's rate limit)."""

    model: Annotated[str, Field(min_length=1)]
    workspace: Annotated[str, Field(min_length=1)]
    qpm: Annotated[int, Field(ge=1)] | None = None
    tpm: Annotated[int, Field(ge=1)] | None = None


class Thresholds(_Strict):
    """When an alert fires, per model+workspace over `window` (except quota: the last minute)."""

    window: Annotated[str, Field(pattern=r"^[1-9][0-9]*[mh]$")] = "5m"
    failures: Annotated[int, Field(ge=1)] = 10  # failed calls in the window
    success_rate: Annotated[float, Field(gt=0, le=100)] = 95.0  # percent, fires below
    p95_ms: Annotated[int, Field(ge=1)] = 10_000  # p95 latency, fires above
    quota_percent: Annotated[float, Field(gt=0, le=100)] = 80.0  # of the configured quota
    slow_ms: Annotated[int, Field(ge=1)] = 10_000  # the "slow calls" saved search


class ActionPolicy(_Strict):
    """Who is notified: an SLS action policy (created only with `create: true`)."""

    id: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    create: bool = False
    name: str = "llmtail alerts"
    script: str | None = None  # primary_policy_script, required with create: true

    @model_validator(mode="after")
    def _script_to_create(self) -> ActionPolicy:
        if self.create and not self.script:
            raise ValueError("script is required with create: true (the policy's fire(...) line)")
        return self


class ProvisionConfig(_Strict):
    """What `llmtail provision` creates in the `sls` output's project (docs/observability.md)."""

    ttl: Annotated[int, Field(ge=1, le=3650)] = 30  # days, for a Logstore it creates
    shards: Annotated[int, Field(ge=1, le=256)] = 2
    max_text_len: Annotated[int, Field(ge=64, le=16384)] = 16384  # bytes of prompt indexed
    prefix: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")] = "llmtail"
    region: str | None = None  # for alert queries; default: from the endpoint's host name
    core_models: list[str] = []  # the QPM/TPM "per core model" chart; empty: every model
    quotas: list[Quota] = []
    negative_ratings: Annotated[list[str], Field(min_length=1)] = ["down"]
    thresholds: Thresholds = Thresholds()
    action_policy: ActionPolicy | None = None  # None: alerts use SLS's default policy


class Config(_Strict):
    inputs: list[InputConfig] = []
    parser: ParserConfig = ParserConfig()
    output: OutputConfig = FileOutput(type="file", path="./out/records.ndjson")
    state_dir: str = "./state"
    tail: TailConfig = TailConfig()
    batch: BatchConfig = BatchConfig()
    # Encoded bytes of batches handed to the output and not yet acknowledged (exact, not an
    # estimate): 4 senders x 3 MB batches fit. 32 MiB was no faster against the tree of the
    # same run (bench_e2e: 1.14x its records/s, 1.18x with 16 MiB) but was all used once the
    # core outran the Logstore: peak RSS 92 MiB against 71.
    max_in_flight_bytes: Annotated[int, Field(ge=1024 * 1024)] = 16 * 1024 * 1024
    shutdown_timeout: Annotated[float, Field(gt=0)] = 10.0
    metrics: MetricsConfig = MetricsConfig()
    provision: ProvisionConfig = ProvisionConfig()
    mask: MaskConfig = MaskConfig()
    # Which engine frames, parses and encodes: the compiled core (llmtail._core) or the Python
    # reference it is tested against (byte-identical batches), kept for diagnosis.
    engine: Literal["python", "core"] = "core"
    log_level: Literal["debug", "info", "warning", "error"] = "info"


def parse_config(data: Any, origin: str = "config") -> Config:
    """Validate an already-loaded YAML document."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping of keys at the top level")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; relative paths in it stay relative to the cwd."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found (pass -c with an existing file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{p}: not valid YAML{where}: {problem}") from None
    return parse_config(data, str(p))


def _describe(exc: ValidationError, origin: str) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"] if not _is_union_tag(part))
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = "unknown key (check the spelling against config.example.yaml)"
        elif kind == "missing":
            msg = "required key is missing"
        elif kind == "union_tag_invalid":
            msg = "unknown output type (expected one of: sls, file, stdout)"
        else:
            msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{loc or '(top level)'}: {msg}")
    return f"{origin}: " + "; ".join(problems)


def _is_union_tag(part: int | str) -> bool:
    return part in ("file", "stdout", "sls")
