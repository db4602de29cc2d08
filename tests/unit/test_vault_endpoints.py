"""Failover decisions without I/O: how Vault answers are classified and which node comes next.

Proves that refused credentials and other 4xx answers are never retried on another node (the
AppRole lockout protection depends on it), that sealed/standby/5xx/429/redirect answers are,
that the node which answered last stays first, that a failed node is only a last resort until
its backoff ends (and is used again afterwards), that redirects only ever point at configured
nodes, and that per-node health and its Prometheus lines say what the pool knows.
"""

from __future__ import annotations

import pytest

from sealstore.kms.vault_endpoints import (
    EndpointPool,
    Verdict,
    classify,
    error_text,
    prometheus_lines,
    same_node,
)

A, B, C = "https://kms1:8200", "https://kms2:8200", "https://kms3:8200"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pool(*urls: str, clock: Clock | None = None) -> EndpointPool:
    return EndpointPool(list(urls or (A, B, C)), clock=clock or Clock(), probe_interval=5.0)


def urls(plan: list) -> list[str]:
    return [ep.url for ep in plan]


@pytest.mark.parametrize(
    ("status", "detail"),
    [
        (200, "no error detail"),
        (204, "no error detail"),
        (400, "invalid role or secret ID"),
        (403, "permission denied"),
        (404, "no handler for route"),
        (400, "encryption key not found"),
    ],
)
def test_answers_are_the_callers_business(status: int, detail: str) -> None:
    assert classify(status, detail)[0] is Verdict.ANSWER


@pytest.mark.parametrize(
    ("status", "detail", "verdict"),
    [
        (503, "Vault is sealed", Verdict.DOWN),
        (501, "Vault is not initialized", Verdict.DOWN),
        (503, "no error detail", Verdict.RETRY),
        (500, "local node not active but active cluster node not found", Verdict.RETRY),
        (400, "node not active but active cluster node not found", Verdict.RETRY),
        (500, "internal error", Verdict.DOWN),
        (504, "gateway timeout", Verdict.RETRY),
        (502, "bad gateway", Verdict.RETRY),
        (429, "no error detail", Verdict.RETRY),
        (307, "no error detail", Verdict.RETRY),
        (308, "no error detail", Verdict.RETRY),
    ],
)
def test_node_conditions_move_to_another_node(status: int, detail: str, verdict: Verdict) -> None:
    assert classify(status, detail)[0] is verdict


def test_error_text_is_one_bounded_line() -> None:
    data = {"errors": ["1 error occurred:\n\t* permission denied\n\n", "x" * 900]}
    text = error_text(data)
    assert "\n" not in text and text.startswith("permission denied") and len(text) <= 500
    assert error_text({}) == "no error detail" and error_text({"errors": "str"}) == (
        "no error detail"
    )


def test_first_configured_node_is_tried_first_then_the_others_in_order() -> None:
    p = pool()
    assert urls(p.plan()) == [A, B, C]
    assert p.current.url == A


def test_the_node_that_answered_last_stays_first() -> None:
    p = pool()
    a, b, _ = p.endpoints
    assert p.failed(a, "Vault at A is unreachable") is True
    assert p.succeeded(b, 3.0) is True  # a failover
    assert p.current.url == B and p.failovers == 1
    assert urls(p.plan())[0] == B
    assert p.succeeded(b, 2.0) is False  # no change, no extra failover
    assert p.failovers == 1


def test_failed_node_is_a_last_resort_until_it_answers_again() -> None:
    clock = Clock()
    p = pool(clock=clock)
    a, b, _ = p.endpoints
    p.failed(a, "down")
    assert urls(p.plan()) == [B, C, A]  # still listed, but after every better option
    p.succeeded(b, 1.0)
    assert urls(p.plan()) == [B, C, A]
    assert a not in p.due_probes()
    clock.now += 1.5  # backoff over: the prober asks it again
    assert a in p.due_probes()
    p.probed(a, status=429, latency_ms=1.0)
    assert urls(p.plan()) == [B, A, C]  # known good again, before the never-tried node


def test_backoff_doubles_and_is_capped() -> None:
    clock = Clock()
    p = EndpointPool([A, B], clock=clock)
    a = p.endpoints[0]
    delays = []
    for _ in range(8):
        p.failed(a, "down")
        delays.append(a.retry_at - clock.now)
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    p.succeeded(a, 1.0)
    assert a.failures == 0 and a.retry_at == 0.0 and a.ok and a.last_error is None


