"""Cadences and templates of the benchmark and chaos runs (written to a run's own cadences/ templates/).

Bodies differ per step so a provider look-up after a lost answer (Twilio reconcile by recipient and body)
finds exactly the message of that step.
"""

from __future__ import annotations

BENCH_SEND = """\
id: bench-send
name: Benchmark - one SMS, then a long wait
purpose: marketing
locale: en
facts: {offer: free shipping this week}
score: {sms.delivered: 1}
steps:
  - id: hello
    send: sms
    message: bench-hello
  - wait: 1h
"""

BENCH_HOLD = """\
id: bench-hold
name: Benchmark - a long wait, then one SMS
purpose: marketing
locale: en
facts: {offer: free shipping this week}
steps:
  - wait: 1h
  - id: hello
    send: sms
    message: bench-hello
"""


def chaos_cadence(spacing_seconds: int = 4) -> str:
    """Three SMS a few seconds apart: enough steps in flight for kills, restarts and STOPs to land between."""
    return f"""\
id: chaos
name: Chaos run - three SMS
purpose: marketing
locale: en
facts: {{offer: free shipping this week}}
score: {{sms.delivered: 1}}
steps:
  - id: first
    send: sms
    message: chaos-first
  - wait: {spacing_seconds}s
  - id: second
    send: sms
    message: chaos-second
  - wait: {spacing_seconds}s
  - id: third
    send: sms
    message: chaos-third
"""


TEMPLATES = {
    "bench-hello/sms.j2": "Hi {{ contact.name }}, {{ facts.offer }}. Reply STOP to opt out",
    "chaos-first/sms.j2": "1/3 {{ contact.name }}: {{ facts.offer }}. Reply STOP to opt out",
    "chaos-second/sms.j2": "2/3 {{ contact.name }}: {{ facts.offer }} ends soon. Reply STOP to opt out",
    "chaos-third/sms.j2": "3/3 {{ contact.name }}: last day for {{ facts.offer }}. Reply STOP to opt out",
}
