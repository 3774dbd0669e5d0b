"""Two real phones: Debian's `linphonec` (liblinphone 5.1) on loopback, calling each other
with audio from a WAV file and sending RFC 6035 vq-rtcpxr reports to a collector.

What it takes to run headless (found on this machine): no storage (`[storage] uri=null`),
IPv4 only and RTP bound to 127.0.0.1, RTCP XR with VoIP metrics and statistics summary
blocks and no receiver-RTT size limit (else reports carry only the RTT block), calls routed
by `reg_proxy` to the other phone with no REGISTER, quality reporting to
`sip:…@127.0.0.1:PORT;transport=udp`, `soundcard use files` and `play` on stdin. linphonec
rewrites its `-c` file on exit, so each run writes it fresh.
"""

from __future__ import annotations

import math
import shutil
import socket
import struct
import subprocess
import time
import wave
from pathlib import Path
from types import TracebackType
from typing import Self

LINPHONEC = shutil.which("linphonec") or "/usr/bin/linphonec"
# (mime, rate, channels): every codec liblinphone 5.1 offers but PCMU, off
DISABLED_CODECS = [("opus", 48000, 2), ("opus", 48000, 1), ("speex", 16000, 1), ("speex", 8000, 1),
                   ("speex", 32000, 1), ("PCMA", 8000, 1), ("GSM", 8000, 1), ("G722", 8000, 1),
                   ("iLBC", 8000, 1), ("L16", 44100, 1), ("BV16", 8000, 1), ("G729", 8000, 1),
                   ("AMR", 8000, 1), ("AMR-WB", 16000, 1)]  # fmt: skip


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_tone(path: Path, seconds: float) -> Path:
    """An 8 kHz mono 16-bit WAV of a 440 Hz tone."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        frames = int(8000 * seconds)
        out.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(frames)
            )
        )
    return path


class Phone:
    def __init__(self, workdir: Path, user: str, collector_port: int, interval_s: int = 5) -> None:
        self.workdir = workdir
        self.user = user
        self.sip_port = _free_udp_port()
        self.rtp_port = _free_udp_port()
        self.collector_port = collector_port
        self.interval_s = interval_s
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{user}.log"

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@127.0.0.1"

    def config(self, peer: Phone) -> str:
        codecs = ["[audio_codec_0]\nmime=PCMU\nrate=8000\nchannels=1\nenabled=1\n"]
        codecs += [
            f"[audio_codec_{n}]\nmime={mime}\nrate={rate}\nchannels={channels}\nenabled=0\n"
            for n, (mime, rate, channels) in enumerate(DISABLED_CODECS, start=1)
        ]
        return (
            f"[sip]\nsip_port={self.sip_port}\nsip_tcp_port=-1\nuse_ipv6=0\ndefault_proxy=0\n"
            f"[rtp]\naudio_rtp_port={self.rtp_port}\nbind_address=127.0.0.1\nrtcp_xr_enabled=1\n"
            "rtcp_xr_voip_metrics_enabled=1\nrtcp_xr_stat_summary_enabled=1\nrtcp_xr_rcvr_rtt_max_size=0\n"
            "[storage]\nuri=null\n[sound]\nechocancellation=0\n[misc]\nenable_video=0\n"
            + "".join(codecs)
            + f"[proxy_0]\nreg_proxy=sip:127.0.0.1:{peer.sip_port}\nreg_identity={self.aor}\n"
            "reg_sendregister=0\nquality_reporting_enabled=1\n"
            f"quality_reporting_collector=sip:vq@127.0.0.1:{self.collector_port};transport=udp\n"
            f"quality_reporting_interval={self.interval_s}\n"
        )

    def start(self, peer: Phone, tone: Path, answer: bool) -> None:
        config = self.workdir / f"{self.user}.rc"
        config.write_text(self.config(peer))
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [LINPHONEC, "-c", str(config), *(["-a"] if answer else [])],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.say("soundcard use files", f"play {tone}")

    def say(self, *commands: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        for command in commands:
            self.process.stdin.write(command.encode() + b"\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            self.say("quit")
            self.process.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(5)
        self.process = None


class Call:
    """Phone `a` calls phone `b` (who answers) for `seconds`, then hangs up; both send
    their reports to `collector_port`."""

    def __init__(self, workdir: Path, collector_port: int, seconds: float, interval_s: int = 5) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.seconds = seconds
        self.tone = write_tone(workdir / "tone.wav", seconds + 15)
        self.a = Phone(workdir, "a", collector_port, interval_s)
        self.b = Phone(workdir, "b", collector_port, interval_s)
        self.started = self.ended = 0.0

    def __enter__(self) -> Self:
        self.b.start(self.a, self.tone, answer=True)
        self.a.start(self.b, self.tone, answer=False)
        time.sleep(1.5)  # both cores up
        self.started = time.time()
        self.a.say(f"call sip:b@127.0.0.1:{self.b.sip_port}")
        time.sleep(self.seconds)
        self.a.say("terminate")
        self.ended = time.time()
        time.sleep(3)  # the CallTerm session reports go out
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.a.stop()
        self.b.stop()
