"""SimulatedAgent, checked from the outside with pysnmp's real client and net-snmp's snmpget.

pytest-asyncio is not installed, so every test drives its own loop with asyncio.run.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import univ
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    bulk_cmd,
    get_cmd,
    next_cmd,
)
from pysnmp.proto import api

from collector.sim.snmp_agent import OidValues, SimulatedAgent, TypedValue

v2c = api.v2c
COMMUNITY = "sim-community"
SYS = "1.3.6.1.2.1.1"
VALUES: dict[str, TypedValue] = {
    f"{SYS}.1.0": TypedValue("octets", "HookSim ATA 1.0"),
    f"{SYS}.2.0": TypedValue("oid", "1.3.6.1.4.1.99999.1"),
    f"{SYS}.3.0": TypedValue("timeticks", 12345),
    f"{SYS}.9.0": TypedValue("integer", -9),
    f"{SYS}.10.0": TypedValue("integer", 10),
    "1.3.6.1.2.1.2.2.1.5.1": TypedValue("gauge", 100_000_000),
    "1.3.6.1.2.1.2.2.1.6.1": TypedValue("octets", b"\x00\x1a\x2b\x3c\x4d\x5e"),
    "1.3.6.1.2.1.2.2.1.10.1": TypedValue("counter32", 2**32 + 5),  # wraps like a real counter
    "1.3.6.1.2.1.4.20.1.1.10.0.0.5": TypedValue("ipaddress", "10.0.0.5"),
    "1.3.6.1.2.1.31.1.1.1.6.1": TypedValue("counter64", 2**40 + 7),
}
TAGS = {
    "integer": v2c.Integer32.tagSet,
    "octets": v2c.OctetString.tagSet,
    "oid": v2c.ObjectIdentifier.tagSet,
    "timeticks": v2c.TimeTicks.tagSet,
    "gauge": v2c.Gauge32.tagSet,
    "counter32": v2c.Counter32.tagSet,
    "counter64": v2c.Counter64.tagSet,
    "ipaddress": v2c.IpAddress.tagSet,
    "noSuchObject": v2c.NoSuchObject.tagSet,
    "endOfMibView": v2c.EndOfMibView.tagSet,
}

Binds = list[tuple[str, Any]]
Reply = tuple[Any, int, int, Binds]


def kind(value: Any) -> str:
    return next(name for name, tag in TAGS.items() if value.tagSet == tag)


class Client:
    """Thin wrapper over pysnmp's hlapi: one datagram per call (retries=0) so counts are exact."""

    def __init__(self, engine: SnmpEngine, port: int) -> None:
        self.engine, self.port = engine, port

    async def _call(self, fn: Any, *args: Any, community: str, mp_model: int, timeout: float) -> Reply:
        target = await UdpTransportTarget.create(("127.0.0.1", self.port), timeout=timeout, retries=0)
        err, status, index, binds = await fn(
            self.engine,
            CommunityData(community, mpModel=mp_model),
            target,
            ContextData(),
            *args,
            lookupMib=False,
        )
        return err, int(status), int(index), [(str(o), v) for o, v in binds]

    async def get(
        self, *oids: str, community: str = COMMUNITY, mp_model: int = 1, timeout: float = 1.0
    ) -> Reply:
        objs = [ObjectType(ObjectIdentity(o)) for o in oids]
        return await self._call(get_cmd, *objs, community=community, mp_model=mp_model, timeout=timeout)

    async def next(self, *oids: str) -> Reply:
        objs = [ObjectType(ObjectIdentity(o)) for o in oids]
        return await self._call(next_cmd, *objs, community=COMMUNITY, mp_model=1, timeout=1.0)

    async def bulk(self, non_repeaters: int, max_reps: int, *oids: str) -> Reply:
        objs = [ObjectType(ObjectIdentity(o)) for o in oids]
        return await self._call(
            bulk_cmd,
            non_repeaters,
            max_reps,
            *objs,
            community=COMMUNITY,
            mp_model=1,
            timeout=1.0,
        )


