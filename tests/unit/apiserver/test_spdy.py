"""SPDY/3.1 framing as kubectl's port-forward sends it: a capture of kubectl 1.37's first
frames (an error stream, a data stream, curl's request, the data stream's end) parsed in
pieces of every size, and frames we write read back."""
import struct
import zlib
from pathlib import Path

import pytest

from testbed.apiserver import spdy

CAPTURE = (Path(__file__).parent / "data" / "kubectl-1.37-portforward.spdy").read_bytes()


def test_the_dictionary_is_the_one_kubectl_primes_zlib_with():
    # a zlib stream names its dictionary by Adler-32 right after the two header bytes
    assert CAPTURE[18:20] == b"\x78\xf9"
    assert struct.unpack(">I", CAPTURE[20:24])[0] == zlib.adler32(spdy.DICTIONARY)
    assert len(spdy.DICTIONARY) == 1423


@pytest.mark.parametrize("piece", [1, 7, 64, len(CAPTURE)])
def test_kubectls_frames_parse_whatever_the_message_boundaries(piece):
    parser = spdy.Parser(spdy.HeaderCodec())
    frames = []
    for at in range(0, len(CAPTURE), piece):
        frames += parser.feed(CAPTURE[at:at + piece])
    kinds = [(f.kind, f.stream_id, f.fin) for f in frames]
    assert kinds == [(spdy.SYN_STREAM, 1, False), (None, 1, True),
                     (spdy.SYN_STREAM, 3, False), (None, 3, False), (None, 3, True)]
    assert frames[0].headers == {"port": "80", "requestid": "0", "streamtype": "error"}
    assert frames[2].headers == {"port": "80", "requestid": "0", "streamtype": "data"}
    assert frames[3].data.startswith(b"GET / HTTP/1.1\r\n")


def test_what_we_write_reads_back_with_one_compression_context_per_direction():
    ours, theirs = spdy.HeaderCodec(), spdy.HeaderCodec()
    wire = spdy.syn_stream(ours, 1, {"streamType": "data", "Port": "8080"}) + \
        spdy.syn_reply(ours, 1) + spdy.syn_stream(ours, 3, {"port": "8080"}, fin=True) + \
        spdy.data_frame(3, b"x" * 70000, fin=True) + spdy.ping(7) + \
        spdy.rst_stream(3, spdy.RST_CANCEL) + spdy.goaway(3)
    frames = spdy.Parser(theirs).feed(wire)
    assert [(f.kind, f.stream_id, f.fin, f.value) for f in frames] == [
        (spdy.SYN_STREAM, 1, False, 0), (spdy.SYN_REPLY, 1, False, 0),
        (spdy.SYN_STREAM, 3, True, 0), (None, 3, True, 0), (spdy.PING, 0, False, 7),
        (spdy.RST_STREAM, 3, False, spdy.RST_CANCEL), (spdy.GOAWAY, 3, False, 0)]
    assert frames[0].headers == {"streamtype": "data", "port": "8080"}  # names lower-cased
    assert frames[1].headers == {} and frames[3].data == b"x" * 70000


def test_a_frame_cut_short_waits_for_the_rest():
    parser = spdy.Parser(spdy.HeaderCodec())
    frame = spdy.data_frame(5, b"hello")
    assert parser.feed(frame[:-1]) == []
    assert parser.feed(frame[-1:])[0].data == b"hello"


@pytest.mark.parametrize("wire", [
    struct.pack(">HHI", 0x8002, spdy.SYN_STREAM, 10) + bytes(10),  # SPDY/2
    struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, 14) + bytes(10) + b"junk",  # not zlib
    struct.pack(">HHI", 0x8003, spdy.RST_STREAM, 4) + bytes(4),  # too short
], ids=["version", "header-block", "short-control-frame"])
def test_what_spdy_does_not_allow_is_a_protocol_error(wire):
    with pytest.raises(spdy.ProtocolError):
        spdy.Parser(spdy.HeaderCodec()).feed(wire)


def test_a_header_block_claiming_more_than_it_holds_is_refused():
    with pytest.raises(spdy.ProtocolError):
        spdy.parse_headers(struct.pack(">II", 1, 50) + b"name")
