"""One Settings object, built from the environment and validated once at start.

Every process (API, workers, scheduler, CLI) builds it with `Settings.from_env()` and
passes it down; nothing else reads `os.environ`. A bad value raises `SettingsError`
whose message is a single line an operator can act on.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def parse_webhook_secret(value: str, variable: str = "PRESSROOM_WEBHOOK_SECRETS") -> bytes:
    """Decode one `whsec_<base64>` secret to its key bytes."""
    if not value.startswith("whsec_"):
        raise SettingsError(f"{variable}: secret must start with 'whsec_'")
    raw = value[len("whsec_") :]
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(f"{variable}: secret after 'whsec_' is not valid base64") from None
    if len(key) < 16:
        raise SettingsError(f"{variable}: secret must hold at least 16 bytes (24+ base64 chars)")
    return key


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name}: must be at most {maximum}, got {value}")
    return value


MAX_PORT = 65535


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    value = env.get(name, "").strip() or default
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise SettingsError(f"{name}: expected a {'/'.join(schemes)} URL, got {value!r}")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
    except ValueError:
        raise SettingsError(f"{name}: the port in {redact_url(value)!r} is not a number from 0 to {MAX_PORT}") from None
    if parts.scheme in ("redis", "rediss") and not re.fullmatch(r"/?|/\d+/?", parts.path):
        raise SettingsError(f"{name}: the database in {redact_url(value)!r} must be a number, e.g. /0")
    return value.rstrip("/")


def _bucket(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default).strip()
    if not value:
        raise SettingsError(f"{name}: a bucket name is required")
    if not BUCKET_NAME.match(value):
        raise SettingsError(f"{name}: {value!r} is not a valid S3 bucket name")
    return value


LOG_FORMATS = ("text", "json")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise SettingsError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _networks(env: Mapping[str, str], name: str) -> tuple[ipaddress._BaseNetwork, ...]:
    nets = []
    for item in env.get(name, "").split(","):
        if item.strip():
            try:
                nets.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise SettingsError(f"{name}: {item.strip()!r} is not a CIDR") from None
    return tuple(nets)


HOST_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def _hosts(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Host names ('photos.example.org'), suffixes ('.example.org': it and its subdomains) or '*'."""
    hosts = tuple(h.strip().lower().rstrip(".").strip("[]") for h in env.get(name, "").split(",") if h.strip())
    for host in hosts:
        bare = host[1:] if host.startswith(".") else host
        if host != "*" and not HOST_NAME.match(bare) and not _is_ip(bare):
            raise SettingsError(f"{name}: {host!r} is not a host name, '.suffix' or '*'")
    return hosts or default


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    s3_endpoint_url: str | None = None
    site_bucket: str = "pressroom-site"
    data_bucket: str = "pressroom-data"
    site_url: str = "http://127.0.0.1:8001"
    public_api_url: str = "http://127.0.0.1:8000"
    webhook_secrets: tuple[str, ...] = ()
    api_token: str = ""
    port: int = 8000
    site_port: int = 8001
    max_body_bytes: int = 5 * 1024 * 1024
    idempotency_ttl: int = 25 * 3600
    webhook_allow_networks: tuple = ()
    photo_allow_networks: tuple = ()  # beside webhook_allow_networks, for photo fetches only
    photo_hosts: tuple[str, ...] = ("*",)
    photo_max_bytes: int = 20 * 1024 * 1024
    photo_max_pixels: int = 40_000_000
    smtp_url: str = ""
    mail_from: str = "Pressroom <pressroom@localhost>"
    ingest_workers: int = 2
    worker_concurrency: int = 2
    task_time_limit: int = 300
    s3_concurrency: int = 8
    state_dir: str = ".pressroom"
    cloudfront_distribution_id: str = ""
    cloudfront_endpoint_url: str | None = None
    log_format: str = "text"
    worker_metrics_port: int = 0
    worker_metrics_host: str = "127.0.0.1"
    webhook_keys: tuple[bytes, ...] = field(default=(), repr=False)
    superdesk_secrets: tuple[str, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        return (
            f"Settings(redis_url={redact_url(self.redis_url)!r}, "
            f"s3_endpoint_url={self.s3_endpoint_url!r}, site_bucket={self.site_bucket!r}, "
            f"data_bucket={self.data_bucket!r}, site_url={self.site_url!r}, "
            f"webhook_secrets=<{len(self.webhook_secrets)} hidden>, "
            f"superdesk_secrets=<{len(self.superdesk_secrets)} hidden>, api_token=<hidden>)"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build and validate settings; raises SettingsError with a one-line message."""
        env = os.environ if env is None else env
        port = _int(env, "PRESSROOM_PORT", 8000, minimum=1, maximum=MAX_PORT)
        site_port = _int(env, "PRESSROOM_SITE_PORT", port + 1, minimum=1, maximum=MAX_PORT)
        if site_port > MAX_PORT:  # the default, PRESSROOM_PORT + 1
            raise SettingsError(f"PRESSROOM_SITE_PORT: set it when PRESSROOM_PORT is {MAX_PORT}")
        secrets = tuple(s.strip() for s in env.get("PRESSROOM_WEBHOOK_SECRETS", "").split(",") if s.strip())
        keys = tuple(parse_webhook_secret(s) for s in secrets)
        superdesk = tuple(s.strip() for s in env.get("PRESSROOM_SUPERDESK_SECRETS", "").split(",") if s.strip())
        if any(len(s) < 16 for s in superdesk):
            raise SettingsError("PRESSROOM_SUPERDESK_SECRETS: each secret must be at least 16 characters")
        token = env.get("PRESSROOM_API_TOKEN", "").strip()
        if token and len(token) < 16:
            raise SettingsError("PRESSROOM_API_TOKEN: must be at least 16 characters")
        redis_url = _url(env, "PRESSROOM_REDIS_URL", cls.redis_url, ("redis", "rediss", "unix"))
        return cls(
            redis_url=redis_url,
            s3_endpoint_url=_url(env, "PRESSROOM_S3_ENDPOINT_URL", "", ("http", "https")) or None,
            site_bucket=_bucket(env, "PRESSROOM_SITE_BUCKET", cls.site_bucket),
            data_bucket=_bucket(env, "PRESSROOM_DATA_BUCKET", cls.data_bucket),
            site_url=_url(env, "PRESSROOM_SITE_URL", f"http://127.0.0.1:{site_port}", ("http", "https")),
            public_api_url=_url(
                env, "PRESSROOM_PUBLIC_API_URL", f"http://127.0.0.1:{port}", ("http", "https")
            ),
            webhook_secrets=secrets,
            webhook_keys=keys,
            superdesk_secrets=superdesk,
            api_token=token,
            port=port,
            site_port=site_port,
            max_body_bytes=_int(env, "PRESSROOM_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1024),
            idempotency_ttl=_int(env, "PRESSROOM_IDEMPOTENCY_TTL", cls.idempotency_ttl, minimum=86400),
            webhook_allow_networks=_networks(env, "PRESSROOM_WEBHOOK_ALLOW_NETWORKS"),
            photo_allow_networks=_networks(env, "PRESSROOM_PHOTO_ALLOW_NETWORKS"),
            photo_hosts=_hosts(env, "PRESSROOM_PHOTO_HOSTS", cls.photo_hosts),
            photo_max_bytes=_int(env, "PRESSROOM_PHOTO_MAX_BYTES", cls.photo_max_bytes, minimum=1024),
            photo_max_pixels=_int(env, "PRESSROOM_PHOTO_MAX_PIXELS", cls.photo_max_pixels, minimum=10_000),
            smtp_url=_url(env, "PRESSROOM_SMTP_URL", "", ("smtp", "smtps")),
            mail_from=env.get("PRESSROOM_MAIL_FROM", "").strip() or cls.mail_from,
            ingest_workers=_int(env, "PRESSROOM_INGEST_WORKERS", cls.ingest_workers, minimum=1),
            worker_concurrency=_int(env, "PRESSROOM_WORKER_CONCURRENCY", cls.worker_concurrency, minimum=1),
            task_time_limit=_int(env, "PRESSROOM_TASK_TIME_LIMIT", cls.task_time_limit, minimum=10),
            s3_concurrency=_int(env, "PRESSROOM_S3_CONCURRENCY", cls.s3_concurrency, minimum=1),
            state_dir=env.get("PRESSROOM_STATE_DIR", "").strip() or cls.state_dir,
            cloudfront_distribution_id=env.get("PRESSROOM_CLOUDFRONT_DISTRIBUTION_ID", "").strip(),
            cloudfront_endpoint_url=_url(env, "PRESSROOM_CLOUDFRONT_ENDPOINT_URL", "", ("http", "https")) or None,
            log_format=_choice(env, "PRESSROOM_LOG_FORMAT", cls.log_format, LOG_FORMATS),
            worker_metrics_port=_int(env, "PRESSROOM_WORKER_METRICS_PORT", 0, maximum=MAX_PORT),
            worker_metrics_host=env.get("PRESSROOM_WORKER_METRICS_HOST", "").strip() or cls.worker_metrics_host,
        )

    @property
    def visibility_timeout(self) -> int:
        """Redis redelivers unacked tasks after this.

        It must exceed any task's run time and any retry countdown (at most 300 s), or a
        task would run twice at once; it is also how long the tasks of a worker that died
        as a whole (not just a pool process) wait before another worker takes them.
        """
        return max(900, self.task_time_limit * 3)


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
