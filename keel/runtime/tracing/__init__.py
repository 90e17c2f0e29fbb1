"""OpenTelemetry traces of runs and attempts (not to be confused with
``keel.authoring.tracing``, which reads a workflow function into a spec).

Only the OpenTelemetry API is a dependency of keel: with no SDK configured every span is
a no-op and costs next to nothing. ``context``: a run's trace context, recorded when it
starts; ``attempts``: a span per attempt, made by the worker that executes it;
``run_spans``: the run's span, emitted by the process that records its end;
``recorder``: what makes those spans, through the API or, where keel installed the
provider itself, directly (``direct``); ``sdk``: ``keel worker`` and ``keel serve``
configure the SDK and its OTLP exporter from the standard environment variables (the
``otel`` extra).
"""
