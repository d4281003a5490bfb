"""SPDY/3.1 framing, as far as the Kubernetes stream protocols use it (moby/spdystream, which
kubectl and the kubelet speak): control frames SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS,
PING, GOAWAY, HEADERS and WINDOW_UPDATE, and data frames with their FIN flag. Header blocks are
zlib streams primed with SPDY/3's fixed dictionary, one compression context per direction for
the whole connection.

kubectl's port-forward sends these frames inside WebSocket binary messages
(`SPDY/3.1+portforward.k8s.io`); the bytes are parsed here as one stream, whatever the message
boundaries.
"""
import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = \
    1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR, RST_INVALID_STREAM, RST_CANCEL = 1, 2, 5
MAX_LENGTH = (1 << 24) - 1


def _dictionary() -> bytes:
    """SPDY/3's header-compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1):
    length-prefixed header names and values, then a run of common strings. The peer's zlib
    checks its Adler-32, so it must be byte-exact."""
    words = (
        "options head post put delete trace accept accept-charset accept-encoding "
        "accept-language accept-ranges age allow authorization cache-control connection "
        "content-base content-encoding content-language content-length content-location "
        "content-md5 content-range content-type date etag expect expires from host if-match "
        "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
        "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
        "server te trailer transfer-encoding upgrade user-agent vary via warning "
        "www-authenticate method get status").split()
    words += ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive",
              "origin"]
    prefixed = b"".join(struct.pack(">I", len(w)) + w.encode() for w in words)
    codes = "100101201202205206300302303304305306307402405406407408409410411412413414415416417" \
            "502504505"
    reasons = ("203 Non-Authoritative Information204 No Content301 Moved Permanently"
               "400 Bad Request401 Unauthorized403 Forbidden404 Not Found"
               "500 Internal Server Error501 Not Implemented503 Service Unavailable")
    dates = "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 " \
            "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    types = ("chunked,text/html,image/png,image/jpg,image/gif,application/xml,"
             "application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,"
             "deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    return prefixed + (codes + reasons + dates + types).encode()


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    """The peer sent what SPDY does not allow; the connection ends."""


@dataclass
class Frame:
    """One frame: a control frame (`kind` set) or a data frame (`kind` None)."""
    kind: "int | None"
    flags: int
    stream_id: int = 0
    data: bytes = b""
    headers: dict = field(default_factory=dict)  # lower-case name -> value
    value: int = 0  # RST_STREAM/GOAWAY status, PING id, WINDOW_UPDATE delta

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class HeaderCodec:
    """The two zlib contexts of a connection: one inflating what the peer sends, one deflating
    what we send; each block ends with a sync flush, so the peer can read it at once."""

    def __init__(self):
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zdict=DICTIONARY)

    def decode(self, block: bytes) -> dict:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as e:
            raise ProtocolError(f"header block: {e}") from None
        return parse_headers(raw)

    def encode(self, headers: dict) -> bytes:
        return self._deflate.compress(render_headers(headers)) + \
            self._deflate.flush(zlib.Z_SYNC_FLUSH)


def render_headers(headers: dict) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        for text in (name.lower(), value):
            raw = text.encode()
            out.append(struct.pack(">I", len(raw)) + raw)
    return b"".join(out)


def parse_headers(raw: bytes) -> dict:
    """A name/value block; a header sent twice keeps its values NUL-joined, as SPDY joins them."""
    try:
        (count,), at, headers = struct.unpack_from(">I", raw), 4, {}
        for _ in range(count):
            (size,) = struct.unpack_from(">I", raw, at)
            name, at = raw[at + 4:at + 4 + size].decode(), at + 4 + size
            (size,) = struct.unpack_from(">I", raw, at)
            value, at = raw[at + 4:at + 4 + size].decode(), at + 4 + size
            if at > len(raw):
                raise ProtocolError("header block shorter than its lengths")
            headers[name.lower()] = value
        return headers
    except (struct.error, UnicodeDecodeError) as e:
        raise ProtocolError(f"header block: {e}") from None


class Parser:
    """Frames out of a byte stream fed in pieces of any size."""

    def __init__(self, codec: HeaderCodec):
        self.codec = codec
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= 8:
            length = int.from_bytes(self._buffer[5:8], "big")
            if len(self._buffer) < 8 + length:
                break
            head, body = bytes(self._buffer[:8]), bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            frames.append(self._frame(head, body))
        return frames

    def _frame(self, head: bytes, body: bytes) -> Frame:
        first, flags = struct.unpack_from(">I", head)[0], head[4]
        if not first & 0x80000000:
            return Frame(None, flags, first & 0x7FFFFFFF, body)
        version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version}, not {VERSION}")
        try:
            if kind == SYN_STREAM:
                stream_id = struct.unpack_from(">I", body)[0] & 0x7FFFFFFF
                return Frame(kind, flags, stream_id, headers=self.codec.decode(body[10:]))
            if kind in (SYN_REPLY, HEADERS):
                stream_id = struct.unpack_from(">I", body)[0] & 0x7FFFFFFF
                return Frame(kind, flags, stream_id, headers=self.codec.decode(body[4:]))
            if kind in (RST_STREAM, WINDOW_UPDATE):
                stream_id, value = struct.unpack_from(">II", body)
                return Frame(kind, flags, stream_id & 0x7FFFFFFF, value=value & 0x7FFFFFFF)
            if kind == PING:
                return Frame(kind, flags, value=struct.unpack_from(">I", body)[0])
            if kind == GOAWAY:
                last, status = struct.unpack_from(">II", body)
                return Frame(kind, flags, last & 0x7FFFFFFF, value=status)
        except struct.error:
            raise ProtocolError(f"control frame {kind} of {len(body)} bytes") from None
        return Frame(kind, flags, data=body)  # SETTINGS and unknown kinds: kept, not read


def _control(kind: int, flags: int, body: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(body)) + body


def data_frame(stream_id: int, data: bytes = b"", fin: bool = False) -> bytes:
    if len(data) > MAX_LENGTH:
        raise ValueError(f"a data frame carries at most {MAX_LENGTH} bytes")
    return struct.pack(">II", stream_id & 0x7FFFFFFF,
                       ((FLAG_FIN if fin else 0) << 24) | len(data)) + data


def syn_stream(codec: HeaderCodec, stream_id: int, headers: dict, fin: bool = False) -> bytes:
    body = struct.pack(">IIH", stream_id, 0, 0) + codec.encode(headers)
    return _control(SYN_STREAM, FLAG_FIN if fin else 0, body)


def syn_reply(codec: HeaderCodec, stream_id: int, headers: "dict | None" = None,
              fin: bool = False) -> bytes:
    body = struct.pack(">I", stream_id) + codec.encode(headers or {})
    return _control(SYN_REPLY, FLAG_FIN if fin else 0, body)


def rst_stream(stream_id: int, status: int) -> bytes:
    return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))


def ping(ping_id: int) -> bytes:
    return _control(PING, 0, struct.pack(">I", ping_id))


def goaway(last_stream_id: int, status: int = 0) -> bytes:
    return _control(GOAWAY, 0, struct.pack(">II", last_stream_id, status))