def run_agent(
    values: Mapping[str, TypedValue] | OidValues,
    body: Callable[[SimulatedAgent, Client], Awaitable[None]],
) -> SimulatedAgent:
    source: OidValues = values if callable(values) else (lambda: values)

    async def main() -> SimulatedAgent:
        agent = SimulatedAgent(COMMUNITY, source)
        await agent.start()
        engine = SnmpEngine()
        try:
            await body(agent, Client(engine, agent.port))
        finally:
            engine.close_dispatcher()
            await agent.stop()
        return agent

    return asyncio.run(main())


async def wait_for(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_get_returns_typed_values() -> None:
    async def body(agent: SimulatedAgent, client: Client) -> None:
        err, status, _, binds = await client.get(*VALUES)
        assert err is None and status == 0
        assert [o for o, _ in binds] == list(VALUES)
        got = dict(binds)
        for oid, tv in VALUES.items():
            assert kind(got[oid]) == tv.kind, oid
        assert bytes(got[f"{SYS}.1.0"]) == b"HookSim ATA 1.0"
        assert bytes(got["1.3.6.1.2.1.2.2.1.6.1"]) == b"\x00\x1a\x2b\x3c\x4d\x5e"
        assert str(got[f"{SYS}.2.0"]) == "1.3.6.1.4.1.99999.1"
        assert int(got[f"{SYS}.3.0"]) == 12345
        assert int(got[f"{SYS}.9.0"]) == -9
        assert int(got["1.3.6.1.2.1.2.2.1.5.1"]) == 100_000_000
        assert int(got["1.3.6.1.2.1.2.2.1.10.1"]) == 5
        assert got["1.3.6.1.2.1.4.20.1.1.10.0.0.5"].prettyPrint() == "10.0.0.5"
        assert int(got["1.3.6.1.2.1.31.1.1.1.6.1"]) == 2**40 + 7

    run_agent(VALUES, body)


def test_get_missing_oid_is_no_such_object() -> None:
    async def body(agent: SimulatedAgent, client: Client) -> None:
        err, status, _, binds = await client.get(f"{SYS}.3.0", f"{SYS}.4.0", f"{SYS}.3")
        assert err is None and status == 0  # v2c: per-varbind exception, not an error status
        assert [kind(v) for _, v in binds] == ["timeticks", "noSuchObject", "noSuchObject"]

    run_agent(VALUES, body)


def test_getnext_orders_oids_numerically() -> None:
    async def body(agent: SimulatedAgent, client: Client) -> None:
        _, _, _, binds = await client.next(f"{SYS}.3.0", f"{SYS}.9.0", f"{SYS}.4", SYS, "0.0")
        assert [o for o, _ in binds] == [
            f"{SYS}.9.0",
            f"{SYS}.10.0",
            f"{SYS}.9.0",
            f"{SYS}.1.0",
            f"{SYS}.1.0",
        ]
        assert int(binds[1][1]) == 10
        _, status, _, binds = await client.next("1.3.6.1.2.1.31.1.1.1.6.1", "1.4")
        assert status == 0
        assert [(o, kind(v)) for o, v in binds] == [
            ("1.3.6.1.2.1.31.1.1.1.6.1", "endOfMibView"),
            ("1.4", "endOfMibView"),
        ]

    run_agent(VALUES, body)


def test_getbulk_honours_non_repeaters_and_max_repetitions() -> None:
    async def body(agent: SimulatedAgent, client: Client) -> None:
        err, status, _, binds = await client.bulk(1, 3, f"{SYS}.3.0", f"{SYS}.1.0", f"{SYS}.9.0")
        assert err is None and status == 0
        non_repeater = [f"{SYS}.9.0"]  # one GETNEXT, then 3 rows of the two repeating columns
        rows = [f"{SYS}.2.0", f"{SYS}.10.0", f"{SYS}.3.0", "1.3.6.1.2.1.2.2.1.5.1"]
        rows += [f"{SYS}.9.0", "1.3.6.1.2.1.2.2.1.6.1"]
        assert [o for o, _ in binds] == non_repeater + rows
        # Columns that run off the end repeat endOfMibView; the agent stops once all have.
        _, _, _, binds = await client.bulk(0, 50, "1.3.6.1.2.1.4.20.1.1.10.0.0.5")
        assert [(o, kind(v)) for o, v in binds] == [
            ("1.3.6.1.2.1.31.1.1.1.6.1", "counter64"),
            ("1.3.6.1.2.1.31.1.1.1.6.1", "endOfMibView"),
        ]

    run_agent(VALUES, body)


def test_getbulk_is_truncated_to_fit_one_datagram_and_keeps_request_id() -> None:
    table = {f"1.3.6.1.4.1.99999.2.{i}": TypedValue("octets", "x" * 100) for i in range(200)}

    async def body(agent: SimulatedAgent, client: Client) -> None:
        pdu = v2c.GetBulkRequestPDU()
        v2c.apiBulkPDU.set_defaults(pdu)
        v2c.apiBulkPDU.set_request_id(pdu, 4242)
        v2c.apiBulkPDU.set_non_repeaters(pdu, 0)
        v2c.apiBulkPDU.set_max_repetitions(pdu, 1000)
        v2c.apiBulkPDU.set_varbinds(pdu, [((1, 3, 6, 1, 4, 1, 99999, 2), v2c.null)])
        msg = v2c.Message()
        v2c.apiMessage.set_defaults(msg)
        v2c.apiMessage.set_community(msg, COMMUNITY)
        v2c.apiMessage.set_pdu(msg, pdu)

        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            await loop.sock_sendto(sock, encoder.encode(msg), ("127.0.0.1", agent.port))
            reply = await asyncio.wait_for(loop.sock_recv(sock, 65535), 2)
        assert 1400 - 150 < len(reply) <= 1400  # ~117-byte varbinds: full, but not over
        rsp, _ = decoder.decode(reply, asn1Spec=v2c.Message())
        rsp_pdu = v2c.apiMessage.get_pdu(rsp)
        assert int(v2c.apiPDU.get_request_id(rsp_pdu)) == 4242
        binds = v2c.apiPDU.get_varbinds(rsp_pdu)
        assert 5 < len(binds) < 200
        assert [o.asTuple()[-1] for o, _ in binds] == list(range(len(binds)))  # numeric order

    run_agent(table, body)


def test_values_are_read_on_every_request() -> None:
    state = {f"{SYS}.3.0": TypedValue("timeticks", 100)}

    async def body(agent: SimulatedAgent, client: Client) -> None:
        _, _, _, first = await client.get(f"{SYS}.3.0")
        state[f"{SYS}.3.0"] = TypedValue("timeticks", 250)
        state[f"{SYS}.5.0"] = TypedValue("octets", "renamed")
        _, _, _, second = await client.get(f"{SYS}.3.0", f"{SYS}.5.0")
        assert int(first[0][1]) == 100
        assert int(second[0][1]) == 250 and bytes(second[1][1]) == b"renamed"

    run_agent(lambda: state, body)


def test_wrong_community_gets_no_answer_and_is_rejected() -> None:
    async def body(agent: SimulatedAgent, client: Client) -> None:
        err, _, _, binds = await client.get(f"{SYS}.1.0", community="public", timeout=0.5)
        assert err is not None and "timeout" in str(err).lower() and binds == []
        assert (agent.requests, agent.rejected) == (0, 1)

    run_agent(VALUES, body)


def test_garbage_is_rejected_and_agent_keeps_answering() -> None:
    request = v2c.GetRequestPDU()
    v2c.apiPDU.set_defaults(request)
    wrong_pdu = v2c.Message()  # well-formed SNMP, but a Response: not something we serve
    v2c.apiMessage.set_defaults(wrong_pdu)
    v2c.apiMessage.set_community(wrong_pdu, COMMUNITY)
    v2c.apiMessage.set_pdu(wrong_pdu, v2c.apiPDU.get_response(request))
    junk = [
        b"",
        b"\x00garbage\xff",
        b"\x30\x82\xff\xff\x02\x01\x01",  # length claims more than was sent
        encoder.encode(univ.Sequence().setComponentByPosition(0, univ.Integer(3))),  # v3
        encoder.encode(wrong_pdu),
        encoder.encode(wrong_pdu) + b"\x00",
    ]

    async def body(agent: SimulatedAgent, client: Client) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for payload in junk:
                sock.sendto(payload, ("127.0.0.1", agent.port))
        await wait_for(lambda: agent.rejected == len(junk))
        err, status, _, binds = await client.get(f"{SYS}.10.0")
        assert err is None and status == 0 and int(binds[0][1]) == 10
        assert agent.requests == 1

    run_agent(VALUES, body)


def test_request_counter_is_exact() -> None:
    async def body(agent: SimulatedAgent, client: Client) -> None:
        for _ in range(3):
            await client.get(f"{SYS}.1.0", f"{SYS}.99.0")
        await client.next(f"{SYS}.1.0")
        await client.bulk(0, 5, SYS)
        await client.get(f"{SYS}.1.0", community="nope", timeout=0.3)
        assert (agent.requests, agent.rejected) == (5, 1)

    run_agent(VALUES, body)


def test_v1_get_reports_no_such_name_and_hides_counter64() -> None:
    async def body(agent: SimulatedAgent, client: Client) -> None:
        _, status, _, binds = await client.get(f"{SYS}.10.0", mp_model=0)
        assert status == 0 and int(binds[0][1]) == 10
        _, status, index, _ = await client.get(f"{SYS}.10.0", "1.3.6.1.2.1.31.1.1.1.6.1", mp_model=0)
        assert (status, index) == (2, 2)  # noSuchName, second varbind

    run_agent(VALUES, body)


def test_broken_value_source_answers_gen_err() -> None:
    def broken() -> Mapping[str, TypedValue]:
        raise RuntimeError("simulated device model crashed")

    async def body(agent: SimulatedAgent, client: Client) -> None:
        err, status, _, _ = await client.get(f"{SYS}.1.0")
        assert err is None and status == 5  # genErr instead of a silent timeout
        assert agent.requests == 1

    run_agent(broken, body)


def test_refuses_to_bind_beyond_loopback() -> None:
    async def main() -> None:
        agent = SimulatedAgent(COMMUNITY, lambda: VALUES)
        with pytest.raises(ValueError):
            await agent.start(host="0.0.0.0")
        await agent.start(host="::1")
        assert agent.port > 0
        await agent.stop()

    asyncio.run(main())


def test_snmpget_cli_cross_check() -> None:
    async def body(agent: SimulatedAgent, client: Client) -> None:
        # Must be an async subprocess: a blocking subprocess.run would stall the agent's loop.
        proc = await asyncio.create_subprocess_exec(
            "snmpget",
            "-v2c",
            "-c",
            COMMUNITY,
            "-On",
            "-r",
            "0",
            "-t",
            "2",
            f"127.0.0.1:{agent.port}",
            f"{SYS}.1.0",
            "1.3.6.1.2.1.31.1.1.1.6.1",
            stdout=asyncio.subprocess.PIPE,
            # Apart: net-snmp's first run ever says "Created directory: ..." on stderr.
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, (out, err)
        assert out.decode().splitlines() == [
            f'.{SYS}.1.0 = STRING: "HookSim ATA 1.0"',
            f".1.3.6.1.2.1.31.1.1.1.6.1 = Counter64: {2**40 + 7}",
        ]
        assert agent.requests == 1

    run_agent(VALUES, body)
