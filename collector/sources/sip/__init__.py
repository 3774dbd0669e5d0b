"""The SIP source: RFC 6035 vq-rtcpxr reports in SIP PUBLISH requests, over UDP, TCP, TLS."""

from collector.sources.sip.listener import SipListener

__all__ = ["SipListener"]
