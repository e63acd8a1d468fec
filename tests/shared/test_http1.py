"""HTTP/1.1 framing shared by netloop and s3_put."""

from shared import http1


def test_the_client_frames_host_and_length_itself_and_keeps_a_callers_accept_encoding():
    wire = http1.request_bytes("POST", "/hook", "example.test", b"{}", {
        "Host": "evil.test", "content-length": "999", "Accept-Encoding": "gzip", "X-Kept": "1"})
    head, _, body = wire.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [b"POST /hook HTTP/1.1", b"Host: example.test", b"Content-Length: 2",
                                   b"X-Kept: 1", b"Accept-Encoding: gzip"]
    assert body == b"{}"
