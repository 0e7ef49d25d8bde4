"""A reflection-driven gRPC client, as grpcurl works, on a different gRPC and protobuf
implementation (Python grpcio on gRPC C-core, Debian package python3-grpcio).

It knows no .proto: it asks the server's reflection service for the reflection descriptor
itself (the only hand-encoded exchange), then loads every served FileDescriptorProto into a
protobuf DescriptorPool (which checks every type reference, as protoc does) and makes each
call with message classes built from those descriptors: list, describe, health Check and
Watch, and a ping through ProcessEvent. Prints one JSON object.

Usage: reflection_client.py HOST:PORT [CA_PEM]
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

REFLECTION = "grpc.reflection.v1.ServerReflection"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def fields(buf):
    """(field number, wire type, value) of each field of an encoded message."""
    i = 0
    while i < len(buf):
        key, shift = 0, 0
        while True:
            b = buf[i]
            i += 1
            key |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, shift = 0, 0
            while True:
                b = buf[i]
                i += 1
                value |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
        elif wire == 2:
            n, shift = 0, 0
            while True:
                b = buf[i]
                i += 1
                n |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            value = buf[i : i + n]
            i += n
        else:
            raise ValueError("unexpected wire type %d" % wire)
        yield number, wire, value


def main():
    target = sys.argv[1]
    if len(sys.argv) > 2:
        with open(sys.argv[2], "rb") as f:
            channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(f.read()))
    else:
        channel = grpc.insecure_channel(target)
    identity = lambda b: b  # noqa: E731

    # Bootstrap: ServerReflectionRequest{file_containing_symbol (4): REFLECTION}, by hand.
    raw = channel.stream_stream(
        "/%s/ServerReflectionInfo" % REFLECTION,
        request_serializer=identity,
        response_deserializer=identity,
    )
    name = REFLECTION.encode()
    [answer] = list(raw(iter([b"\x22" + varint(len(name)) + name]), timeout=20))
    [fdr] = [v for n, _, v in fields(answer) if n == 4]  # file_descriptor_response
    pool = descriptor_pool.DescriptorPool()
    loaded = set()

    def load(file_bytes):
        fd = descriptor_pb2.FileDescriptorProto.FromString(file_bytes)
        if fd.name not in loaded:
            pool.Add(fd)
            loaded.add(fd.name)

    for n, _, v in fields(fdr):
        if n == 1:
            load(v)

    factory = message_factory.MessageFactory(pool)

    def cls(full_name):
        return factory.GetPrototype(pool.FindMessageTypeByName(full_name))

    def stub(service, method):
        m = pool.FindServiceByName(service).FindMethodByName(method)
        kind = (
            ("stream_" if m.client_streaming else "unary_")
            + ("stream" if m.server_streaming else "unary")
        )
        return m, getattr(channel, kind)(
            "/%s/%s" % (service, method),
            request_serializer=lambda msg: msg.SerializeToString(),
            response_deserializer=cls(m.output_type.full_name).FromString,
        )

    # Everything else with classes built from the served descriptors.
    Req = cls("grpc.reflection.v1.ServerReflectionRequest")
    _, info = stub(REFLECTION, "ServerReflectionInfo")
    [listed] = list(info(iter([Req(list_services="")]), timeout=20))
    services = [s.name for s in listed.list_services_response.service]
    for answer in info(iter([Req(file_containing_symbol=s) for s in services]), timeout=20):
        for file_bytes in answer.file_descriptor_response.file_descriptor_proto:
            load(file_bytes)
    [missing] = list(info(iter([Req(file_containing_symbol="no.such.Symbol")]), timeout=20))

    agent = pool.FindServiceByName("zentinel.agent.v2.AgentServiceV2")
    describe = {
        m.name: [m.input_type.full_name, m.client_streaming, m.server_streaming]
        for m in agent.methods
    }

    check_method, check = stub("grpc.health.v1.Health", "Check")
    status_enum = check_method.output_type.fields_by_name["status"].enum_type
    health_req = cls("grpc.health.v1.HealthCheckRequest")
    health = {}
    for service in ["", "zentinel.agent.v2.AgentServiceV2"]:
        status = check(health_req(service=service), timeout=20).status
        health[service] = status_enum.values_by_number[status].name
    try:
        check(health_req(service="no.such.Service"), timeout=20)
        unknown = "OK"
    except grpc.RpcError as err:
        unknown = err.code().name
    _, watch = stub("grpc.health.v1.Health", "Watch")
    stream = watch(health_req(service=""), timeout=20)
    first = status_enum.values_by_number[next(stream).status].name
    stream.cancel()

    _, process_event = stub("zentinel.agent.v2.AgentServiceV2", "ProcessEvent")
    ping = cls("zentinel.agent.v2.ProxyToAgent")(ping={"sequence": 7, "timestamp_ms": 1})
    reply = process_event(ping, timeout=20)

    print(
        json.dumps(
            {
                "services": services,
                "files": sorted(loaded),
                "missing": missing.error_response.error_code,
                "describe": describe,
                "health": health,
                "unknown": unknown,
                "watch": first,
                "reply": reply.WhichOneof("message"),
                "pongSequence": reply.pong.sequence,
            }
        )
    )


main()
