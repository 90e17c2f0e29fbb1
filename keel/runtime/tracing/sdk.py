"""``keel worker`` and ``keel serve`` export traces when the environment asks for them.

The standard OpenTelemetry variables decide: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or ``OTEL_TRACES_EXPORTER`` set, and
``OTEL_SDK_DISABLED`` not ``true``. Then, if the SDK is installed (the ``otel`` extra:
``pip install 'keelflow[otel]'``), a ``TracerProvider`` is installed as the process's
own, named ``OTEL_SERVICE_NAME`` or ``keel-worker`` / ``keel-server``, with a batch
processor (keel's, ``batching``: ``OTEL_BSP_*``) and the exporters
``OTEL_TRACES_EXPORTER`` lists: ``otlp`` (the default: OTLP over HTTP, to the endpoint
the ``OTEL_EXPORTER_OTLP_*`` variables give) or ``console``. Nothing else is read here:
the exporter reads its own variables. The provider is a ``direct.KeelTracerProvider``:
it knows the processors it was given, so keel's own spans skip the SDK's tracer (the
same spans, a fraction of the cost).

A library embedding keel configures its own provider instead; keel only uses the API.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: what, set, asks for traces
_ASKING = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
           "OTEL_TRACES_EXPORTER")  # fmt: skip


@dataclass(frozen=True)
class Tracing:
    """What was configured: a line for the process's start-up report, and how to flush
    and stop it (spans still in the batch are sent) before the process exits."""

    description: str
    shutdown: Callable[[], None]


class TracingSetupError(Exception):
    """The environment asks for traces this process cannot send (said in one line)."""


def configure(service: str, environ: Mapping[str, str] | None = None) -> Tracing | None:
    """Install a tracer provider as the environment asks (None: it does not ask).
    ``service``: the ``service.name`` unless ``OTEL_SERVICE_NAME`` names one."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if not any(env.get(name) for name in _ASKING):
        return None
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    names = [n for n in names if n]
    if names == ["none"]:
        return None
    unknown = sorted(set(names) - {"otlp", "console"})
    if unknown:
        given = ",".join(names)
        raise TracingSetupError(f"OTEL_TRACES_EXPORTER={given}: keel exports to otlp (over "
                                f"HTTP) or console, not {', '.join(unknown)}")  # fmt: skip
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if "otlp" in names and protocol != "http/protobuf":
        raise TracingSetupError(f"OTLP protocol {protocol}: keel sends OTLP over HTTP "
                                "(set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)")  # fmt: skip
    try:
        return _install(service, names, env)
    except ImportError as exc:
        raise TracingSetupError(
            f"the environment asks for traces, but {exc.name or 'the OpenTelemetry SDK'} is "
            "not installed: pip install 'keelflow[otel]' (or unset OTEL_EXPORTER_OTLP_ENDPOINT)"
        ) from None


def _install(service: str, names: list[str], env: Mapping[str, str]) -> Tracing:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace.export import SpanExporter

    from keel.runtime.tracing.batching import KeelBatchSpanProcessor
    from keel.runtime.tracing.direct import KeelTracerProvider

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if not env.get("OTEL_SERVICE_NAME") and "service.name=" not in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    ):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = KeelTracerProvider(resource=resource)
    said: list[str] = []
    for name in names:
        exporter: SpanExporter
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
            said.append(f"sent over OTLP/HTTP to {_endpoint(env)}")
        else:
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporter = ConsoleSpanExporter()
            said.append("printed to the console")
        provider.add_span_processor(KeelBatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    named = resource.attributes.get(SERVICE_NAME)
    return Tracing(f"traces: {' and '.join(said)}, as service {named}", provider.shutdown)


def _endpoint(env: Mapping[str, str]) -> str:
    """Where OTLP spans go, as the exporter works it out (for the start-up line)."""
    own = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if own:
        return own
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318"
    return base.rstrip("/") + "/v1/traces"
