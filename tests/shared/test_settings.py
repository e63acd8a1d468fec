import pytest

from shared.settings import Settings, SettingsError, parse_webhook_secret
from tests.conftest import WEBHOOK_SECRET


def test_defaults_follow_the_port():
    s = Settings.from_env({"PRESSROOM_PORT": "9000"})
    assert s.port == 9000
    assert s.public_api_url == "http://127.0.0.1:9000"
    assert s.site_port == 9001
    assert s.max_body_bytes == 5 * 1024 * 1024


def test_secrets_rotate_and_decode():
    s = Settings.from_env({"PRESSROOM_WEBHOOK_SECRETS": f"{WEBHOOK_SECRET}, {WEBHOOK_SECRET}"})
    assert len(s.webhook_keys) == 2
    assert s.webhook_keys[0] == b"pressroom-test-secret-0123456789"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PRESSROOM_SITE_BUCKET": ""}, "PRESSROOM_SITE_BUCKET: a bucket name is required"),
        ({"PRESSROOM_DATA_BUCKET": "Bad_Bucket"}, "PRESSROOM_DATA_BUCKET: 'Bad_Bucket' is not a valid S3 bucket name"),
        ({"PRESSROOM_WEBHOOK_SECRETS": "secret123"}, "PRESSROOM_WEBHOOK_SECRETS: secret must start with 'whsec_'"),
        ({"PRESSROOM_WEBHOOK_SECRETS": "whsec_!!!notbase64"}, "is not valid base64"),
        ({"PRESSROOM_WEBHOOK_SECRETS": "whsec_c2hvcnQ="}, "at least 16 bytes"),
        ({"PRESSROOM_REDIS_URL": "localhost:6379"}, "PRESSROOM_REDIS_URL: expected a redis/rediss/unix URL"),
        ({"PRESSROOM_PORT": "eighty"}, "PRESSROOM_PORT: expected an integer"),
        ({"PRESSROOM_API_TOKEN": "short"}, "PRESSROOM_API_TOKEN: must be at least 16 characters"),
        ({"PRESSROOM_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8,nonsense"}, "'nonsense' is not a CIDR"),
        ({"PRESSROOM_SMTP_URL": "http://mail"}, "PRESSROOM_SMTP_URL: expected a smtp/smtps URL"),
        ({"PRESSROOM_LOG_FORMAT": "xml"}, "PRESSROOM_LOG_FORMAT: expected one of text, json, got 'xml'"),
    ],
)
def test_bad_settings_give_one_clear_line(env, message):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_log_format_is_text_unless_json_is_asked_for():
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"PRESSROOM_LOG_FORMAT": " JSON "}).log_format == "json"


def test_secrets_never_appear_in_repr():
    s = Settings.from_env(
        {"PRESSROOM_WEBHOOK_SECRETS": WEBHOOK_SECRET, "PRESSROOM_API_TOKEN": "token-abcdefghijklmnop",
         "PRESSROOM_REDIS_URL": "redis://:hunter2hunter2@127.0.0.1:6379/0"}
    )
    text = repr(s)
    assert WEBHOOK_SECRET not in text and "token-abcdefghijklmnop" not in text and "hunter2hunter2" not in text


def test_parse_webhook_secret_accepts_unpadded_base64():
    assert parse_webhook_secret(WEBHOOK_SECRET.rstrip("=")) == b"pressroom-test-secret-0123456789"


def test_photo_settings_default_to_any_host_20_mib_and_40_megapixels():
    s = Settings.from_env({})
    assert s.photo_hosts == ("*",)
    assert s.photo_max_bytes == 20 * 1024 * 1024
    assert s.photo_max_pixels == 40_000_000


def test_photo_settings_parse_hosts_suffixes_and_limits():
    s = Settings.from_env(
        {
            "PRESSROOM_PHOTO_HOSTS": " Photos.Example.org, .cdn.example.net. ,127.0.0.1,[::1]",
            "PRESSROOM_PHOTO_MAX_BYTES": "1048576",
            "PRESSROOM_PHOTO_MAX_PIXELS": "1000000",
        }
    )
    assert s.photo_hosts == ("photos.example.org", ".cdn.example.net", "127.0.0.1", "::1")
    assert (s.photo_max_bytes, s.photo_max_pixels) == (1048576, 1000000)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PRESSROOM_PHOTO_HOSTS": "a.example.org,*.example.org"}, "PRESSROOM_PHOTO_HOSTS: '*.example.org' is not"),
        ({"PRESSROOM_PHOTO_HOSTS": "http://photos.example.org"}, "PRESSROOM_PHOTO_HOSTS: 'http://photos.example.org'"),
        ({"PRESSROOM_PHOTO_MAX_BYTES": "20MB"}, "PRESSROOM_PHOTO_MAX_BYTES: expected an integer"),
        ({"PRESSROOM_PHOTO_MAX_BYTES": "10"}, "PRESSROOM_PHOTO_MAX_BYTES: must be at least 1024"),
        ({"PRESSROOM_PHOTO_MAX_PIXELS": "0"}, "PRESSROOM_PHOTO_MAX_PIXELS: must be at least 10000"),
    ],
)
def test_bad_photo_settings_give_one_clear_line(env, message):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PRESSROOM_PORT": "70000"}, "PRESSROOM_PORT: must be at most 65535, got 70000"),
        ({"PRESSROOM_PORT": "65535"}, "PRESSROOM_SITE_PORT: set it when PRESSROOM_PORT is 65535"),
        ({"PRESSROOM_SITE_PORT": "65536"}, "PRESSROOM_SITE_PORT: must be at most 65535"),
        ({"PRESSROOM_WORKER_METRICS_PORT": "99999"}, "PRESSROOM_WORKER_METRICS_PORT: must be at most 65535"),
        ({"PRESSROOM_REDIS_URL": "redis://127.0.0.1:abc/0"}, "PRESSROOM_REDIS_URL: the port in"),
        ({"PRESSROOM_REDIS_URL": "redis://:pw-hidden@127.0.0.1:99999/0"}, "is not a number from 0 to 65535"),
        ({"PRESSROOM_REDIS_URL": "redis://127.0.0.1:6379/x"}, "PRESSROOM_REDIS_URL: the database in"),
        ({"PRESSROOM_S3_ENDPOINT_URL": "http://127.0.0.1:port"}, "PRESSROOM_S3_ENDPOINT_URL: the port in"),
    ],
)
def test_ports_and_url_parts_the_libraries_would_refuse_later_give_one_clear_line(env, message):
    """Each of these used to pass here and end in a traceback from socket, redis-py or botocore."""
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert message in str(info.value)
    assert "\n" not in str(info.value) and "pw-hidden" not in str(info.value)


def test_ports_at_the_edges_and_plain_redis_urls_are_accepted():
    s = Settings.from_env({"PRESSROOM_PORT": "65534", "PRESSROOM_REDIS_URL": "redis://127.0.0.1:6380"})
    assert (s.port, s.site_port, s.redis_url) == (65534, 65535, "redis://127.0.0.1:6380")
    assert Settings.from_env({"PRESSROOM_REDIS_URL": "rediss://:pw@cache.example.org:6380/3/"}).redis_url.endswith("/3")