def test_nodes_in_backoff_are_ordered_by_earliest_retry() -> None:
    clock = Clock()
    p = pool(clock=clock)
    a, b, c = p.endpoints
    p.failed(a, "down")
    p.failed(a, "down")  # 2 s
    p.failed(b, "down")  # 1 s
    p.failed(c, "down")
    p.failed(c, "down")
    p.failed(c, "down")  # 4 s
    assert urls(p.plan()) == [B, A, C]


def test_known_good_active_node_before_standbys_and_unknown_nodes() -> None:
    p = pool()
    a, b, c = p.endpoints
    p.probed(b, status=429, latency_ms=1.0)  # standby
    p.probed(c, status=200, latency_ms=1.0)  # active
    p.failed(a, "down")
    assert urls(p.plan()) == [C, B, A]


def test_skip_leaves_out_nodes_that_timed_out_in_this_call() -> None:
    p = pool()
    assert urls(p.plan(skip={A, C})) == [B]


def test_redirect_hint_only_for_configured_nodes() -> None:
    p = pool()
    assert p.hint("https://evil.example:8200/v1/transit/decrypt/k") is False
    assert urls(p.plan()) == [A, B, C]
    assert p.hint(f"{C}/v1/transit/decrypt/my-key") is True
    assert urls(p.plan())[0] == C
    assert urls(p.plan())[0] == A  # a hint is used by one plan only
    p.succeeded(p.endpoints[2], 1.0)
    assert p.current.url == C


def test_redirect_to_a_node_in_backoff_is_ignored() -> None:
    """During an election standbys redirect to the leader that just died or froze."""
    p = pool()
    a, b, _ = p.endpoints
    p.failed(a, "Vault at A is unreachable: request timed out")
    p.succeeded(b, 1.0)
    assert p.hint(f"{A}/v1/auth/approle/login") is True
    assert urls(p.plan()) == [B, C, A]
    assert same_node("https://kms1:8200", "https://KMS1:8200/v1/x")
    assert not same_node("https://kms1:8200", "http://kms1:8200/v1/x")
    assert not same_node("https://kms1:8200", "https://kms1:8201/v1/x")


def test_probes_mark_nodes_and_bring_failed_ones_back() -> None:
    clock = Clock()
    p = pool(clock=clock)
    a, b, c = p.endpoints
    assert p.due_probes() == [a, b, c]
    p.probed(a, status=200, latency_ms=2.0)
    p.probed(b, status=503, latency_ms=2.0)
    p.probed(c, status=None, latency_ms=2000.0, error="Vault at C is unreachable: timed out")
    assert (a.ok, a.active) == (True, True)
    assert b.ok is False and "sealed" in (b.last_error or "")
    assert c.ok is False and "timed out" in (c.last_error or "")
    assert p.due_probes() == []
    assert p.next_probe_in() == pytest.approx(1.0)  # the failed ones, after 1 s backoff
    clock.now += 1.0
    assert set(map(id, p.due_probes())) == {id(b), id(c)}
    assert p.probed(c, status=429, latency_ms=1.0) is True  # came back
    assert c.ok and c.active is False and c.retry_at == 0.0
    clock.now += 5.0
    assert a in p.due_probes()  # healthy nodes are probed every probe_interval


def test_health_and_metrics_describe_every_node() -> None:
    p = pool()
    a, b, _ = p.endpoints
    p.probed(a, status=200, latency_ms=1.5)
    p.failed(b, "Vault at https://kms2:8200 is unreachable: connection refused")
    health = p.health()
    assert [h.url for h in health] == [A, B, C]
    assert health[0].ok and health[0].active and health[0].current
    assert health[1].ok is False and "refused" in (health[1].last_error or "")
    assert health[2].ok is None and not health[2].current
    text = "\n".join(prometheus_lines(health, failovers=2))
    assert f'sealstore_kms_endpoint_up{{endpoint="{A}"}} 1' in text
    assert f'sealstore_kms_endpoint_up{{endpoint="{B}"}} 0' in text
    assert f'sealstore_kms_endpoint_active{{endpoint="{A}"}} 1' in text
    assert f'sealstore_kms_endpoint_current{{endpoint="{A}"}} 1' in text
    assert f'sealstore_kms_endpoint_latency_ms{{endpoint="{A}"}} 1.500' in text
    assert "sealstore_kms_failovers_total 2" in text


def test_empty_pool_is_refused() -> None:
    with pytest.raises(ValueError):
        EndpointPool([])
